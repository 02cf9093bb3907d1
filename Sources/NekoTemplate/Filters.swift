import Foundation

/// jinja2's built-in filters and tests, and the globals transformers adds.
extension Interpreter {
    /// The filters and tests this engine has (jinja2 rejects unknown ones when compiling,
    /// outside conditional code).
    static let filterNames: Set<String> = [
        "default", "d", "length", "count", "string", "trim", "upper", "lower", "capitalize", "title", "replace",
        "first", "last", "join", "list", "reverse", "items", "dictsort", "sort", "unique", "map", "select", "reject",
        "selectattr", "rejectattr", "tojson", "int", "float", "abs", "round", "indent", "center", "wordcount", "sum",
        "min", "max", "batch", "slice", "attr", "format", "safe", "escape", "e", "forceescape", "pprint", "truncate",
        "striptags", "groupby", "filesizeformat", "urlencode",
    ]
    static let testNames: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
        "sequence", "iterable", "callable", "sameas", "escaped", "even", "odd", "divisibleby", "eq", "equalto", "==",
        "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "lower", "upper",
        "filter", "test",
    ]

    func kw(_ kwargs: [(String, Value)], _ name: String) -> Value? { kwargs.first { $0.0 == name }?.1 }

    func applyFilter(_ name: String, _ value: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        func arg(_ i: Int, _ key: String) -> Value? { argument(args, kwargs, i, key) }
        switch name {
        case "default", "d":
            let boolean = arg(1, "boolean")?.truthy ?? false
            if value.isUndefined || (boolean && !value.truthy) { return arg(0, "default_value") ?? .string("") }
            return value
        case "length", "count":
            switch value {
            case let .string(s): return .int(s.unicodeScalars.count)
            case let .list(a), let .tuple(a): return .int(a.count)
            case let .dict(d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw RenderError("object of type '\(value.typeName)' has no len()")
            }
        case "string": return .string(value.str)
        case "trim": return .string(stripChars(value.str, arg(0, "chars"), left: true, right: true))
        case "upper": return .string(value.str.uppercased())
        case "lower": return .string(value.str.lowercased())
        case "capitalize": return .string(Self.pyCapitalize(value.str))
        case "title":
            // jinja2's own title: words start after whitespace, '-', and opening brackets.
            var out = ""
            var atStart = true
            for c in value.str.unicodeScalars {
                if c.properties.isWhitespace || "-({[<".unicodeScalars.contains(c) {
                    out.unicodeScalars.append(c)
                    atStart = true
                } else {
                    out += atStart ? c.properties.uppercaseMapping : c.properties.lowercaseMapping
                    atStart = false
                }
            }
            return .string(out)
        case "replace":
            guard let old = arg(0, "old")?.str, let new = arg(1, "new")?.str else { throw RenderError("replace needs old and new") }
            return .string(PyFormat.replace(value.str, old, new, count: arg(2, "count")?.integer ?? -1))
        case "first":
            if case let .undefined(hint) = value { throw RenderError(hint) }
            return try iterate(value).first ?? .undefined(hint: "No first item, sequence was empty.")
        case "last":
            if case let .undefined(hint) = value { throw RenderError(hint) }
            return try iterate(value).last ?? .undefined(hint: "No last item, sequence was empty.")
        case "join":
            var items = try iterate(value)
            if let attribute = arg(1, "attribute") { items = try items.map { try lookupPath($0, attribute) } }
            return .string(items.map(\.str).joined(separator: arg(0, "d")?.str ?? ""))
        case "list": return .list(try iterate(value))
        case "reverse":
            if case let .string(s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try iterate(value).reversed())
        case "items":
            if case .undefined = value { return .list([]) }
            guard case let .dict(d) = value else { throw RenderError("items filter needs a mapping, got \(value.typeName)") }
            return .list(zip(d.keys, d.values).map { .tuple([$0, $1]) })
        case "dictsort":
            guard case let .dict(d) = value else { throw RenderError("dictsort filter needs a mapping") }
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let byValue = arg(1, "by")?.str == "value"
            let reverse = arg(2, "reverse")?.truthy ?? false
            var pairs = zip(d.keys, d.values).map { ($0, $1) }
            try pairs.sort { a, b in
                var x = byValue ? a.1 : a.0, y = byValue ? b.1 : b.0
                if !caseSensitive, case let .string(s) = x, case let .string(t) = y { x = .string(s.lowercased()); y = .string(t.lowercased()) }
                guard let less = x.pyLess(y) else { throw RenderError("cannot sort \(x.typeName) and \(y.typeName)") }
                return less
            }
            if reverse { pairs.reverse() }
            return .list(pairs.map { .tuple([$0.0, $0.1]) })
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attribute = arg(2, "attribute")
            var items = try iterate(value)
            func key(_ v: Value) throws -> Value {
                func fold(_ k: Value) -> Value {
                    if !caseSensitive, case let .string(s) = k { return .string(s.lowercased()) }
                    return k
                }
                // attribute="age,name" sorts by several keys.
                if let attribute, case let .string(path) = attribute, path.contains(",") {
                    return .tuple(try path.split(separator: ",").map { fold(try lookupPath(v, .string(String($0)))) })
                }
                return fold(try attribute.map { try lookupPath(v, $0) } ?? v)
            }
            try items.sort { a, b in
                guard let less = try key(a).pyLess(try key(b)) else { throw RenderError("cannot sort \(a.typeName) and \(b.typeName)") }
                return less
            }
            return .list(reverse ? items.reversed() : items)
        case "unique":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let attribute = arg(1, "attribute")
            var seen: [Value] = [], out: [Value] = []
            for item in try iterate(value) {
                var k = try attribute.map { try lookupPath(item, $0) } ?? item
                if !caseSensitive, case let .string(s) = k { k = .string(s.lowercased()) }
                if !seen.contains(where: { $0.pyEquals(k) }) { seen.append(k); out.append(item) }
            }
            return .list(out)
        case "map":
            let items = try iterate(value)
            if let attribute = kw(kwargs, "attribute") {
                let fallback = kw(kwargs, "default")
                return .list(try items.map { item in
                    let v = try lookupPath(item, attribute)
                    return v.isUndefined ? (fallback ?? v) : v
                })
            }
            guard let filterName = args.first?.str else { throw RenderError("map requires a filter name or attribute=") }
            return .list(try items.map { try applyFilter(filterName, $0, Array(args.dropFirst()), kwargs) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttribute = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var rest = args
            let attribute = byAttribute ? (rest.isEmpty ? nil : rest.removeFirst()) : nil
            let testName = rest.isEmpty ? nil : rest.removeFirst().str
            return .list(try iterate(value).filter { item in
                let subject = try attribute.map { try lookupPath(item, $0) } ?? item
                let passed = try testName.map { try applyTest($0, subject, rest) } ?? subject.truthy
                return passed == keep
            })
        case "tojson":
            let indent = arg(0, "indent")
            var separators: (String, String)?
            if let sep = kw(kwargs, "separators"), case let .list(p) = sep.tupleOrList, p.count == 2 { separators = (p[0].str, p[1].str) }
            return .string(try PyFormat.json(value, indent: indent?.integer ?? (indent.flatMap { $0.isNone ? nil : $0.str.count }),
                                             separators: separators, sortKeys: kw(kwargs, "sort_keys")?.truthy ?? false,
                                             ensureASCII: kw(kwargs, "ensure_ascii")?.truthy ?? false))
        case "int":
            let fallback = arg(0, "default") ?? .int(0)
            let base = arg(1, "base")?.integer ?? 10
            switch value {
            case let .int(i): return .int(i)
            case let .bool(b): return .int(b ? 1 : 0)
            case let .float(d): return Int(exactly: d.rounded(.towardZero)).map { .int($0) } ?? fallback
            case let .string(s):
                var t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
                var radix = base
                // Python's int(x, 0) reads a 0x / 0o / 0b prefix; int(x, 16) accepts "0x" too.
                let lower = t.lowercased()
                for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (radix == 0 || radix == r) {
                    t = String(t.dropFirst(2)); radix = r
                }
                if radix == 0 { radix = 10 }
                guard (2...36).contains(radix) else { return fallback }
                if let i = Int(t, radix: radix) { return .int(i) }
                if base == 10, let d = Double(t), let i = Int(exactly: d.rounded(.towardZero)) { return .int(i) }
                return fallback
            default: return fallback
            }
        case "float":
            let fallback = arg(0, "default") ?? .float(0)
            switch value {
            case let .int(i): return .float(Double(i))
            case let .float(d): return .float(d)
            case let .bool(b): return .float(b ? 1 : 0)
            case let .string(s): return Double(s.trimmingCharacters(in: .whitespaces)).map { .float($0) } ?? fallback
            default: return fallback
            }
        case "abs":
            switch value {
            case let .int(i):
                guard i != .min else { throw RenderError("integer result beyond 64 bits (Python would switch to a big integer; nekochat does not)") }
                return .int(abs(i))
            case let .float(d): return .float(abs(d))
            default: throw RenderError("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            let precision = arg(0, "precision")?.integer ?? 0
            guard precision.magnitude <= UInt(Limits.precision) else {
                throw RenderError("round precision \(precision) is beyond nekochat's limit (±\(Limits.precision))")
            }
            let method = arg(1, "method")?.str ?? "common"
            guard let x = value.number else { throw RenderError("round needs a number") }
            let scale = pow(10.0, Double(precision))
            switch method {
            case "ceil": return .float((x * scale).rounded(.up) / scale)
            case "floor": return .float((x * scale).rounded(.down) / scale)
            default:
                // Python's round(): an int stays an int; a float rounds its exact binary value,
                // ties to even — which is what C's correctly rounded %.*f does.
                if case .int = value, precision >= 0 { return value }
                guard x.isFinite, precision >= 0 else { return .float((x * scale).rounded(.toNearestOrEven) / scale) }
                return .float(Double(String(format: "%.\(precision)f", x)) ?? x)
            }
        case "indent":
            let width = arg(0, "width")
            let indentText: String
            if case let .string(text)? = width {
                indentText = text
            } else {
                indentText = String(repeating: " ", count: try Limits.width(width?.integer ?? 4, "indent width"))
            }
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            var s = value.str
            let newline = "\n"
            var lines = s.components(separatedBy: newline)
            // The result's size is known before it is built: refuse it, not the machine's memory.
            guard s.utf8.count + lines.count * indentText.utf8.count <= Limits.string else {
                throw RenderError("indent would build a string longer than \(Limits.string) bytes (nekochat's limit)")
            }
            for i in lines.indices where i > 0 || first {
                if blank || !lines[i].trimmingCharacters(in: .whitespaces).isEmpty { lines[i] = indentText + lines[i] }
            }
            s = lines.joined(separator: newline)
            return .string(s)
        case "center":
            return try callMethod(.string(value.str), "center", [arg(0, "width") ?? .int(80)], []) ?? value
        case "wordcount":
            return .int(value.str.split(whereSeparator: { !$0.isLetter && !$0.isNumber && $0 != "_" }).count)
        case "sum":
            var total: Value = arg(1, "start") ?? .int(0)
            for item in try iterate(value) {
                total = try binary("+", total, try arg(0, "attribute").map { try lookupPath(item, $0) } ?? item)
            }
            return total
        case "min", "max":
            let caseSensitive = arg(0, "case_sensitive")?.truthy ?? false
            let attribute = arg(1, "attribute")
            let items = try iterate(value)
            guard var best = items.first else { return .undefined(hint: "No aggregated item, sequence was empty.") }
            func key(_ v: Value) throws -> Value {
                var k = try attribute.map { try lookupPath(v, $0) } ?? v
                if !caseSensitive, case let .string(s) = k { k = .string(s.lowercased()) }
                return k
            }
            for item in items.dropFirst() {
                let better = name == "min" ? try key(item).pyLess(try key(best)) : try key(best).pyLess(try key(item))
                if better == true { best = item }
            }
            return best
        case "batch":
            let size = max(1, arg(0, "linecount")?.integer ?? 1)
            let fill = arg(1, "fill_with")
            var out: [Value] = [], row: [Value] = []
            for item in try iterate(value) {
                row.append(item)
                if row.count == size { out.append(.list(row)); row = [] }
            }
            if !row.isEmpty {
                if let fill { while row.count < size { row.append(fill) } }
                out.append(.list(row))
            }
            return .list(out)
        case "slice":
            let n = max(1, arg(0, "slices")?.integer ?? 1)
            let items = try iterate(value)
            let per = items.count / n, extra = items.count % n
            var out: [Value] = [], offset = 0
            for i in 0..<n {
                let size = per + (i < extra ? 1 : 0)
                out.append(.list(Array(items[offset..<offset + size])))
                offset += size
            }
            return .list(out)
        case "attr":
            // getattr only: on a dict that finds methods, never keys.
            let attribute = arg(0, "name")?.str ?? ""
            if case .dict = value, !Self.dictMethods.contains(attribute) { return .undefined(hint: "'dict object' has no attribute '\(attribute)'") }
            return try getAttribute(value, attribute)
        case "format":
            if !kwargs.isEmpty {
                guard args.isEmpty else { throw RenderError("can't handle positional and keyword arguments at the same time") }
                var d = Value.Dict()
                for (k, v) in kwargs { d[k] = v }
                return .string(try PyFormat.percent(value.str, .dict(d)))
            }
            return .string(try PyFormat.percent(value.str, args.count == 1 ? args[0] : .tuple(args)))
        case "safe": return value
        case "escape", "e", "forceescape":
            var s = ""
            for c in value.str.unicodeScalars {
                switch c {
                case "&": s += "&amp;"
                case "<": s += "&lt;"
                case ">": s += "&gt;"
                case "\"": s += "&#34;"
                case "'": s += "&#39;"
                default: s.unicodeScalars.append(c)
                }
            }
            return .string(s)
        case "pprint": return .string(value.repr)
        case "truncate":
            let length = arg(0, "length")?.integer ?? 255
            let killwords = arg(1, "killwords")?.truthy ?? false
            let end = arg(2, "end")?.str ?? "..."
            let leeway = arg(3, "leeway")?.integer ?? 5
            let sc = Array(value.str.unicodeScalars)
            if sc.count <= length + leeway { return .string(value.str) }
            var cut = Array(sc[..<max(0, length - end.unicodeScalars.count)])
            if !killwords, let space = cut.lastIndex(of: " ") { cut = Array(cut[..<space]) }
            return .string(String(String.UnicodeScalarView(cut)) + end)
        case "striptags":
            let stripped = value.str.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
            return .string(stripped.split(whereSeparator: { $0.isWhitespace }).joined(separator: " "))
        case "groupby":
            guard let attribute = arg(0, "attribute") else { throw RenderError("groupby needs an attribute") }
            var groups: [(Value, [Value])] = []
            for item in try iterate(value) {
                let k = try lookupPath(item, attribute)
                if let i = groups.firstIndex(where: { $0.0.pyEquals(k) }) { groups[i].1.append(item) } else { groups.append((k, [item])) }
            }
            groups.sort { ($0.0.pyLess($1.0)) ?? false }
            return .list(groups.map { .tuple([$0.0, .list($0.1)]) })
        case "filesizeformat":
            guard let bytes = value.number else { throw RenderError("filesizeformat needs a number") }
            let units = ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
            if bytes < 1000 { return .string(bytes == 1 ? "1 Byte" : "\(Int(bytes)) Bytes") }
            var unit = 0, size = bytes / 1000
            while size >= 1000, unit < units.count - 1 { size /= 1000; unit += 1 }
            return .string(String(format: "%.1f %@", size, units[unit]))
        case "urlencode":
            return .string(value.str.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed) ?? value.str)
        default:
            throw RenderError("no filter named '\(name)'")
        }
    }

    /// `attribute="a.b"` or an integer index, as jinja2's `make_attrgetter`.
    func lookupPath(_ item: Value, _ path: Value) throws -> Value {
        if let i = path.integer, case .int = path { return try getItem(item, .int(i)) }
        var v = item
        for part in path.str.split(separator: ".") {
            if let i = Int(part) { v = try getItem(v, .int(i)) } else { v = try getItem(v, .string(String(part))) }
        }
        return v
    }

    func applyTest(_ name: String, _ value: Value, _ args: [Value]) throws -> Bool {
        let other = args.first ?? Value.none
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .float = value { return true } else { return false }
        case "number":
            switch value {
            case .int, .float, .bool: return true
            default: return false
            }
        case "string": return value.isString
        case "mapping": if case .dict = value { return true } else { return false }
        case "sequence", "iterable":
            switch value {
            case .list, .tuple, .string, .dict: return true
            case .undefined: return name == "iterable"
            default: return false
            }
        case "callable":
            if case let .object(o) = value { return o is Function || o is MacroObject }
            return false
        case "sameas":
            switch (value, other) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            case let (.int(a), .int(b)): return a == b && (-5...256).contains(a)   // CPython's cached small ints
            case let (.object(a), .object(b)): return a === b
            default: return false
            }
        case "escaped": return false
        case "even", "odd":
            guard let i = value.integer else { throw RenderError("\(name) needs an integer") }
            return (i % 2 == 0) == (name == "even")
        case "divisibleby":
            guard let i = value.integer, let d = other.integer, d != 0 else { throw RenderError("divisibleby needs integers") }
            return i % d == 0
        case "eq", "equalto", "==": return value.pyEquals(other)
        case "ne", "!=": return !value.pyEquals(other)
        case "lt", "lessthan", "<": return try compare("<", value, other)
        case "le", "<=": return try compare("<=", value, other)
        case "gt", "greaterthan", ">": return try compare(">", value, other)
        case "ge", ">=": return try compare(">=", value, other)
        case "in": return try contains(other, value)
        case "lower", "upper":
            return try callMethod(.string(value.str), name == "lower" ? "islower" : "isupper", [], [])?.truthy ?? false
        case "filter", "test": return ["default", "length", "upper", "lower", "join", "map", "tojson", "trim"].contains(value.str)
        default: throw RenderError("no test named '\(name)'")
        }
    }
}

extension Value {
    /// Lists and tuples alike (for arguments given either way).
    var tupleOrList: Value {
        if case let .tuple(a) = self { return .list(a) }
        return self
    }
}
