/// Tokens → AST, following jinja2's grammar and operator precedence.
struct Parser {
    let tokens: [Token]
    var p = 0
    /// Inside an `if` or a conditional expression, jinja2 defers unknown filters and tests to
    /// run time ("soft" frames); elsewhere they are compile errors.
    var softDepth = 0

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

    // MARK: expressions

    /// `a, b` → tuple (an implicit tuple needs at least one comma).
    mutating func parseTuple(withCondition: Bool = true) throws -> Expr {
        let loc = location
        var items: [Expr] = []
        var sawComma = false
        while true {
            if !items.isEmpty {
                guard skipOp(",") else { break }
                sawComma = true
                if current.kind == .blockEnd || current.kind == .variableEnd || isOp(")") || isName("in") { break }
            }
            items.append(withCondition ? try parseExpression() : try parseOr())
        }
        if !sawComma { return items[0] }
        return .located(.tuple(items), loc)
    }

    mutating func parseExpression() throws -> Expr {
        let loc = location
        let start = p
        var value = try parseOr()
        if skipName("if") {
            // The whole conditional expression is soft: parse its value again as such.
            let afterIf = p
            p = start
            softDepth += 1
            defer { softDepth -= 1 }
            value = try parseOr()
            p = afterIf
            let condition = try parseOr()
            let otherwise: Expr? = skipName("else") ? try parseExpression() : nil
            return .located(.conditional(value, condition: condition, otherwise: otherwise), loc)
        }
        return value
    }

    mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while skipName("or") { left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while skipName("and") { left = .and(left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> Expr {
        let loc = location
        if skipName("not") { return .located(.unary("not", try parseNot()), loc) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> Expr {
        let loc = location
        let first = try parseMath1()
        var rest: [(String, Expr)] = []
        while true {
            if case let .op(o) = current.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                p += 1
                rest.append((o, try parseMath1()))
            } else if skipName("in") {
                rest.append(("in", try parseMath1()))
            } else if isName("not"), tokens[p + 1].kind == .name("in") {
                p += 2
                rest.append(("notin", try parseMath1()))
            } else {
                break
            }
        }
        return rest.isEmpty ? first : .located(.compare(first, rest), loc)
    }

    mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        while case let .op(o) = current.kind, o == "+" || o == "-" {
            let loc = location
            p += 1
            left = .located(.binary(o, left, try parseConcat()), loc)
        }
        return left
    }

    mutating func parseConcat() throws -> Expr {
        var left = try parseMath2()
        while isOp("~") {
            let loc = location
            p += 1
            left = .located(.binary("~", left, try parseMath2()), loc)
        }
        return left
    }

    mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        while case let .op(o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            let loc = location
            p += 1
            left = .located(.binary(o, left, try parsePow()), loc)
        }
        return left
    }

    mutating func parsePow() throws -> Expr {
        var left = try parseUnary()
        while isOp("**") {
            let loc = location
            p += 1
            left = .located(.binary("**", left, try parseUnary()), loc)
        }
        return left
    }

    mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        let loc = location
        var node: Expr
        if skipOp("-") {
            node = .located(.unary("-", try parseUnary(withFilter: false)), loc)
        } else if skipOp("+") {
            node = .located(.unary("+", try parseUnary(withFilter: false)), loc)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpression(node) }
        return node
    }

    mutating func parsePrimary() throws -> Expr {
        let tok = current
        switch tok.kind {
        case let .name(n):
            p += 1
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .located(.name(n), tok.location)
            }
        case let .string(s):
            p += 1
            var value = s
            while case let .string(more) = current.kind { value += more; p += 1 }
            return .literal(.string(value))
        case let .integer(i):
            p += 1
            return .literal(.int(i))
        case let .float(d):
            p += 1
            return .literal(.float(d))
        case .op("("):
            p += 1
            if skipOp(")") { return .tuple([]) }
            let inner = try parseTuple()
            try expectOp(")")
            return inner
        case .op("["):
            p += 1
            var items: [Expr] = []
            while !isOp("]") {
                items.append(try parseExpression())
                if !skipOp(",") { break }
            }
            try expectOp("]")
            return .located(.list(items), tok.location)
        case .op("{"):
            p += 1
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
                if !skipOp(",") { break }
            }
            try expectOp("}")
            return .located(.dict(pairs), tok.location)
        default:
            throw error("unexpected \(describeCurrent.dropFirst(8).isEmpty ? "token" : String(describeCurrent.dropFirst(8)))")
        }
    }

    mutating func parseArguments() throws -> ([Expr], [(String, Expr)]) {
        try expectOp("(")
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        while !isOp(")") {
            // *args and **kwargs travel as keyword entries named "*" and "**".
            if skipOp("**") {
                kwargs.append(("**", try parseExpression()))
            } else if skipOp("*") {
                kwargs.append(("*", try parseExpression()))
            } else if case let .name(n) = current.kind, tokens[p + 1].kind == .op("=") {
                p += 2
                kwargs.append((n, try parseExpression()))
            } else {
                if kwargs.contains(where: { $0.0 != "*" }) { throw error("positional argument after a keyword argument") }
                args.append(try parseExpression())
            }
            if !skipOp(",") { break }
        }
        try expectOp(")")
        return (args, kwargs)
    }

    mutating func parsePostfix(_ base: Expr) throws -> Expr {
        var node = base
        while true {
            let loc = location
            if skipOp(".") {
                switch current.kind {
                case let .name(n): p += 1; node = .located(.attribute(node, n), loc)
                case let .integer(i): p += 1; node = .located(.item(node, .literal(.int(i))), loc)
                default: throw error("expected an attribute name\(describeCurrent)")
                }
            } else if skipOp("[") {
                var parts: [Expr?] = [nil]
                var isSlice = false
                while !isOp("]") {
                    if skipOp(":") {
                        isSlice = true
                        parts.append(nil)
                        continue
                    }
                    parts[parts.count - 1] = try parseExpression()
                    if !isOp(":") { break }
                }
                try expectOp("]")
                if isSlice {
                    while parts.count < 3 { parts.append(nil) }
                    node = .located(.slice(node, parts[0], parts[1], parts[2]), loc)
                } else {
                    guard let index = parts[0] else { throw error("expected an index") }
                    node = .located(.item(node, index), loc)
                }
            } else if isOp("(") {
                let (args, kwargs) = try parseArguments()
                node = .located(.call(node, args, kwargs), loc)
            } else {
                return node
            }
        }
    }

    mutating func parseFilterExpression(_ base: Expr) throws -> Expr {
        var node = base
        while true {
            let loc = location
            if skipOp("|") {
                var name = try identifier()
                while skipOp(".") { name += "." + (try identifier()) }
                if softDepth == 0, !Interpreter.filterNames.contains(name) { throw error("No filter named '\(name)'.", at: loc) }
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                if isOp("(") { (args, kwargs) = try parseArguments() }
                node = .located(.filter(node, name, args, kwargs), loc)
            } else if skipName("is") {
                let negated = skipName("not")
                var name = try identifier()
                while skipOp(".") { name += "." + (try identifier()) }
                if softDepth == 0, !Interpreter.testNames.contains(name) { throw error("No test named '\(name)'.", at: loc) }
                var args: [Expr] = []
                if isOp("(") {
                    (args, _) = try parseArguments()
                } else if startsTestArgument {
                    args = [try parsePrimaryWithPostfix()]
                }
                node = .located(.test(node, name, args, negated: negated), loc)
            } else {
                return node
            }
        }
    }

    /// jinja2 lets a test take one argument without parentheses: `x is divisibleby 3`.
    var startsTestArgument: Bool {
        switch current.kind {
        case .string, .integer, .float: return true
        case let .name(n): return !["else", "or", "and", "is", "in", "not", "if"].contains(n)
        case .op("["), .op("{"): return true
        default: return false
        }
    }

    mutating func parsePrimaryWithPostfix() throws -> Expr { try parsePostfix(try parsePrimary()) }
}
