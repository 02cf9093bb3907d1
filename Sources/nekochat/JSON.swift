import NekoJSON

/// A JSON value with ordered object keys, written compactly. Non-finite numbers are refused.
enum JSON {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    /// Printed with Float's shortest round-trip digits (0.3, not 0.30000001192092896).
    case float(Float)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    struct NonFiniteNumber: Error, CustomStringConvertible {
        let key: String
        var description: String { "the JSON output would contain a non-finite number (\(key))" }
    }

    func serialized() throws -> String {
        var out = ""
        try write(into: &out, key: "(root)")
        return out
    }

    private func write(into out: inout String, key: String) throws {
        switch self {
        case .null: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d):
            guard d.isFinite else { throw NonFiniteNumber(key: key) }
            out += d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case let .float(f):
            guard f.isFinite else { throw NonFiniteNumber(key: key) }
            out += f == f.rounded() && abs(f) < 1e7 ? String(Int(f)) : String(f)
        case let .string(s): JSONValue.writeString(s, into: &out)
        case let .array(items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                try item.write(into: &out, key: key)
            }
            out += "]"
        case let .object(fields):
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, into: &out)
                out += ":"
                try v.write(into: &out, key: k)
            }
            out += "}"
        }
    }
}

extension JSON {
    static func ints(_ values: [Int]) -> JSON { .array(values.map { .int($0) }) }
    static func floats(_ values: [Float]) -> JSON { .array(values.map { .float($0) }) }
}
