import NekoJSON

extension RoutingAnalysis {
    /// The differences between two routing documents (or any JSON), one line each, with the path
    /// to the value: keys and their order, array lengths, strings, nulls and integers (counts) must
    /// be equal; numbers written with a fraction or exponent may differ by `tolerance` (absolute).
    /// An integer never equals a fractional number (a count is not a figure). Empty when equal;
    /// at most `limit` lines.
    public static func differences(_ a: JSONValue, _ b: JSONValue, tolerance: Double = 1e-6,
                                   limit: Int = 50) -> [String] {
        var out: [String] = []
        compare(a, b, path: "", tolerance: tolerance, limit: limit, into: &out)
        return out
    }

    private static func compare(_ a: JSONValue, _ b: JSONValue, path: String, tolerance: Double,
                                limit: Int, into out: inout [String]) {
        guard out.count < limit else { return }
        let at = path.isEmpty ? "(top)" : path
        switch (a, b) {
        case (.null, .null): return
        case let (.bool(x), .bool(y)) where x == y: return
        case let (.int(x), .int(y)) where x == y: return
        case let (.string(x), .string(y)) where Array(x.unicodeScalars) == Array(y.unicodeScalars): return
        case let (.double(x), .double(y)):
            if abs(x - y) <= tolerance { return }
            out.append("\(at): \(x) vs \(y) (differ by \(abs(x - y)) > \(tolerance))")
        case let (.array(x), .array(y)):
            guard x.count == y.count else {
                out.append("\(at): \(x.count) items vs \(y.count)")
                return
            }
            for (i, (u, v)) in zip(x, y).enumerated() {
                compare(u, v, path: path + "[\(i)]", tolerance: tolerance, limit: limit, into: &out)
            }
        case let (.object(x), .object(y)):
            let kx = x.map(\.key), ky = y.map(\.key)
            guard kx == ky else {
                out.append("\(at): keys \(kx) vs \(ky)")
                return
            }
            for (u, v) in zip(x, y) {
                compare(u.value, v.value, path: path + (path.isEmpty ? "" : ".") + u.key,
                        tolerance: tolerance, limit: limit, into: &out)
            }
        default:
            out.append("\(at): \(a.serialized.prefix(80)) vs \(b.serialized.prefix(80))")
        }
    }
}
