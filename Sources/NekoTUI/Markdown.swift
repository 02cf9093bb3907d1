import Foundation

/// Markdown as a terminal shows it, for replies that are still streaming: headings, emphasis,
/// lists, block quotes, tables, links, rules and fenced code blocks (with their language and a
/// few languages' syntax colours), wrapped by display width. Text that is not (yet) valid
/// Markdown stays as written: an unclosed fence renders as code up to the end, an unclosed `**`
/// as literal stars — a frame is never broken by what the next token will complete.
enum Markdown {
    /// The code blocks of a text, in order (what `/copy N` copies).
    static func codeBlocks(_ text: String) -> [String] {
        var blocks: [String] = [], current: [Substring]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if fence(line) != nil {
                if let c = current { blocks.append(c.joined(separator: "\n")); current = nil } else { current = [] }
            } else if current != nil {
                current!.append(line)
            }
        }
        if var c = current {
            while c.last?.isEmpty == true { c.removeLast() }
            blocks.append(c.joined(separator: "\n"))
        }
        return blocks
    }

    /// ``` or ~~~ with an optional language; nil when the line is not a fence.
    static func fence(_ line: Substring) -> String? {
        let t = line.drop { $0 == " " }
        guard t.hasPrefix("```") || t.hasPrefix("~~~") else { return nil }
        return String(t.dropFirst(3)).trimmingCharacters(in: .whitespaces)
    }

    /// `width`: prose wraps there (the measure); `wide`: code blocks and tables may use this much.
    static func render(_ text: String, width: Int, wide: Int? = nil) -> [Line] {
        let w = max(4, width), wideW = max(w, wide ?? w)
        var out: [Line] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var i = 0, codeIndex = 0
        while i < lines.count {
            let line = lines[i]
            if let lang = fence(Substring(line)) {
                // A fenced block: its language and number, then its lines unwrapped (cut at the width).
                codeIndex += 1
                var body: [String] = []
                i += 1
                while i < lines.count, fence(Substring(lines[i])) == nil { body.append(lines[i]); i += 1 }
                let closed = i < lines.count
                i += 1
                let label = "[\(codeIndex)] " + (lang.isEmpty ? "code" : lang) + (closed ? "" : " …")
                out.append([Span("┌ " + label + " " + String(repeating: "─", count: max(0, min(wideW, 60) - displayWidth(label) - 3)), .dim)])
                for b in body {
                    var l: Line = [Span("│ ", .dim)]
                    l += Syntax.highlight(expandTabs(b), language: lang)
                    out += clip(l, width: wideW)
                }
                out.append([Span("└" + String(repeating: "─", count: max(0, min(wideW, 60) - 1)), .dim)])
                continue
            }
            if isTableRow(line), i + 1 < lines.count, isTableSeparator(lines[i + 1]) {
                var rows = [cells(line)]
                i += 2
                while i < lines.count, isTableRow(lines[i]) { rows.append(cells(lines[i])); i += 1 }
                out += table(rows, width: wideW)
                continue
            }
            out += block(line, width: w)
            i += 1
        }
        return out
    }

    /// One line of prose: a heading, a rule, a quote, a list item or a paragraph line.
    static func block(_ line: String, width w: Int) -> [Line] {
        let trimmed = line.drop { $0 == " " }
        let indent = line.count - trimmed.count
        if trimmed.isEmpty { return [[]] }
        if let level = heading(trimmed) {
            let text = String(trimmed.dropFirst(level + 1))
            return wrap(inline(text, base: .heading), width: w)
        }
        if trimmed.allSatisfy({ $0 == "-" || $0 == "*" || $0 == "_" || $0 == " " }), trimmed.filter({ $0 != " " }).count >= 3,
           Set(trimmed.filter { $0 != " " }).count == 1 {
            return [[Span(String(repeating: "─", count: min(w, 40)), .dim)]]
        }
        if trimmed.hasPrefix(">") {
            let inner = String(trimmed.dropFirst().drop { $0 == " " })
            return wrap(inline(inner, base: .quote), width: w - 2).map { [Span("│ ", .dim)] + $0 }
        }
        if let (marker, rest) = listItem(trimmed) {
            let pad = String(repeating: " ", count: min(indent, 8))
            let head = pad + marker
            let body = wrap(inline(rest, base: .text), width: max(1, w - displayWidth(head)))
            return body.enumerated().map { n, l in [Span(n == 0 ? head : String(repeating: " ", count: displayWidth(head)), n == 0 ? .label : .text)] + l }
        }
        return wrap(inline(line, base: .text), width: w)
    }

    static func heading(_ s: Substring) -> Int? {
        let hashes = s.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes), s.dropFirst(hashes).first == " " else { return nil }
        return hashes
    }

    /// "- x", "* x", "+ x" → bullet; "12. x" or "12) x" → the number.
    static func listItem(_ s: Substring) -> (String, String)? {
        if let c = s.first, "-*+".contains(c), s.dropFirst().first == " " { return ("• ", String(s.dropFirst(2))) }
        let digits = s.prefix { $0.isASCII && $0.isNumber }
        if !digits.isEmpty, digits.count <= 3, let after = s.dropFirst(digits.count).first, after == "." || after == ")",
           s.dropFirst(digits.count + 1).first == " " {
            return ("\(digits). ", String(s.dropFirst(digits.count + 2)))
        }
        return nil
    }

    /// Inline Markdown → spans: **strong**, *em* / _em_, `code`, [text](url). An opener
    /// without its closer stays literal text.
    static func inline(_ text: String, base: StyleRole) -> [Span] {
        var spans: [Span] = []
        let c = Array(text)
        var i = 0, plain = ""
        func flush() { if !plain.isEmpty { spans.append(Span(plain, base)); plain = "" } }
        // The last answer per closer: a search from a later start up to that answer (or past a
        // failed one) has the same answer, so a line of unmatched openers is scanned once per
        // closer rather than once per opener.
        var last: [[Character]: (from: Int, at: Int?)] = [:]
        func find(_ close: [Character], from start: Int) -> Int? {
            if let known = last[close], start >= known.from, start <= (known.at ?? Int.max) { return known.at }
            var j = start, found: Int?
            scan: while j + close.count <= c.count {
                for k in 0..<close.count where c[j + k] != close[k] { j += 1; continue scan }
                found = j
                break
            }
            last[close] = (start, found)
            return found
        }
        while i < c.count {
            let ch = c[i]
            if ch == "`", let end = find(["`"], from: i + 1), end > i + 1 {
                flush(); spans.append(Span(String(c[i + 1..<end]), .code)); i = end + 1; continue
            }
            if (ch == "*" || ch == "_"), i + 1 < c.count, c[i + 1] == ch, let end = find([ch, ch], from: i + 2), end > i + 2 {
                flush(); spans += inline(String(c[i + 2..<end]), base: .bold); i = end + 2; continue
            }
            if (ch == "*" || ch == "_"), i + 1 < c.count, c[i + 1] != " ", c[i + 1] != ch,
               (i == 0 || !c[i - 1].isLetter || ch == "*"), let end = find([ch], from: i + 1), end > i + 1, c[end - 1] != " " {
                flush(); spans += inline(String(c[i + 1..<end]), base: .italic); i = end + 1; continue
            }
            if ch == "[", let close = find(["]", "("], from: i + 1), let end = find([")"], from: close + 2) {
                flush()
                let label = String(c[i + 1..<close]), url = String(c[close + 2..<end])
                spans.append(Span(label, .link))
                if url != label { spans.append(Span(" (\(url))", .dim)) }
                i = end + 1
                continue
            }
            plain.append(ch)
            i += 1
        }
        flush()
        return spans
    }

    static func isTableRow(_ s: String) -> Bool {
        let t = s.trimmingCharacters(in: .whitespaces)
        return t.hasPrefix("|") && t.count > 1 && t.filter { $0 == "|" }.count >= 2
    }

    static func isTableSeparator(_ s: String) -> Bool {
        let t = s.trimmingCharacters(in: .whitespaces)
        return isTableRow(t) && t.allSatisfy { "|-: ".contains($0) } && t.contains("-")
    }

    static func cells(_ s: String) -> [String] {
        var t = s.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("|") { t.removeFirst() }
        if t.hasSuffix("|") { t.removeLast() }
        return t.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// A table with columns padded by display width; too wide for the screen, each row's cells
    /// are listed instead.
    static func table(_ rows: [[String]], width w: Int) -> [Line] {
        let columns = rows.map(\.count).max() ?? 0
        var widths = Array(repeating: 0, count: columns)
        for r in rows { for (j, cell) in r.enumerated() { widths[j] = max(widths[j], displayWidth(cell)) } }
        let total = widths.reduce(0, +) + 3 * max(0, columns - 1) + 4
        guard total <= w else {
            return rows.flatMap { r in wrap([Span("• " + r.joined(separator: " · "), .text)], width: w) }
        }
        var out: [Line] = []
        for (n, r) in rows.enumerated() {
            var line: Line = [Span("│ ", .dim)]
            for j in 0..<columns {
                let cell = j < r.count ? r[j] : ""
                line += inline(cell, base: n == 0 ? .bold : .text)
                line.append(Span(String(repeating: " ", count: widths[j] - displayWidth(cell)) + (j + 1 < columns ? " │ " : " │"), .dim))
            }
            out.append(line)
            if n == 0 {
                out.append([Span("├" + widths.map { String(repeating: "─", count: $0 + 2) }.joined(separator: "┼") + "┤", .dim)])
            }
        }
        return out
    }

    /// A code line cut into screen lines at the width (code is never word-wrapped).
    static func clip(_ line: Line, width: Int) -> [Line] {
        var out: [Line] = [[]], used = 0
        for span in line {
            var piece = ""
            for ch in span.text {
                let cw = displayWidth(ch)
                if used + cw > width {
                    if !piece.isEmpty { out[out.count - 1].append(Span(piece, span.style)); piece = "" }
                    out.append([Span("│ ", .dim)])
                    used = 2
                }
                piece.append(ch)
                used += cw
            }
            if !piece.isEmpty { out[out.count - 1].append(Span(piece, span.style)) }
        }
        return out
    }
}

