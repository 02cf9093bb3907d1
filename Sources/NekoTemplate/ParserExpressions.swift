/// Expressions: jinja2's operator precedence, from conditional expressions down to primaries.

extension Parser {
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
        try enter()
        defer { nesting -= 1 }
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

    // Every loop below that wraps `left` in one more node counts that node as a level of
    // nesting (`link()`, undone on return), so a chain of 100,000 `~`, `+`, `or`, `[0]`, `.a` or
    // `|f` is an error naming the limit, like 100,000 parentheses — never an AST so deep that
    // evaluating or freeing it overflows the stack.

    /// One more node around `left`: a level of nesting until the enclosing parse returns.
    mutating func link(_ links: inout Int) throws {
        links += 1
        try enter()
    }

    mutating func parseOr() throws -> Expr {
        var links = 0
        defer { nesting -= links }
        var left = try parseAnd()
        while skipName("or") { try link(&links); left = .or(left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> Expr {
        var links = 0
        defer { nesting -= links }
        var left = try parseNot()
        while skipName("and") { try link(&links); left = .and(left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> Expr {
        try enter()
        defer { nesting -= 1 }
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
        var links = 0
        defer { nesting -= links }
        var left = try parseConcat()
        while case let .op(o) = current.kind, o == "+" || o == "-" {
            let loc = location
            try link(&links)
            p += 1
            left = .located(.binary(o, left, try parseConcat()), loc)
        }
        return left
    }

    mutating func parseConcat() throws -> Expr {
        var links = 0
        defer { nesting -= links }
        var left = try parseMath2()
        while isOp("~") {
            let loc = location
            try link(&links)
            p += 1
            left = .located(.binary("~", left, try parseMath2()), loc)
        }
        return left
    }

    mutating func parseMath2() throws -> Expr {
        var links = 0
        defer { nesting -= links }
        var left = try parsePow()
        while case let .op(o) = current.kind, ["*", "/", "//", "%"].contains(o) {
            let loc = location
            try link(&links)
            p += 1
            left = .located(.binary(o, left, try parsePow()), loc)
        }
        return left
    }

    mutating func parsePow() throws -> Expr {
        var links = 0
        defer { nesting -= links }
        var left = try parseUnary()
        while isOp("**") {
            let loc = location
            try link(&links)
            p += 1
            left = .located(.binary("**", left, try parseUnary()), loc)
        }
        return left
    }

    mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { nesting -= 1 }
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
        var links = 0
        defer { nesting -= links }
        var node = base
        while true {
            let loc = location
            if isOp(".") || isOp("[") || isOp("(") { try link(&links) }
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
        var links = 0
        defer { nesting -= links }
        var node = base
        while true {
            let loc = location
            if isOp("|") || isName("is") { try link(&links) }
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
