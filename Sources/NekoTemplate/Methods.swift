import Foundation

/// Python's str, dict and list methods that templates call (`message.content.strip()`).
/// The sandbox transformers uses is immutable: methods that modify a list or dict are refused.
extension Interpreter {
    static let stringMethods: Set<String> = [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
        "title", "capitalize", "replace", "format", "join", "count", "find", "rfind", "index", "rindex", "isdigit",
        "isalpha", "isalnum", "isspace", "islower", "isupper", "isnumeric", "isdecimal", "zfill", "center", "ljust",
        "rjust", "partition", "rpartition", "istitle", "expandtabs", "encode", "translate", "maketrans", "swapcase", "casefold", "removeprefix", "removesuffix",
    ]
    static let dictMethods: Set<String> = ["items", "keys", "values", "get", "copy", "pop", "update", "setdefault", "clear", "popitem"]
    static let listMethods: Set<String> = ["index", "count", "append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear", "copy"]

    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }
    static func string(_ s: [Unicode.Scalar]) -> String { String(String.UnicodeScalarView(s)) }
    static func string(_ s: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(s)) }

    func argument(_ args: [Value], _ kwargs: [(String, Value)], _ i: Int, _ name: String) -> Value? {
        if i < args.count { return args[i] }
        return kwargs.first { $0.0 == name }?.1
    }

    /// Calls `object.method(args)`; nil when `object` has no such method (then the attribute,
    /// if any, is called as a value).
    func callMethod(_ object: Value, _ method: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value? {
        switch object {
        case let .string(s): return try stringMethod(s, method, args, kwargs)
        case let .dict(d): return try dictMethod(d, method, args, kwargs)
        case let .list(a), let .tuple(a):
            switch method {
            case "index":
                guard let x = args.first, let i = a.firstIndex(where: { $0.pyEquals(x) }) else {
                    throw RenderError("\(args.first?.repr ?? "") is not in list")
                }
                return .int(i)
            case "count": return .int(a.filter { $0.pyEquals(args.first ?? Value.none) }.count)
            case "copy": return .list(a)
            case _ where Self.listMethods.contains(method):
                throw RenderError("access to attribute '\(method)' of '\(object.typeName)' object is unsafe.")
            default: return nil
            }
        case let .undefined(hint):
            throw RenderError(hint)
        default:
            return nil
        }
    }

    func dictMethod(_ d: Value.Dict, _ method: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value? {
        switch method {
        case "items": return .list(zip(d.keys, d.values).map { .tuple([$0, $1]) })
        case "keys": return .list(d.keys)
        case "values": return .list(d.values)
        case "get":
            guard let key = argument(args, kwargs, 0, "key") else { throw RenderError("get expected at least 1 argument, got 0") }
            return d[key] ?? argument(args, kwargs, 1, "default") ?? Value.none
        case "copy": return .dict(d)
        case "pop", "update", "setdefault", "clear", "popitem":
            throw RenderError("access to attribute '\(method)' of 'dict' object is unsafe.")
        default:
            // A callable stored under that key (rare): call it.
            if let f = d[method], case .object = f { return try call(f, args, kwargs) }
            return nil
        }
    }

    /// Python's default whitespace for strip/split.
    static func isPyWhitespace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    func stripChars(_ s: String, _ chars: Value?, left: Bool, right: Bool) -> String {
        let sc = Self.scalars(s)
        let set: (Unicode.Scalar) -> Bool
        if let chars, case let .string(c) = chars {
            let cs = Set(c.unicodeScalars)
            set = { cs.contains($0) }
        } else {
            set = Self.isPyWhitespace
        }
        var lo = 0, hi = sc.count
        if left { while lo < hi, set(sc[lo]) { lo += 1 } }
        if right { while hi > lo, set(sc[hi - 1]) { hi -= 1 } }
        return Self.string(sc[lo..<hi])
    }

    static func pySplit(_ s: String, _ sep: String?, maxsplit: Int) -> [String] {
        let sc = scalars(s)
        var parts: [String] = []
        if let sep {
            let p = scalars(sep)
            var start = 0, splits = 0
            while maxsplit < 0 || splits < maxsplit, let i = sc.firstIndex(of: p, from: start) {
                parts.append(string(sc[start..<i]))
                start = i + p.count
                splits += 1
            }
            parts.append(string(sc[start...]))
            return parts
        }
        var i = 0, splits = 0
        while i < sc.count {
            while i < sc.count, isPyWhitespace(sc[i]) { i += 1 }
            if i >= sc.count { break }
            if maxsplit >= 0 && splits >= maxsplit {
                var end = sc.count
                while end > i, isPyWhitespace(sc[end - 1]) { end -= 1 }
                parts.append(string(sc[i..<end]))
                return parts
            }
            var j = i
            while j < sc.count, !isPyWhitespace(sc[j]) { j += 1 }
            parts.append(string(sc[i..<j]))
            splits += 1
            i = j
        }
        return parts
    }

    /// Python's str.title(): a cased character after an uncased one is upper-cased.
    static func pyTitle(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        var previousCased = false
        for c in s.unicodeScalars {
            let cased = c.properties.isCased
            if cased {
                out.append(contentsOf: (previousCased ? c.properties.lowercaseMapping : c.properties.titlecaseMapping).unicodeScalars)
            } else {
                out.append(c)
            }
            previousCased = cased
        }
        return String(out)
    }

    /// Python's str.capitalize(): the first character in title case, the rest in lower case.
    static func pyCapitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        var out = first.properties.titlecaseMapping
        for c in s.unicodeScalars.dropFirst() { out += c.properties.lowercaseMapping }
        return out
    }

    func stringMethod(_ s: String, _ method: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value? {
        func str(_ i: Int, _ name: String) throws -> String? {
            guard let v = argument(args, kwargs, i, name), !v.isNone else { return nil }
            guard case let .string(x) = v else { throw RenderError("\(method)() argument must be str, not \(v.typeName)") }
            return x
        }
        switch method {
        case "strip": return .string(stripChars(s, argument(args, kwargs, 0, "chars"), left: true, right: true))
        case "lstrip": return .string(stripChars(s, argument(args, kwargs, 0, "chars"), left: true, right: false))
        case "rstrip": return .string(stripChars(s, argument(args, kwargs, 0, "chars"), left: false, right: true))
        case "split", "rsplit":
            let maxsplit = argument(args, kwargs, 1, "maxsplit")?.integer ?? -1
            let sep = try str(0, "sep")
            if sep == "" { throw RenderError("empty separator") }
            if method == "rsplit", maxsplit >= 0, let sep {
                let reversed = Self.pySplit(String(s.reversed()), String(sep.reversed()), maxsplit: maxsplit)
                return .list(reversed.reversed().map { .string(String($0.reversed())) })
            }
            return .list(Self.pySplit(s, sep, maxsplit: maxsplit).map { .string($0) })
        case "splitlines":
            var lines: [Value] = []
            var current = String.UnicodeScalarView()
            var it = s.unicodeScalars.makeIterator()
            var pendingCR = false
            while let c = it.next() {
                if pendingCR {
                    pendingCR = false
                    if c == "\n" { continue }
                }
                if c == "\n" || c == "\r" || c == "\u{0B}" || c == "\u{0C}" || c == "\u{1C}" || c == "\u{1D}" || c == "\u{1E}"
                    || c == "\u{85}" || c == "\u{2028}" || c == "\u{2029}" {
                    lines.append(.string(String(current)))
                    current = String.UnicodeScalarView()
                    if c == "\r" { pendingCR = true }
                } else {
                    current.append(c)
                }
            }
            if !current.isEmpty { lines.append(.string(String(current))) }
            return .list(lines)
        case "startswith", "endswith":
            guard let arg = args.first else { throw RenderError("\(method) takes at least 1 argument") }
            let candidates: [Value]
            if case let .tuple(t) = arg { candidates = t } else if case let .list(t) = arg { candidates = t } else { candidates = [arg] }
            var sc = Self.scalars(s)
            if let start = argument(args, kwargs, 1, "start")?.integer {
                let k = start < 0 ? max(0, sc.count + start) : min(start, sc.count)
                sc = Array(sc[k...])
            }
            for c in candidates {
                guard case let .string(p) = c else { throw RenderError("\(method) first arg must be str or a tuple of str") }
                let ps = Self.scalars(p)
                if method == "startswith" ? sc.starts(with: ps) : sc.reversed().starts(with: ps.reversed()) { return .bool(true) }
            }
            return .bool(false)
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "casefold": return .string(s.folding(options: .caseInsensitive, locale: nil))
        case "swapcase":
            return .string(String(String.UnicodeScalarView(s.unicodeScalars.flatMap {
                $0.properties.isUppercase ? Array($0.properties.lowercaseMapping.unicodeScalars)
                    : $0.properties.isLowercase ? Array($0.properties.uppercaseMapping.unicodeScalars) : [$0]
            })))
        case "title": return .string(Self.pyTitle(s))
        case "capitalize": return .string(Self.pyCapitalize(s))
        case "replace":
            guard let old = try str(0, "old"), let new = try str(1, "new") else { throw RenderError("replace expected 2 arguments") }
            let count = argument(args, kwargs, 2, "count")?.integer ?? -1
            return .string(PyFormat.replace(s, old, new, count: count))
        case "format": return .string(try PyFormat.format(s, args, kwargs))
        case "join":
            guard let v = args.first else { throw RenderError("join() takes exactly one argument") }
            return .string(try iterate(v).map { item -> String in
                guard case let .string(x) = item else { throw RenderError("sequence item: expected str instance, \(item.typeName) found") }
                return x
            }.joined(separator: s))
        case "count":
            guard let sub = try str(0, "sub") else { throw RenderError("count() takes at least 1 argument") }
            let sc = Self.scalars(s), p = Self.scalars(sub)
            if p.isEmpty { return .int(sc.count + 1) }
            var n = 0, i = 0
            while let k = sc.firstIndex(of: p, from: i) { n += 1; i = k + p.count }
            return .int(n)
        case "find", "index", "rfind", "rindex":
            guard let sub = try str(0, "sub") else { throw RenderError("\(method)() takes at least 1 argument") }
            let sc = Self.scalars(s), p = Self.scalars(sub)
            var found: Int?
            if method.hasPrefix("r") {
                var i = 0
                while let k = sc.firstIndex(of: p, from: i) { found = k; i = k + 1; if p.isEmpty && k >= sc.count { break } }
            } else {
                found = sc.firstIndex(of: p)
            }
            if let found { return .int(found) }
            if method.hasSuffix("index") { throw RenderError("substring not found") }
            return .int(-1)
        case "isdigit", "isnumeric", "isdecimal":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(Self.isPyWhitespace))
        case "expandtabs":
            let size = try Limits.width(argument(args, kwargs, 0, "tabsize")?.integer ?? 8, "expandtabs tab size")
            var out = String.UnicodeScalarView()
            var column = 0
            for c in s.unicodeScalars {
                if c == "\t" {
                    let n = size > 0 ? size - column % size : 0
                    guard out.count + n <= Limits.string else {
                        throw RenderError("expandtabs would build a string longer than \(Limits.string) characters (nekochat's limit)")
                    }
                    out.append(contentsOf: String(repeating: " ", count: n).unicodeScalars)
                    column += n
                } else {
                    out.append(c)
                    column = c == "\n" || c == "\r" ? 0 : column + 1
                }
            }
            return .string(String(out))
        case "istitle":
            // Uppercase/titlecase letters only after uncased characters, lowercase only after cased ones.
            var previousCased = false, sawCased = false
            for c in s.unicodeScalars {
                if c.properties.isUppercase || c.properties.generalCategory == .titlecaseLetter {
                    if previousCased { return .bool(false) }
                    previousCased = true; sawCased = true
                } else if c.properties.isLowercase {
                    if !previousCased { return .bool(false) }
                    previousCased = true; sawCased = true
                } else {
                    previousCased = false
                }
            }
            return .bool(sawCased)
        case "islower", "isupper":
            let cased = s.unicodeScalars.contains { $0.properties.isCased }
            let wrong = s.unicodeScalars.contains { c in
                c.properties.generalCategory == .titlecaseLetter
                    || (method == "islower" ? c.properties.isUppercase : c.properties.isLowercase)
            }
            return .bool(cased && !wrong)
        case "zfill":
            let width = args.first?.integer ?? 0
            guard width <= Limits.string else { throw RenderError("zfill width \(width) is larger than nekochat's limit (\(Limits.string))") }
            var sc = Self.scalars(s)
            let sign = sc.first == "-" || sc.first == "+" ? sc.removeFirst() : nil
            let pad = max(0, width - sc.count - (sign == nil ? 0 : 1))
            return .string((sign.map { String($0) } ?? "") + String(repeating: "0", count: pad) + Self.string(sc))
        case "center", "ljust", "rjust":
            let width = args.first?.integer ?? 0
            guard width <= Limits.string else { throw RenderError("\(method) width \(width) is larger than nekochat's limit (\(Limits.string))") }
            let fill = (try str(1, "fillchar")) ?? " "
            guard fill.unicodeScalars.count == 1 else { throw RenderError("The fill character must be exactly one character long") }
            let n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let total = width - n
            switch method {
            case "ljust": return .string(s + String(repeating: fill, count: total))
            case "rjust": return .string(String(repeating: fill, count: total) + s)
            default:
                let left = total / 2 + (total & width & 1)
                return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: total - left))
            }
        case "partition", "rpartition":
            guard let sep = try str(0, "sep") else { throw RenderError("\(method)() takes exactly one argument") }
            let sc = Self.scalars(s), p = Self.scalars(sep)
            var at: Int?
            if method == "partition" { at = sc.firstIndex(of: p) } else {
                var i = 0
                while let k = sc.firstIndex(of: p, from: i) { at = k; i = k + 1 }
            }
            guard let at else {
                return method == "partition" ? .tuple([.string(s), .string(""), .string("")]) : .tuple([.string(""), .string(""), .string(s)])
            }
            return .tuple([.string(Self.string(sc[..<at])), .string(sep), .string(Self.string(sc[(at + p.count)...]))])
        case "removeprefix":
            let p = try str(0, "prefix") ?? ""
            return .string(s.unicodeScalars.starts(with: p.unicodeScalars) ? Self.string(Self.scalars(s).dropFirst(p.unicodeScalars.count)) : s)
        case "removesuffix":
            let p = try str(0, "suffix") ?? ""
            let sc = Self.scalars(s), ps = Self.scalars(p)
            return .string(!ps.isEmpty && sc.reversed().starts(with: ps.reversed()) ? Self.string(sc.dropLast(ps.count)) : s)
        default:
            return nil
        }
    }
}
