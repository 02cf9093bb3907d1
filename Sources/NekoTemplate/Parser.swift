/// Tokens → AST, following jinja2's grammar and operator precedence.
struct Parser {
    let tokens: [Token]
    var p = 0
    /// Inside an `if` or a conditional expression, jinja2 defers unknown filters and tests to
    /// run time ("soft" frames); elsewhere they are compile errors.
    var softDepth = 0
    /// How deep the parser is in nested expressions and blocks (bounded by `Limits.nesting`).
    var nesting = 0

    /// Enters one level of nesting; past the limit the template is an error, not a stack overflow.
    mutating func enter() throws {
        nesting += 1
        if nesting > Limits.nesting { throw error("the template nests deeper than \(Limits.nesting) levels (nekochat's limit)") }
    }

    init(_ tokens: [Token]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> [Node] {
        var parser = Parser(try Lexer.tokenize(source))
        let (nodes, end) = try parser.parseBody(until: [])
        if let end { throw parser.error("unexpected '\(end)'") }
        return nodes
    }

    var current: Token { tokens[p] }
    var location: SourceLocation { current.location }

    func error(_ message: String, at loc: SourceLocation? = nil) -> TemplateError {
        let l = loc ?? location
        return TemplateError(.syntax, message, line: l.line, column: l.column)
    }

    mutating func next() -> Token {
        let t = tokens[p]
        if p < tokens.count - 1 { p += 1 }
        return t
    }

    func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    func isName(_ name: String) -> Bool { current.kind == .name(name) }

    mutating func skipOp(_ op: String) -> Bool {
        if isOp(op) { p += 1; return true }
        return false
    }

    mutating func skipName(_ name: String) -> Bool {
        if isName(name) { p += 1; return true }
        return false
    }

    mutating func expectOp(_ op: String) throws {
        guard skipOp(op) else { throw error("expected '\(op)'\(describeCurrent)") }
    }

    mutating func expectName(_ name: String) throws {
        guard skipName(name) else { throw error("expected '\(name)'\(describeCurrent)") }
    }

    var describeCurrent: String {
        switch current.kind {
        case let .name(n): ", found '\(n)'"
        case let .op(o): ", found '\(o)'"
        case .blockEnd: ", found end of block"
        case .variableEnd: ", found end of print statement"
        case .eof: ", found end of template"
        case let .string(s): ", found string \(s.debugDescription)"
        default: ""
        }
    }

    mutating func identifier() throws -> String {
        guard case let .name(n) = current.kind else { throw error("expected a name\(describeCurrent)") }
        p += 1
        return n
    }

    mutating func expectBlockEnd() throws {
        guard current.kind == .blockEnd else { throw error("expected end of block tag\(describeCurrent)") }
        p += 1
    }

    // MARK: statements

    /// Parses nodes until a block whose tag is in `until`; returns the nodes and that tag
    /// (positioned after the tag name), or nil at the end of the template.
    mutating func parseBody(until: Set<String>) throws -> ([Node], String?) {
        try enter()
        defer { nesting -= 1 }
        var nodes: [Node] = []
        while true {
            let tok = current
            switch tok.kind {
            case .eof:
                if !until.isEmpty {
                    throw error("unexpected end of template; expected one of \(until.sorted().map { "'\($0)'" }.joined(separator: ", "))")
                }
                return (nodes, nil)
            case let .text(t):
                p += 1
                nodes.append(.text(t))
            case .variableBegin:
                p += 1
                let e = try parseTuple()
                guard current.kind == .variableEnd else { throw error("expected end of print statement\(describeCurrent)") }
                p += 1
                nodes.append(.located(.output(e), tok.location))
            case .blockBegin:
                p += 1
                let tagLoc = location
                let tag = try identifier()
                if until.contains(tag) { return (nodes, tag) }
                nodes.append(.located(try parseStatement(tag, at: tagLoc), tagLoc))
            default:
                throw error("unexpected token")
            }
        }
    }

    mutating func parseStatement(_ tag: String, at loc: SourceLocation) throws -> Node {
        switch tag {
        case "if": return try parseIf()
        case "for": return try parseFor()
        case "set": return try parseSet()
        case "macro": return try parseMacro()
        case "call": return try parseCall()
        case "filter":
            let filters = try parseFilterChain()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            try expectBlockEnd()
            return .filterBlock(filters, body: body)
        case "with":
            var assignments: [(Target, Expr)] = []
            while current.kind != .blockEnd {
                let target = try parseTarget(allowAttribute: false)
                try expectOp("=")
                assignments.append((target, try parseExpression()))
                if !skipOp(",") { break }
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endwith"])
            try expectBlockEnd()
            return .with(assignments, body: body)
        case "break": try expectBlockEnd(); return .breakLoop
        case "continue": try expectBlockEnd(); return .continueLoop
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .generation(body)
        case "do":
            let e = try parseTuple()
            try expectBlockEnd()
            return .set(.name("_"), e)
        default:
            throw error("unknown tag '\(tag)'", at: loc)
        }
    }

    mutating func parseIf() throws -> Node {
        softDepth += 1
        defer { softDepth -= 1 }
        var branches: [(Expr, [Node])] = []
        var condition = try parseTuple()
        try expectBlockEnd()
        while true {
            let (body, end) = try parseBody(until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch end {
            case "elif":
                condition = try parseTuple()
                try expectBlockEnd()
            case "else":
                try expectBlockEnd()
                let (otherwise, _) = try parseBody(until: ["endif"])
                try expectBlockEnd()
                return .ifBlock(branches, otherwise: otherwise)
            default:
                try expectBlockEnd()
                return .ifBlock(branches, otherwise: [])
            }
        }
    }

    mutating func parseTarget(allowAttribute: Bool) throws -> Target {
        var targets: [Target] = []
        let parenthesised = skipOp("(")
        repeat {
            if isOp(")") { break }
            let name = try identifier()
            if allowAttribute, skipOp(".") {
                targets.append(.attribute(name, try identifier()))
            } else {
                targets.append(.name(name))
            }
        } while skipOp(",")
        if parenthesised { try expectOp(")") }
        return targets.count == 1 && !parenthesised ? targets[0] : .tuple(targets)
    }

    mutating func parseFor() throws -> Node {
        let target = try parseTarget(allowAttribute: false)
        try expectName("in")
        let iterable = try parseTuple(withCondition: false)
        var filter: Expr?
        if skipName("if") { filter = try parseExpression() }
        let recursive = skipName("recursive")
        try expectBlockEnd()
        let (body, end) = try parseBody(until: ["else", "endfor"])
        var otherwise: [Node] = []
        if end == "else" {
            try expectBlockEnd()
            (otherwise, _) = try parseBody(until: ["endfor"])
        }
        try expectBlockEnd()
        return .forLoop(target, iterable, filter: filter, body: body, otherwise: otherwise, recursive: recursive)
    }

    mutating func parseSet() throws -> Node {
        let target = try parseTarget(allowAttribute: true)
        if skipOp("=") {
            let value = try parseTuple()
            try expectBlockEnd()
            return .set(target, value)
        }
        let filters = isOp("|") ? try parseFilterChain() : []
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endset"])
        try expectBlockEnd()
        return .setBlock(target, filters: filters, body: body)
    }

    mutating func parseParameters() throws -> [(String, Expr?)] {
        var params: [(String, Expr?)] = []
        try expectOp("(")
        while !isOp(")") {
            let name = try identifier()
            let value: Expr? = skipOp("=") ? try parseExpression() : nil
            params.append((name, value))
            if !skipOp(",") { break }
        }
        try expectOp(")")
        return params
    }

    mutating func parseMacro() throws -> Node {
        let name = try identifier()
        let params = try parseParameters()
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endmacro"])
        if case .name = current.kind { p += 1 }   // {% endmacro name %}
        try expectBlockEnd()
        return .macro(MacroDefinition(name: name, parameters: params, body: body))
    }

    mutating func parseCall() throws -> Node {
        let params = isOp("(") ? try parseParameters() : []
        let call = try parseExpression()
        guard case .call = stripLocation(call) else { throw error("expected a call") }
        try expectBlockEnd()
        let (body, _) = try parseBody(until: ["endcall"])
        try expectBlockEnd()
        return .callBlock(call, parameters: params, body: body)
    }

    func stripLocation(_ e: Expr) -> Expr {
        if case let .located(inner, _) = e { return stripLocation(inner) }
        return e
    }

    /// `| f(args) | g …` (after a set block or filter tag).
    mutating func parseFilterChain() throws -> [(String, [Expr], [(String, Expr)])] {
        var filters: [(String, [Expr], [(String, Expr)])] = []
        _ = skipOp("|")
        repeat {
            var name = try identifier()
            while skipOp(".") { name += "." + (try identifier()) }
            var args: [Expr] = [], kwargs: [(String, Expr)] = []
            if isOp("(") { (args, kwargs) = try parseArguments() }
            filters.append((name, args, kwargs))
        } while skipOp("|")
        return filters
    }

}