/// Syntax colours for a few common languages: keywords, strings, comments, numbers.
enum Syntax {
    static let keywords: [String: Set<String>] = {
        let c = ["if", "else", "for", "while", "do", "return", "break", "continue", "switch", "case", "default", "struct", "enum",
                 "const", "static", "void", "int", "char", "float", "double", "unsigned", "long", "sizeof", "typedef", "goto"]
        let swift = ["func", "let", "var", "if", "else", "guard", "for", "in", "while", "return", "struct", "class", "enum", "case",
                     "switch", "default", "import", "protocol", "extension", "public", "private", "static", "self", "init", "throws",
                     "try", "async", "await", "nil", "true", "false", "where", "some", "any", "defer", "break", "continue"]
        let python = ["def", "class", "if", "elif", "else", "for", "while", "in", "return", "import", "from", "as", "with", "try",
                      "except", "finally", "raise", "lambda", "yield", "None", "True", "False", "and", "or", "not", "is", "pass",
                      "break", "continue", "global", "async", "await", "self"]
        let js = ["function", "const", "let", "var", "if", "else", "for", "while", "return", "class", "new", "import", "export",
                  "from", "async", "await", "true", "false", "null", "undefined", "this", "try", "catch", "throw", "typeof"]
        let sh = ["if", "then", "else", "elif", "fi", "for", "in", "do", "done", "while", "case", "esac", "function", "return",
                  "export", "local", "echo", "set", "cd"]
        let rust = ["fn", "let", "mut", "if", "else", "for", "in", "while", "loop", "match", "return", "struct", "enum", "impl",
                    "trait", "pub", "use", "mod", "self", "Self", "true", "false", "const", "static", "where", "as", "ref"]
        var m: [String: Set<String>] = [:]
        for (names, words) in [(["c", "cpp", "c++", "h"], c), (["swift"], swift), (["python", "py"], python),
                               (["javascript", "js", "ts", "typescript"], js), (["sh", "bash", "shell", "zsh"], sh), (["rust", "rs"], rust)] {
            for n in names { m[n] = Set(words) }
        }
        return m
    }()

