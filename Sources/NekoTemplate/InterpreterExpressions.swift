import Foundation

/// Evaluating expressions: values, attributes, items, slices, operators and comparisons as Python does.

extension Interpreter {
    // MARK: expressions

    func evaluate(_ e: Expr, _ scope: Scope) throws -> Value {
        switch e {
        case let .located(inner, loc):
            location = loc
            return try evaluate(inner, scope)
        case let .literal(v): return v
        case let .name(n):
            return scope.lookup(n) ?? globals.lookup(n) ?? .undefined(hint: "'\(n)' is undefined")
        case let .list(items): return .list(try items.map { try evaluate($0, scope) })
        case let .tuple(items): return .tuple(try items.map { try evaluate($0, scope) })
        case let .dict(pairs):
            var d = Value.Dict()
            for (k, v) in pairs { d[try evaluate(k, scope)] = try evaluate(v, scope) }
            return .dict(d)
        case let .attribute(base, name):
            return try getAttribute(try evaluate(base, scope), name)
        case let .item(base, index):
            return try getItem(try evaluate(base, scope), try evaluate(index, scope))
        case let .slice(base, start, stop, step):
            return try slice(try evaluate(base, scope), try start.map { try evaluate($0, scope) },
                             try stop.map { try evaluate($0, scope) }, try step.map { try evaluate($0, scope) })
        case let .call(callee, args, kwargs):
            var argValues = try args.map { try evaluate($0, scope) }
            var kwValues: [(String, Value)] = []
            for (k, e) in kwargs {
                let v = try evaluate(e, scope)
                switch k {
                case "*": argValues += try iterate(v)
                case "**":
                    guard case let .dict(d) = v else { throw RenderError("argument after ** must be a mapping, not \(v.typeName)") }
                    for (key, value) in zip(d.keys, d.values) { kwValues.append((key.str, value)) }
                default: kwValues.append((k, v))
                }
            }
            if case let .attribute(objectExpr, method) = stripLocation(callee) {
                let object = try evaluate(objectExpr, scope)
                if let result = try callMethod(object, method, argValues, kwValues) { return result }
            }
            return try call(try evaluate(callee, scope), argValues, kwValues)
        case let .filter(base, name, args, kwargs):
            let value = try evaluate(base, scope)
            return try applyFilter(name, value, try args.map { try evaluate($0, scope) },
                                   try kwargs.map { ($0.0, try evaluate($0.1, scope)) })
        case let .test(base, name, args, negated):
            let value = try evaluate(base, scope)
            let result = try applyTest(name, value, try args.map { try evaluate($0, scope) })
            return .bool(result != negated)
        case let .unary(op, operand):
            let v = try evaluate(operand, scope)
            switch op {
            case "not": return .bool(!v.truthy)
            case "-":
                switch v {
                case let .int(i):
                    guard i != .min else { throw RenderError("integer result beyond 64 bits (Python would switch to a big integer; nekochat does not)") }
                    return .int(-i)
                case let .float(d): return .float(-d)
                case let .bool(b): return .int(b ? -1 : 0)
                default: throw undefinedOr(v, "bad operand type for unary -: '\(v.typeName)'")
                }
            default:
                guard v.number != nil else { throw undefinedOr(v, "bad operand type for unary +: '\(v.typeName)'") }
                return v
            }
        case let .binary(op, l, r):
            return try binary(op, try evaluate(l, scope), try evaluate(r, scope))
        case let .and(l, r):
            let left = try evaluate(l, scope)
            return left.truthy ? try evaluate(r, scope) : left
        case let .or(l, r):
            let left = try evaluate(l, scope)
            return left.truthy ? left : try evaluate(r, scope)
        case let .compare(first, rest):
            var left = try evaluate(first, scope)
            for (op, rightExpr) in rest {
                let right = try evaluate(rightExpr, scope)
                guard try compare(op, left, right) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .conditional(value, condition, otherwise):
            if try evaluate(condition, scope).truthy { return try evaluate(value, scope) }
            return try otherwise.map { try evaluate($0, scope) } ?? .undefined(hint: "the inline if-expression evaluated to false and no else section was defined")
        }
    }

    func undefinedOr(_ v: Value, _ message: String) -> RenderError {
        if case let .undefined(hint) = v { return RenderError(hint) }
        return RenderError(message)
    }

    func call(_ f: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        try step()
        if case let .object(o) = f, let result = try o.call(args, kwargs, self) { return result }
        if case let .undefined(hint) = f { throw RenderError(hint) }
        throw RenderError("'\(f.typeName)' object is not callable")
    }

    func getAttribute(_ v: Value, _ name: String) throws -> Value {
        switch v {
        case let .undefined(hint): throw RenderError(hint)
        case let .dict(d):
            if Self.dictMethods.contains(name) { return boundMethod(v, name) }
            return d[name] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case let .object(o):
            return o.attribute(name) ?? .undefined(hint: "'\(o.typeName) object' has no attribute '\(name)'")
        case .string:
            if Self.stringMethods.contains(name) { return boundMethod(v, name) }
        case .list, .tuple:
            if Self.listMethods.contains(name) { return boundMethod(v, name) }
        default: break
        }
        return .undefined(hint: "'\(v.typeName) object' has no attribute '\(name)'")
    }

    func boundMethod(_ v: Value, _ name: String) -> Value {
        .object(Function(name) { args, kwargs, interpreter in
            guard let r = try interpreter.callMethod(v, name, args, kwargs) else {
                throw RenderError("'\(v.typeName)' object has no attribute '\(name)'")
            }
            return r
        })
    }

    func pyIndex(_ i: Int, count: Int) -> Int? {
        let k = i < 0 ? i + count : i
        return k >= 0 && k < count ? k : nil
    }

    func getItem(_ v: Value, _ key: Value) throws -> Value {
        switch v {
        case let .undefined(hint): throw RenderError(hint)
        case let .dict(d):
            if let r = d[key] { return r }
            if case let .string(s) = key, Self.dictMethods.contains(s) { return boundMethod(v, s) }
            return .undefined(hint: "'dict object' has no attribute \(key.repr)")
        case let .list(a), let .tuple(a):
            if let i = key.integer, let k = pyIndex(i, count: a.count) { return a[k] }
            if case .string(let s) = key { return try getAttribute(v, s) }
            return .undefined(hint: "'\(v.typeName) object' has no element \(key.repr)")
        case let .string(s):
            let scalars = Array(s.unicodeScalars)
            if let i = key.integer, let k = pyIndex(i, count: scalars.count) { return .string(String(scalars[k])) }
            if case .string(let name) = key { return try getAttribute(v, name) }
            return .undefined(hint: "'str object' has no element \(key.repr)")
        case let .object(o):
            if case let .string(s) = key, let r = o.attribute(s) { return r }
            return .undefined(hint: "'\(o.typeName) object' has no attribute \(key.repr)")
        default:
            return .undefined(hint: "'\(v.typeName) object' has no attribute \(key.repr)")
        }
    }

    /// Python slicing of lists, tuples and strings.
    func slice(_ v: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws -> Value {
        func indices(_ n: Int) throws -> [Int] {
            let st = try step.flatMap { $0.isNone ? nil : $0 }.map { v -> Int in
                guard let i = v.integer else { throw RenderError("slice indices must be integers or None") }
                return i
            } ?? 1
            guard st != 0 else { throw RenderError("slice step cannot be zero") }
            func bound(_ b: Value?, _ def: Int) throws -> Int {
                guard let b, !b.isNone else { return def }
                guard var i = b.integer else { throw RenderError("slice indices must be integers or None") }
                if i < 0 { i += n }
                return st > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
            }
            let lo = try bound(start, st > 0 ? 0 : n - 1), hi = try bound(stop, st > 0 ? n : -1)
            return Array(stride(from: lo, to: hi, by: st))
        }
        switch v {
        case let .list(a): return .list(try indices(a.count).map { a[$0] })
        case let .tuple(a): return .tuple(try indices(a.count).map { a[$0] })
        case let .string(s):
            let sc = Array(s.unicodeScalars)
            return .string(String(String.UnicodeScalarView(try indices(sc.count).map { sc[$0] })))
        case let .undefined(hint): throw RenderError(hint)
        default: throw RenderError("'\(v.typeName)' object is not subscriptable")
        }
    }

    func binary(_ op: String, _ l: Value, _ r: Value) throws -> Value {
        if op == "~" { return .string(try Limits.checked(l.str + r.str)) }
        if case let .undefined(hint) = l { throw RenderError(hint) }
        if case let .undefined(hint) = r { throw RenderError(hint) }
        func typeError() -> RenderError {
            RenderError("unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        }
        switch (op, l, r) {
        case let ("+", .string(a), .string(b)): return .string(try Limits.checked(a + b))
        case let ("+", .list(a), .list(b)):
            guard a.count + b.count <= Limits.listItems else { throw RenderError("list longer than \(Limits.listItems) items (nekochat's limit)") }
            return .list(a + b)
        case let ("+", .tuple(a), .tuple(b)): return .tuple(a + b)
        case let ("*", .string(s), n), let ("*", n, .string(s)):
            guard let k = n.integer else { throw typeError() }
            guard Double(max(0, k)) * Double(s.utf8.count) <= 10_000_000 else { throw RenderError("string repetition too large") }
            return .string(String(repeating: s, count: max(0, k)))
        case let ("*", .list(a), n), let ("*", n, .list(a)):
            guard let k = n.integer else { throw typeError() }
            guard Double(max(0, k)) * Double(a.count) <= 1_000_000 else { throw RenderError("list repetition too large") }
            return .list(Array(repeating: a, count: max(0, k)).flatMap { $0 })
        case let ("%", .string(format), args):
            return .string(try PyFormat.percent(format, args))
        default: break
        }
        guard let x = l.number, let y = r.number, !l.isString, !r.isString else { throw typeError() }
        if let a = l.integer, let b = r.integer {
            switch op {
            case "+", "-", "*":
                let (r, overflow) = op == "+" ? a.addingReportingOverflow(b) : op == "-" ? a.subtractingReportingOverflow(b) : a.multipliedReportingOverflow(by: b)
                guard !overflow else { throw RenderError("integer result beyond 64 bits (Python would switch to a big integer; nekochat does not)") }
                return .int(r)
            case "/":
                guard b != 0 else { throw RenderError("division by zero") }
                return .float(Double(a) / Double(b))
            case "//":
                guard b != 0 else { throw RenderError("integer division or modulo by zero") }
                // Int.min // -1 is the one quotient 64 bits cannot hold.
                guard !(a == .min && b == -1) else { throw RenderError("integer result beyond 64 bits (Python would switch to a big integer; nekochat does not)") }
                let q = a / b
                return .int(a % b != 0 && (a < 0) != (b < 0) ? q - 1 : q)
            case "%":
                guard b != 0 else { throw RenderError("integer division or modulo by zero") }
                if b == -1 { return .int(0) }   // Int.min % -1 traps in Swift; it is 0
                let m = a % b
                return .int(m != 0 && (m < 0) != (b < 0) ? m + b : m)
            case "**":
                if b >= 0 {
                    // Exponentiation by squaring: O(log b) steps, every product checked.
                    let tooBig = RenderError("integer result beyond 64 bits (Python would switch to a big integer; nekochat does not)")
                    var result = 1, base = a, e = b
                    while e > 0 {
                        if e & 1 == 1 {
                            let (r, o) = result.multipliedReportingOverflow(by: base)
                            guard !o else { throw tooBig }
                            result = r
                        }
                        e >>= 1
                        if e > 0 {
                            let (sq, o) = base.multipliedReportingOverflow(by: base)
                            guard !o || result == 0 else { throw tooBig }
                            base = sq
                        }
                    }
                    return .int(result)
                }
                return .float(pow(Double(a), Double(b)))
            default: throw typeError()
            }
        }
        switch op {
        case "+": return .float(x + y)
        case "-": return .float(x - y)
        case "*": return .float(x * y)
        case "/":
            guard y != 0 else { throw RenderError("float division by zero") }
            return .float(x / y)
        case "//":
            guard y != 0 else { throw RenderError("float floor division by zero") }
            return .float((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw RenderError("float modulo") }
            let m = x.truncatingRemainder(dividingBy: y)
            return .float(m != 0 && (m < 0) != (y < 0) ? m + y : m)
        case "**": return .float(pow(x, y))
        default: throw typeError()
        }
    }

    func contains(_ container: Value, _ item: Value) throws -> Bool {
        switch container {
        case let .string(s):
            guard case let .string(sub) = item else {
                throw RenderError("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || Array(s.unicodeScalars).containsSequence(Array(sub.unicodeScalars))
        case let .list(a), let .tuple(a): return a.contains { $0.pyEquals(item) }
        case let .dict(d): return d[item] != nil
        case .undefined: return false
        default: throw RenderError("argument of type '\(container.typeName)' is not iterable")
        }
    }

    func compare(_ op: String, _ l: Value, _ r: Value) throws -> Bool {
        switch op {
        case "==": return l.pyEquals(r)
        case "!=": return !l.pyEquals(r)
        case "in": return try contains(r, l)
        case "notin": return try !contains(r, l)
        default:
            if case let .undefined(hint) = l { throw RenderError(hint) }
            if case let .undefined(hint) = r { throw RenderError(hint) }
            let result: Bool?
            switch op {
            case "<": result = l.pyLess(r)
            case ">": result = r.pyLess(l)
            case "<=": result = r.pyLess(l).map { !$0 }
            default: result = l.pyLess(r).map { !$0 }
            }
            guard let result else {
                throw RenderError("'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            return result
        }
    }
}

extension Array where Element == Unicode.Scalar {
    func containsSequence(_ sub: [Unicode.Scalar]) -> Bool {
        guard sub.count <= count else { return false }
        if sub.isEmpty { return true }
        for i in 0...(count - sub.count) where self[i] == sub[0] && self[i..<i + sub.count].elementsEqual(sub) {
            return true
        }
        return false
    }

    func lastIndex(ofSequence sub: [Unicode.Scalar]) -> Int? {
        guard !sub.isEmpty, sub.count <= count else { return nil }
        var i = count - sub.count
        while i >= 0 {
            if self[i] == sub[0] && self[i..<i + sub.count].elementsEqual(sub) { return i }
            i -= 1
        }
        return nil
    }

    func firstIndex(of sub: [Unicode.Scalar], from start: Int = 0) -> Int? {
        guard !sub.isEmpty else { return start <= count ? start : nil }
        guard sub.count <= count else { return nil }
        var i = start
        while i + sub.count <= count {
            if self[i] == sub[0] && self[i..<i + sub.count].elementsEqual(sub) { return i }
            i += 1
        }
        return nil
    }
}
