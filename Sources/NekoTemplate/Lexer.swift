/// Template text → tokens, with jinja2's whitespace rules as transformers configures them:
/// `trim_blocks` (drop the newline after a block or comment tag), `lstrip_blocks` (drop the
/// spaces and tabs before a block or comment tag that starts a line), `-` to strip all
/// whitespace on that side, `+` to keep it; newlines normalized to `\n` and one trailing
/// newline removed, as jinja2 does.
struct Token: Sendable {
    enum Kind: Equatable, Sendable {
        case text(String)
        case variableBegin, variableEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case eof
    }
    let kind: Kind
    let location: SourceLocation
}

struct Lexer {
    let source: [Unicode.Scalar]
    var i = 0
    var line = 1
    var column = 1
    var tokens: [Token] = []
    /// Set after a tag that strips (or trims) the whitespace that follows it.
    var stripNextText: StripMode = .none
    let trimBlocks = true
    let lstripBlocks = true

    enum StripMode { case none, all, oneNewline }

    init(_ text: String) {
        // jinja2: every newline sequence becomes "\n"; one trailing newline is dropped.
        var s: [Unicode.Scalar] = []
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if c == "\r" {
                if it.first == "\n" { it.removeFirst() }
                s.append("\n")
            } else {
                s.append(c)
            }
        }
        if s.last == "\n" { s.removeLast() }
        source = s
    }

    func error(_ message: String, at loc: SourceLocation? = nil) -> TemplateError {
        let l = loc ?? SourceLocation(line: line, column: column)
        return TemplateError(.syntax, message, line: l.line, column: l.column)
    }

    var location: SourceLocation { SourceLocation(line: line, column: column) }

    func peek(_ offset: Int = 0) -> Unicode.Scalar? {
        i + offset < source.count ? source[i + offset] : nil
    }

    mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < source.count {
            if source[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
    }

    func startsWith(_ s: String, at offset: Int = 0) -> Bool {
        var k = i + offset
        for c in s.unicodeScalars {
            guard k < source.count, source[k] == c else { return false }
            k += 1
        }
        return true
    }

    static func tokenize(_ text: String) throws -> [Token] {
        var lexer = Lexer(text)
        try lexer.run()
        return lexer.tokens
    }

    mutating func run() throws {
        var text: [Unicode.Scalar] = []
        var textStart = location
        func flushText(stripRight: Bool, lstripLine: Bool) {
            var t = text
            if stripRight {
                while let last = t.last, last.properties.isWhitespace { t.removeLast() }
            } else if lstripLine {
                // Remove spaces/tabs between the last newline (or the start) and the tag.
                var k = t.count
                while k > 0, t[k - 1] == " " || t[k - 1] == "\t" { k -= 1 }
                if k == 0 ? !lineHasContentBeforeText : t[k - 1] == "\n" { t.removeSubrange(k...) }
            }
            if !t.isEmpty { tokens.append(Token(kind: .text(String(String.UnicodeScalarView(t))), location: textStart)) }
            text.removeAll()
        }
        while i < source.count {
            let c = source[i]
            if c == "{", let next = peek(1), next == "{" || next == "%" || next == "#" {
                let marker = peek(2)
                let stripLeft = marker == "-"
                let keepLeft = marker == "+"
                let isBlockOrComment = next != "{"
                flushText(stripRight: stripLeft, lstripLine: isBlockOrComment && lstripBlocks && !keepLeft)
                let tagStart = location
                if next == "#" {
                    try skipComment(start: tagStart)
                } else if next == "%", try rawBlock(start: tagStart) {
                    // handled
                } else {
                    tokens.append(Token(kind: next == "{" ? .variableBegin : .blockBegin, location: tagStart))
                    advance(stripLeft || keepLeft ? 3 : 2)
                    try lexTag(block: next == "%", start: tagStart)
                }
                textStart = location
                continue
            }
            if text.isEmpty { textStart = location }
            switch stripNextText {
            case .all where c.properties.isWhitespace:
                advance(); continue
            case .oneNewline where c == "\n":
                stripNextText = .none
                advance(); continue
            default:
                stripNextText = .none
            }
            text.append(c)
            advance()
        }
        flushText(stripRight: false, lstripLine: false)
        tokens.append(Token(kind: .eof, location: location))
    }

    /// Whether the current line had output before the pending text started (for lstrip_blocks
    /// when the text holds no newline): true when the last token on this line is not a newline.
    var lineHasContentBeforeText: Bool {
        // The pending text starts right after a tag; a tag on the same line means content.
        guard let last = tokens.last else { return false }
        return last.location.line == line && last.kind != .eof
    }

    mutating func skipComment(start: SourceLocation) throws {
        advance(2)
        if peek() == "-" || peek() == "+" { advance() }
        while i < source.count {
            if startsWith("-#}") {
                advance(3); stripNextText = .all; return
            }
            if startsWith("#}") {
                advance(2); stripNextText = trimBlocks ? .oneNewline : .none; return
            }
            advance()
        }
        throw error("missing end of comment tag", at: start)
    }

    /// `{% raw %}…{% endraw %}`: the content is text, untouched.
    mutating func rawBlock(start: SourceLocation) throws -> Bool {
        var k = 2
        if peek(k) == "-" || peek(k) == "+" { k += 1 }
        while let c = peek(k), c == " " || c == "\t" || c == "\n" { k += 1 }
        guard startsWith("raw", at: k) else { return false }
        k += 3
        while let c = peek(k), c == " " || c == "\t" || c == "\n" { k += 1 }
        var stripAfter = false
        if peek(k) == "-" { stripAfter = true; k += 1 }
        guard startsWith("%}", at: k) else { return false }
        advance(k + 2)
        var content: [Unicode.Scalar] = []
        if stripAfter {
            while let c = peek(), c.properties.isWhitespace { advance() }
        } else if trimBlocks, peek() == "\n" {
            advance()
        }
        let contentStart = location
        while i < source.count {
            if startsWith("{%") {
                var m = 2
                let stripBefore = peek(m) == "-"
                if peek(m) == "-" || peek(m) == "+" { m += 1 }
                while let c = peek(m), c == " " || c == "\t" || c == "\n" { m += 1 }
                if startsWith("endraw", at: m) {
                    m += 6
                    while let c = peek(m), c == " " || c == "\t" || c == "\n" { m += 1 }
                    var strip = false
                    if peek(m) == "-" { strip = true; m += 1 }
                    if startsWith("%}", at: m) {
                        if stripBefore {
                            while let last = content.last, last.properties.isWhitespace { content.removeLast() }
                        } else if lstripBlocks {
                            var n = content.count
                            while n > 0, content[n - 1] == " " || content[n - 1] == "\t" { n -= 1 }
                            if n == 0 || content[n - 1] == "\n" { content.removeSubrange(n...) }
                        }
                        advance(m + 2)
                        stripNextText = strip ? .all : (trimBlocks ? .oneNewline : .none)
                        if !content.isEmpty {
                            tokens.append(Token(kind: .text(String(String.UnicodeScalarView(content))), location: contentStart))
                        }
                        return true
                    }
                }
            }
            content.append(source[i])
            advance()
        }
        throw error("missing endraw", at: start)
    }

    static let operators: [String] = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                      "=", ".", ",", ":", "|", "(", ")", "[", "]", "{", "}"]

    mutating func lexTag(block: Bool, start: SourceLocation) throws {
        var depth = 0
        while true {
            while let c = peek(), c == " " || c == "\t" || c == "\n" || c == "\r" { advance() }
            guard let c = peek() else {
                throw error(block ? "missing end of block tag '%}'" : "missing end of variable tag '}}'", at: start)
            }
            let loc = location
            if depth == 0 {
                let end = block ? "%}" : "}}"
                if startsWith("-" + end) {
                    advance(3)
                    tokens.append(Token(kind: block ? .blockEnd : .variableEnd, location: loc))
                    stripNextText = .all
                    return
                }
                if startsWith("+" + end), block {
                    advance(3)
                    tokens.append(Token(kind: .blockEnd, location: loc))
                    stripNextText = .none
                    return
                }
                if startsWith(end) {
                    advance(2)
                    tokens.append(Token(kind: block ? .blockEnd : .variableEnd, location: loc))
                    stripNextText = block && trimBlocks ? .oneNewline : .none
                    return
                }
            }
            if c == "\"" || c == "'" {
                tokens.append(Token(kind: .string(try lexString(quote: c)), location: loc))
            } else if c.properties.numericType != nil && c.isASCII {
                tokens.append(Token(kind: try lexNumber(), location: loc))
            } else if c == "_" || c.properties.isAlphabetic {
                var name = ""
                while let d = peek(), d == "_" || d.properties.isAlphabetic || (d.isASCII && d.properties.numericType != nil) {
                    name.unicodeScalars.append(d)
                    advance()
                }
                tokens.append(Token(kind: .name(name), location: loc))
            } else if let op = Self.operators.first(where: { startsWith($0) }) {
                advance(op.unicodeScalars.count)
                if op == "(" || op == "[" || op == "{" { depth += 1 }
                if op == ")" || op == "]" || op == "}" {
                    depth -= 1
                    if depth < 0 { throw error("unexpected '\(op)'", at: loc) }
                }
                tokens.append(Token(kind: .op(op), location: loc))
            } else {
                throw error("unexpected character '\(c)'", at: loc)
            }
        }
    }

    mutating func lexString(quote: Unicode.Scalar) throws -> String {
        let start = location
        advance()
        var s = String.UnicodeScalarView()
        while let c = peek() {
            if c == quote { advance(); return String(s) }
            if c == "\\" {
                advance()
                guard let e = peek() else { break }
                advance()
                switch e {
                case "n": s.append("\n")
                case "t": s.append("\t")
                case "r": s.append("\r")
                case "\\": s.append("\\")
                case "'": s.append("'")
                case "\"": s.append("\"")
                case "0": s.append("\0")
                case "u", "x", "U":
                    let count = e == "x" ? 2 : e == "u" ? 4 : 8
                    var v: UInt32 = 0
                    for _ in 0..<count {
                        guard let h = peek(), let d = UInt32(String(h), radix: 16) else { throw error("invalid escape", at: start) }
                        v = v * 16 + d
                        advance()
                    }
                    s.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                case "\n": break
                default:
                    s.append("\\")
                    s.append(e)
                }
                continue
            }
            s.append(c)
            advance()
        }
        throw error("unterminated string", at: start)
    }

    mutating func lexNumber() throws -> Token.Kind {
        var text = ""
        var isFloat = false
        func digits() {
            while let d = peek(), d.isASCII, d.properties.numericType != nil || d == "_" {
                if d != "_" { text.unicodeScalars.append(d) }
                advance()
            }
        }
        digits()
        if peek() == ".", let d = peek(1), d.isASCII, d.properties.numericType != nil {
            isFloat = true
            text += "."
            advance()
            digits()
        }
        if let e = peek(), e == "e" || e == "E" {
            let sign = peek(1)
            let hasSign = sign == "+" || sign == "-"
            if let d = peek(hasSign ? 2 : 1), d.isASCII, d.properties.numericType != nil {
                isFloat = true
                text += "e"
                advance()
                if hasSign { text.unicodeScalars.append(sign!); advance() }
                digits()
            }
        }
        if isFloat { return .float(Double(text) ?? 0) }
        if let i = Int(text) { return .integer(i) }
        throw error("integer literal \(text.prefix(40)) is beyond 64 bits (Python would keep a big integer; nekochat does not)")
    }
}
