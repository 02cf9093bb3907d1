import Foundation
import NekoJSON

/// Python's string formatting, `json.dumps` and `strftime`, as templates see them.
enum PyFormat {
    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        let sc = Array(s.unicodeScalars), o = Array(old.unicodeScalars), n = Array(new.unicodeScalars)
        var out: [Unicode.Scalar] = []
        var i = 0, done = 0
        if o.isEmpty {
            // Python inserts `new` between every character (and at both ends).
            for c in sc {
                if count < 0 || done < count { out += n; done += 1 }
                out.append(c)
            }
            if count < 0 || done < count { out += n }
            return String(String.UnicodeScalarView(out))
        }
        while i < sc.count {
            if (count < 0 || done < count), i + o.count <= sc.count, sc[i] == o[0], sc[i..<i + o.count].elementsEqual(o) {
                out += n
                i += o.count
                done += 1
            } else {
                out.append(sc[i])
                i += 1
            }
        }
        return String(String.UnicodeScalarView(out))
    }

    // MARK: json.dumps

    /// `json.dumps(value, ensure_ascii=…, indent=…, separators=…, sort_keys=…)`.
    static func json(_ value: Value, indent: Int?, separators: (String, String)?, sortKeys: Bool, ensureASCII: Bool) throws -> String {
        let itemSeparator = separators?.0 ?? (indent != nil ? "," : ", ")
        let keySeparator = separators?.1 ?? ": "
        var out = ""
        func string(_ s: String) { JSONValue.writeString(s, into: &out, ensureASCII: ensureASCII) }
        // Python indents by `indent` spaces a level (none for 0 or less), still breaking lines.
        let step = try indent.map { try Limits.width($0, "tojson indent") }
        func write(_ v: Value, _ level: Int) throws {
            func newline(_ l: Int) throws {
                guard let step else { return }
                let (n, overflow) = step.multipliedReportingOverflow(by: l)
                guard !overflow, out.utf8.count + n <= Limits.string else {
                    throw RenderError("tojson would build a string longer than \(Limits.string) bytes (nekochat's limit)")
                }
                out += "\n" + String(repeating: " ", count: n)
            }
            switch v {
            case .none: out += "null"
            case let .bool(b): out += b ? "true" : "false"
            case let .int(i): out += String(i)
            case let .float(d):
                if d.isNaN { out += "NaN" } else if d.isInfinite { out += d < 0 ? "-Infinity" : "Infinity" } else { out += Value.pyFloat(d) }
            case let .string(s): string(s)
            case let .list(a), let .tuple(a):
                if a.isEmpty { out += "[]"; return }
                out += "["
                for (i, item) in a.enumerated() {
                    if i > 0 { out += itemSeparator }
                    try newline(level + 1)
                    try write(item, level + 1)
                }
                try newline(level)
                out += "]"
            case let .dict(d):
                if d.count == 0 { out += "{}"; return }
                var pairs = Array(zip(d.keys, d.values))
                if sortKeys {
                    pairs.sort { a, b in a.0.str.unicodeScalars.lexicographicallyPrecedes(b.0.str.unicodeScalars) }
                }
                out += "{"
                for (i, (k, item)) in pairs.enumerated() {
                    if i > 0 { out += itemSeparator }
                    try newline(level + 1)
                    switch k {
                    case let .string(s): string(s)
                    case .int, .float, .bool, .none:
                        string(k.isNone ? "null" : { if case let .bool(b) = k { return b ? "true" : "false" } else { return k.repr } }())
                    default: throw RenderError("keys must be str, int, float, bool or None, not \(k.typeName)")
                    }
                    out += keySeparator
                    try write(item, level + 1)
                }
                try newline(level)
                out += "}"
            case .undefined, .object:
                throw RenderError("Object of type \(v.typeName) is not JSON serializable")
            }
        }
        try write(value, 0)
        return out
    }

    // MARK: printf-style %

    static func percent(_ format: String, _ args: Value) throws -> String {
        let items: [Value]
        var mapping: Value.Dict?
        switch args {
        case let .tuple(a): items = a
        case let .dict(d): items = [args]; mapping = d
        default: items = [args]
        }
        var next = 0
        var out = ""
        var it = Array(format.unicodeScalars)[...]
        while let c = it.popFirst() {
            guard c == "%" else { out.unicodeScalars.append(c); continue }
            var key: String?
            if it.first == "(" {
                it.removeFirst()
                var k = ""
                while let d = it.popFirst(), d != ")" { k.unicodeScalars.append(d) }
                key = k
            }
            var flags = "", width = "", precision: String?
            while let d = it.first, "-+ #0".unicodeScalars.contains(d) { flags.unicodeScalars.append(d); it.removeFirst() }
            while let d = it.first, d.properties.numericType != nil, d.isASCII { width.unicodeScalars.append(d); it.removeFirst() }
            if it.first == "." {
                it.removeFirst()
                var p = ""
                while let d = it.first, d.properties.numericType != nil, d.isASCII { p.unicodeScalars.append(d); it.removeFirst() }
                precision = p
            }
            guard let conversion = it.popFirst() else { throw RenderError("incomplete format") }
            if conversion == "%" { out += "%"; continue }
            // Widths and precisions are checked before anything is built: `%1000000000d` is an
            // error naming the limit, not a gigabyte of spaces.
            if !width.isEmpty {
                guard let w = Int(width) else { throw RenderError("format width \(width.prefix(40)) is larger than nekochat's limit (\(Limits.string))") }
                _ = try Limits.width(w, "format width")
            }
            if let precision, !precision.isEmpty {
                guard let p = Int(precision), p <= Limits.precision else {
                    throw RenderError("format precision \(precision.prefix(40)) is larger than nekochat's limit (\(Limits.precision))")
                }
            }
            let value: Value
            if let key {
                guard let mapping, let v = mapping[key] else { throw RenderError("format requires a mapping") }
                value = v
            } else {
                guard next < items.count else { throw RenderError("not enough arguments for format string") }
                value = items[next]
                next += 1
            }
            var text: String
            switch conversion {
            case "s": text = value.str
            case "r", "a": text = value.repr
            case "d", "i", "u":
                guard let n = value.number else { throw RenderError("%d format: a real number is required, not \(value.typeName)") }
                text = Int(exactly: n.rounded(.towardZero)).map(String.init) ?? String(format: "%.0f", n.rounded(.towardZero))
                if flags.contains("+"), n >= 0 { text = "+" + text }
            case "f", "F", "e", "E", "g", "G":
                guard let n = value.number else { throw RenderError("must be real number, not \(value.typeName)") }
                text = String(format: "%" + (flags.contains("+") ? "+" : "") + "." + (precision ?? "6") + String(conversion), n)
            case "x", "X", "o":
                guard let n = value.integer else { throw RenderError("%\(conversion) format: an integer is required") }
                text = String(n, radix: conversion == "o" ? 8 : 16, uppercase: conversion == "X")
            case "c": text = value.str
            default: throw RenderError("unsupported format character '\(conversion)'")
            }
            if conversion == "s" || conversion == "r", let precision, let p = Int(precision) {
                text = String(String.UnicodeScalarView(text.unicodeScalars.prefix(p)))
            }
            if let w = Int(width), text.unicodeScalars.count < w {
                let pad = w - text.unicodeScalars.count
                if flags.contains("-") { text += String(repeating: " ", count: pad) }
                else if flags.contains("0"), "dfFeEgGxXo".unicodeScalars.contains(conversion) { text = String(repeating: "0", count: pad) + text }
                else { text = String(repeating: " ", count: pad) + text }
            }
            out += text
        }
        if mapping == nil, next < items.count, case .tuple = args {
            throw RenderError("not all arguments converted during string formatting")
        }
        return out
    }

    // MARK: str.format

    static func format(_ template: String, _ args: [Value], _ kwargs: [(String, Value)]) throws -> String {
        var out = ""
        var auto = 0
        var it = Array(template.unicodeScalars)[...]
        while let c = it.popFirst() {
            if c == "{" {
                if it.first == "{" { it.removeFirst(); out += "{"; continue }
                var field = ""
                var depth = 1
                while let d = it.popFirst() {
                    if d == "{" { depth += 1 }
                    if d == "}" { depth -= 1; if depth == 0 { break } }
                    field.unicodeScalars.append(d)
                }
                var spec = "", conversion: Character?
                if let colon = field.firstIndex(of: ":") {
                    spec = String(field[field.index(after: colon)...])
                    field = String(field[..<colon])
                }
                if let bang = field.firstIndex(of: "!") {
                    conversion = field[field.index(after: bang)...].first
                    field = String(field[..<bang])
                }
                // field: "", "0", "name", "name.attr", "name[0]"
                var base = field
                var accessors = ""
                if let i = field.firstIndex(where: { $0 == "." || $0 == "[" }) {
                    base = String(field[..<i])
                    accessors = String(field[i...])
                }
                var value: Value
                if base.isEmpty {
                    guard auto < args.count else { throw RenderError("Replacement index \(auto) out of range for positional args tuple") }
                    value = args[auto]
                    auto += 1
                } else if let i = Int(base) {
                    guard i < args.count else { throw RenderError("Replacement index \(i) out of range for positional args tuple") }
                    value = args[i]
                } else {
                    guard let v = kwargs.first(where: { $0.0 == base })?.1 else { throw RenderError("'\(base)'") }
                    value = v
                }
                var rest = accessors[...]
                while let first = rest.first {
                    rest.removeFirst()
                    if first == "." {
                        let name = rest.prefix { $0 != "." && $0 != "[" }
                        rest.removeFirst(name.count)
                        if case let .dict(d) = value { value = d[String(name)] ?? .undefined(hint: "'\(name)'") }
                    } else if first == "[" {
                        let key = rest.prefix { $0 != "]" }
                        rest.removeFirst(min(rest.count, key.count + 1))
                        switch value {
                        case let .dict(d): value = d[String(key)] ?? .undefined(hint: "'\(key)'")
                        case let .list(a), let .tuple(a): value = Int(key).flatMap { $0 < a.count ? a[$0] : nil } ?? .undefined(hint: "index")
                        default: break
                        }
                    }
                }
                var text = conversion == "r" ? value.repr : value.str
                if !spec.isEmpty { text = try applySpec(spec, value, text: conversion == nil ? nil : text) }
                out += text
            } else if c == "}" {
                if it.first == "}" { it.removeFirst() }
                out += "}"
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A format spec: `[[fill]align][sign][0][width][,][.precision][type]`.
    static func applySpec(_ spec: String, _ value: Value, text converted: String?) throws -> String {
        var s = Array(spec.unicodeScalars)[...]
        var fill: Unicode.Scalar = " ", align: Unicode.Scalar?
        if s.count >= 2, "<>^=".unicodeScalars.contains(s[s.startIndex + 1]) {
            fill = s.removeFirst(); align = s.removeFirst()
        } else if let f = s.first, "<>^=".unicodeScalars.contains(f) {
            align = s.removeFirst()
        }
        var sign = ""
        if let f = s.first, "+- ".unicodeScalars.contains(f) { sign = String(f); s.removeFirst() }
        if s.first == "0" { fill = "0"; if align == nil { align = "=" }; s.removeFirst() }
        var width = ""
        while let d = s.first, d.isASCII, d.properties.numericType != nil { width.unicodeScalars.append(d); s.removeFirst() }
        var grouping = false
        if s.first == "," { grouping = true; s.removeFirst() }
        if !width.isEmpty {
            guard let w = Int(width) else { throw RenderError("format width \(width.prefix(40)) is larger than nekochat's limit (\(Limits.string))") }
            _ = try Limits.width(w, "format width")
        }
        var precision: Int?
        if s.first == "." {
            s.removeFirst()
            var p = ""
            while let d = s.first, d.isASCII, d.properties.numericType != nil { p.unicodeScalars.append(d); s.removeFirst() }
            precision = Int(p)
            guard !p.isEmpty, let q = precision, q <= Limits.precision else {
                throw RenderError("format precision \(p.prefix(40)) is larger than nekochat's limit (\(Limits.precision))")
            }
        }
        let type = s.first
        var text: String
        if let converted {
            text = converted
        } else {
            switch (type, value) {
            case ("f"?, _), ("F"?, _), ("e"?, _), ("%"?, _):
                guard let n = value.number else { throw RenderError("Unknown format code for \(value.typeName)") }
                let p = precision ?? 6
                text = type == "%" ? String(format: "%.\(p)f%%", n * 100) : String(format: "%.\(p)\(type == "e" ? "e" : "f")", n)
            case ("d"?, _):
                guard let n = value.integer else { throw RenderError("Unknown format code 'd' for \(value.typeName)") }
                text = String(n)
            case ("x"?, _), ("X"?, _), ("b"?, _), ("o"?, _):
                guard let n = value.integer else { throw RenderError("Unknown format code for \(value.typeName)") }
                text = String(n, radix: type == "b" ? 2 : type == "o" ? 8 : 16, uppercase: type == "X")
            case (nil, let .float(d)) where precision != nil:
                text = String(format: "%.\(precision!)g", d)
            default:
                text = value.str
                if let precision, value.isString { text = String(String.UnicodeScalarView(text.unicodeScalars.prefix(precision))) }
            }
            if grouping, let n = value.integer {
                let formatter = NumberFormatter()
                formatter.numberStyle = .decimal
                formatter.groupingSeparator = ","
                text = formatter.string(from: NSNumber(value: n)) ?? text
            }
            if !sign.isEmpty, sign != "-", let n = value.number, n >= 0 { text = (sign == "+" ? "+" : " ") + text }
        }
        if let w = Int(width), text.unicodeScalars.count < w {
            let pad = w - text.unicodeScalars.count
            let padding = String(String.UnicodeScalarView(Array(repeating: fill, count: pad)))
            let effective = align ?? (value.number != nil && !value.isString ? ">" : "<")
            switch effective {
            case ">": text = padding + text
            case "^":
                let left = String(String.UnicodeScalarView(Array(repeating: fill, count: pad / 2)))
                let right = String(String.UnicodeScalarView(Array(repeating: fill, count: pad - pad / 2)))
                text = left + text + right
            case "=":
                if let f = text.unicodeScalars.first, f == "-" || f == "+" {
                    text = String(f) + padding + String(String.UnicodeScalarView(text.unicodeScalars.dropFirst()))
                } else {
                    text = padding + text
                }
            default: text += padding
            }
        }
        return text
    }

    // MARK: strftime

    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                         "October", "November", "December"]
    static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    /// Python's `datetime.strftime` in the C locale, for the fields chat templates use.
    static func strftime(_ format: String, _ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let year = c.year!, month = c.month!, day = c.day!, hour = c.hour!, minute = c.minute!, second = c.second!
        let weekday = c.weekday! - 1   // 0 = Sunday
        let dayOfYear = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        var out = ""
        var it = Array(format.unicodeScalars)[...]
        while let ch = it.popFirst() {
            guard ch == "%", let next = it.first else { out.unicodeScalars.append(ch); continue }
            it.removeFirst()
            var code = next
            var pad = true
            if code == "-", let n = it.first { pad = false; code = n; it.removeFirst() }
            let p = { (n: Int) in pad ? two(n) : String(n) }
            switch code {
            case "Y": out += String(year)
            case "y": out += two(year % 100)
            case "m": out += p(month)
            case "d": out += p(day)
            case "e": out += day < 10 ? " \(day)" : "\(day)"
            case "H": out += p(hour)
            case "I": out += p(hour % 12 == 0 ? 12 : hour % 12)
            case "M": out += p(minute)
            case "S": out += p(second)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "B": out += months[month - 1]
            case "b", "h": out += String(months[month - 1].prefix(3))
            case "A": out += weekdays[weekday]
            case "a": out += String(weekdays[weekday].prefix(3))
            case "j": out += pad ? String(format: "%03d", dayOfYear) : String(dayOfYear)
            case "w": out += String(weekday)
            case "U", "W":
                // Week of the year: weeks start on Sunday (%U) or Monday (%W); days before the first are week 0.
                let firstDayOffset = code == "U" ? weekday : (weekday + 6) % 7
                out += two((dayOfYear + 6 - firstDayOffset) / 7)
            case "u": out += String(weekday == 0 ? 7 : weekday)
            case "Z": out += ""
            case "z": out += ""
            case "%": out += "%"
            case "F": out += "\(year)-\(two(month))-\(two(day))"
            case "T": out += "\(two(hour)):\(two(minute)):\(two(second))"
            case "D": out += "\(two(month))/\(two(day))/\(two(year % 100))"
            default: out += "%" + String(code)
            }
        }
        return out
    }
}
