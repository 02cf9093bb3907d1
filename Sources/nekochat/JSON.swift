import NekoChat
import NekoJSON

/// The CLI prints NekoJSON's values (the project's one JSON writer).
typealias JSON = JSONValue

extension JSONValue {
    static func ints(_ values: [Int]) -> JSONValue { .array(values.map { .int($0) }) }
    static func floats(_ values: [Float]) -> JSONValue { .array(values.map { .float($0) }) }

    /// The first non-finite number in the document, as a path (Sources/nekochat/README.md: no NaN in output).
    func nonFinitePath(_ path: String = "(root)") -> String? {
        switch self {
        case let .double(d): return d.isFinite ? nil : path
        case let .array(items):
            for (i, item) in items.enumerated() { if let p = item.nonFinitePath("\(path)[\(i)]") { return p } }
            return nil
        case let .object(members):
            for (k, v) in members { if let p = v.nonFinitePath(k) { return p } }
            return nil
        default: return nil
        }
    }
}