    static func lineComment(_ language: String) -> String? {
        switch language {
        case "python", "py", "sh", "bash", "shell", "zsh": "#"
        case "": nil
        default: "//"
        }
    }

    static func highlight(_ line: String, language: String) -> Line {
        let lang = language.lowercased()
        guard let words = keywords[lang] else { return [Span(line, .code)] }
        var out: Line = []
        let c = Array(line)
        var i = 0
        func add(_ s: String, _ style: StyleRole) {
            if let last = out.last, last.style == style { out[out.count - 1].text += s } else { out.append(Span(s, style)) }
        }
        let comment = lineComment(lang).map(Array.init)
        while i < c.count {
            if let comment, i + comment.count <= c.count, Array(c[i..<i + comment.count]) == comment {
                add(String(c[i...]), .comment)
                break
            }
            let ch = c[i]
            if ch == "\"" || ch == "'" || ch == "`" {
                var j = i + 1
                while j < c.count, c[j] != ch { j += c[j] == "\\" ? 2 : 1 }
                let end = min(c.count, j + 1)
                add(String(c[i..<end]), .string)
                i = end
                continue
            }
            if ch.isLetter || ch == "_" {
                var j = i
                while j < c.count, c[j].isLetter || c[j].isNumber || c[j] == "_" { j += 1 }
                let word = String(c[i..<j])
                add(word, words.contains(word) ? .keyword : .code)
                i = j
                continue
            }
            if ch.isNumber {
                var j = i
                while j < c.count, c[j].isNumber || c[j] == "." || c[j] == "x" || c[j].isHexDigit { j += 1 }
                add(String(c[i..<j]), .number)
                i = j
                continue
            }
            add(String(ch), .code)
            i += 1
        }
        return out
    }
}
