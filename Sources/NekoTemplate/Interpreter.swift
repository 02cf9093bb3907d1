import Foundation

/// Variables of one level: the template, a loop body, a macro call.
final class Scope {
    var vars: [String: Value] = [:]
    let parent: Scope?
    init(parent: Scope?) { self.parent = parent }

    func lookup(_ name: String) -> Value? {
        var s: Scope? = self
        while let scope = s {
            if let v = scope.vars[name] { return v }
            s = scope.parent
        }
        return nil
    }
}

/// The running state of a `for` loop, as `loop` in templates.
final class LoopObject: TemplateObject, @unchecked Sendable {
    let items: [Value]
    var index0 = 0
    let depth0: Int
    var lastChanged: Value?
    /// For `{% for … recursive %}`: renders the loop body over another iterable, one level deeper.
    var recurse: ((Value) throws -> String)?
    init(items: [Value], depth0: Int) {
        self.items = items
        self.depth0 = depth0
    }
    override var typeName: String { "LoopContext" }
    override func call(_ args: [Value], _ kwargs: [(String, Value)], _ interpreter: Interpreter) throws -> Value? {
        guard let recurse else { return nil }
        // loop(…) recurses like a macro call does: the same depth limit keeps the stack.
        interpreter.callDepth += 1
        defer { interpreter.callDepth -= 1 }
        guard interpreter.callDepth <= Interpreter.maxCallDepth else {
            throw RenderError("maximum recursion depth exceeded")
        }
        return .string(try recurse(args.first ?? .list([])))
    }
    override func attribute(_ name: String) -> Value? {
        let n = items.count
        switch name {
        case "index": return .int(index0 + 1)
        case "index0": return .int(index0)
        case "revindex": return .int(n - index0)
        case "revindex0": return .int(n - index0 - 1)
        case "first": return .bool(index0 == 0)
        case "last": return .bool(index0 == n - 1)
        case "length": return .int(n)
        case "depth": return .int(depth0 + 1)
        case "depth0": return .int(depth0)
        case "previtem": return index0 > 0 ? items[index0 - 1] : .undefined(hint: "there is no previous item")
        case "nextitem": return index0 + 1 < n ? items[index0 + 1] : .undefined(hint: "there is no next item")
        case "changed":
            return .object(Function("changed") { [self] args, _, _ in
                let value = Value.tuple(args)
                defer { lastChanged = value }
                return .bool(!(lastChanged?.pyEquals(value) ?? false))
            })
        case "cycle":
            let i = index0
            return .object(Function("cycle") { args, _, _ in
                guard !args.isEmpty else { throw RenderError("no items for cycling given") }
                return args[i % args.count]
            })
        default: return nil
        }
    }
}

/// A macro defined in the template, closed over the scope it was defined in.
final class MacroObject: TemplateObject, @unchecked Sendable {
    let definition: MacroDefinition
    let scope: Scope
    init(_ definition: MacroDefinition, scope: Scope) {
        self.definition = definition
        self.scope = scope
    }
    override var typeName: String { "Macro" }
    override var repr: String { "<Macro '\(definition.name)'>" }
    override func attribute(_ name: String) -> Value? {
        name == "name" ? .string(definition.name) : nil
    }

    override func call(_ args: [Value], _ kwargs: [(String, Value)], _ interpreter: Interpreter) throws -> Value? {
        // Python stops runaway recursion (RecursionError); so do we, before the stack runs out.
        interpreter.callDepth += 1
        defer { interpreter.callDepth -= 1 }
        guard interpreter.callDepth <= Interpreter.maxCallDepth else {
            throw RenderError("maximum recursion depth exceeded")
        }
        let local = Scope(parent: scope)
        var kw = kwargs
        var extra: [Value] = []
        let params = definition.parameters
        if args.count > params.count, !NameUsage.uses("varargs", in: definition.body) {
            throw RenderError("macro '\(definition.name)' takes not more than \(params.count) argument(s)")
        }
        if let unknown = kwargs.first(where: { k, _ in k != "caller" && !params.contains { $0.0 == k } }),
           !NameUsage.uses("kwargs", in: definition.body) {
            throw RenderError("macro '\(definition.name)' takes no keyword argument '\(unknown.0)'")
        }
        for (i, (name, defaultExpr)) in definition.parameters.enumerated() {
            if i < args.count {
                local.vars[name] = args[i]
            } else if let k = kw.firstIndex(where: { $0.0 == name }) {
                local.vars[name] = kw[k].1
                kw.remove(at: k)
            } else if let defaultExpr {
                local.vars[name] = try interpreter.evaluate(defaultExpr, local)
            } else {
                local.vars[name] = .undefined(hint: "'\(name)' is undefined")
            }
        }
        if args.count > definition.parameters.count { extra = Array(args[definition.parameters.count...]) }
        if let c = kw.firstIndex(where: { $0.0 == "caller" }) {
            local.vars["caller"] = kw[c].1
            kw.remove(at: c)
        }
        local.vars["varargs"] = .list(extra)
        var kwargsDict = Value.Dict()
        for (k, v) in kw { kwargsDict[k] = v }
        local.vars["kwargs"] = .dict(kwargsDict)
        return .string(try interpreter.capture(definition.body, local))
    }
}

/// An error while rendering; the interpreter adds the location.
struct RenderError: Error {
    let message: String
    var raised = false
    init(_ message: String, raised: Bool = false) {
        self.message = message
        self.raised = raised
    }
}

/// Walks the AST and writes the output.
final class Interpreter {
    enum Flow { case normal, breakLoop, continueLoop }

    let globals: Scope
    var location = SourceLocation(line: 1, column: 1)
    var callDepth = 0
    static let maxCallDepth = 300
    /// Work done so far (statements, loop turns, calls), bounded by `Limits.steps`.
    var steps = 0

    /// Counts one step; past the limit the render ends with an error naming it (a template that
    /// loops for ever is cut, never hangs).
    @inline(__always) func step() throws {
        steps += 1
        if steps > Limits.steps { throw RenderError("the template ran more than \(Limits.steps) steps (nekochat's limit)") }
    }

    /// The output may not grow past `Limits.output` bytes.
    @inline(__always) func checkOutput(_ out: String) throws {
        if out.utf8.count > Limits.output { throw RenderError("the template's output is larger than \(Limits.output) bytes (nekochat's limit)") }
    }
    let clock: @Sendable () -> Date

    init(globals: Scope, clock: @escaping @Sendable () -> Date) {
        self.globals = globals
        self.clock = clock
    }

    /// Scopes that hold a macro: the macro closes over its scope, a cycle that is broken when
    /// the render ends (it leaked every variable of every render that defined a macro).
    var macroScopes: [Scope] = []

    func render(_ nodes: [Node], _ scope: Scope) throws -> String {
        var out = ""
        defer {
            for s in macroScopes { s.vars.removeAll() }
            macroScopes.removeAll()
        }
        do {
            _ = try execute(nodes, scope, into: &out)
        } catch let e as RenderError {
            throw TemplateError(e.raised ? .raised : .runtime, e.message, line: location.line, column: location.column)
        }
        return out
    }

    func capture(_ nodes: [Node], _ scope: Scope) throws -> String {
        var out = ""
        let saved = location
        _ = try execute(nodes, scope, into: &out)
        location = saved
        return out
    }

    // MARK: statements

    func execute(_ nodes: [Node], _ scope: Scope, into out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, scope, into: &out)
            if flow != .normal { return flow }
        }
        return .normal
    }

    func execute(_ node: Node, _ scope: Scope, into out: inout String) throws -> Flow {
        switch node {
        case let .located(inner, loc):
            location = loc
            return try execute(inner, scope, into: &out)
        case let .text(t):
            out += t
            try checkOutput(out)
        case let .output(e):
            try step()
            out += try evaluate(e, scope).str
            try checkOutput(out)
        case let .ifBlock(branches, otherwise):
            for (condition, body) in branches where try evaluate(condition, scope).truthy {
                return try execute(body, scope, into: &out)
            }
            return try execute(otherwise, scope, into: &out)
        case let .forLoop(target, iterable, filter, body, otherwise, recursive):
            let items = try evaluate(iterable, scope)
            try runLoop(target, items, filter: filter, body: body, otherwise: otherwise, recursive: recursive,
                        depth: 0, scope, into: &out)
        case let .set(target, e):
            try assign(target, try evaluate(e, scope), scope)
        case let .setBlock(target, filters, body):
            var value = Value.string(try capture(body, scope))
            for (name, args, kwargs) in filters {
                value = try applyFilter(name, value, try args.map { try evaluate($0, scope) },
                                        try kwargs.map { ($0.0, try evaluate($0.1, scope)) })
            }
            try assign(target, value, scope)
        case let .macro(def):
            scope.vars[def.name] = .object(MacroObject(def, scope: scope))
            macroScopes.append(scope)
        case let .callBlock(callExpr, parameters, body):
            guard case let .call(callee, args, kwargs) = stripLocation(callExpr) else { break }
            let caller = MacroObject(MacroDefinition(name: "caller", parameters: parameters, body: body), scope: scope)
            macroScopes.append(scope)
            let f = try evaluate(callee, scope)
            let result = try call(f, try args.map { try evaluate($0, scope) },
                                  try kwargs.map { ($0.0, try evaluate($0.1, scope)) } + [("caller", .object(caller))])
            out += result.str
        case let .filterBlock(filters, body):
            var value = Value.string(try capture(body, scope))
            for (name, args, kwargs) in filters {
                value = try applyFilter(name, value, try args.map { try evaluate($0, scope) },
                                        try kwargs.map { ($0.0, try evaluate($0.1, scope)) })
            }
            out += value.str
        case let .with(assignments, body):
            let local = Scope(parent: scope)
            for (target, e) in assignments { try assign(target, try evaluate(e, scope), local) }
            return try execute(body, local, into: &out)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        case let .generation(body):
            return try execute(body, scope, into: &out)
        }
        return .normal
    }

    func stripLocation(_ e: Expr) -> Expr {
        if case let .located(inner, _) = e { return stripLocation(inner) }
        return e
    }

    func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case let .list(a), let .tuple(a): return a
        case let .dict(d): return d.keys
        case let .string(s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default: throw RenderError("'\(v.typeName)' object is not iterable")
        }
    }

    func runLoop(_ target: Target, _ iterable: Value, filter: Expr?, body: [Node], otherwise: [Node],
                 recursive: Bool, depth: Int, _ scope: Scope, into out: inout String) throws {
        var items = try iterate(iterable)
        let local = Scope(parent: scope)
        if let filter {
            items = try items.filter { item in
                try assign(target, item, local)
                return try evaluate(filter, local).truthy
            }
        }
        if items.isEmpty {
            _ = try execute(otherwise, scope, into: &out)
            return
        }
        let loop = LoopObject(items: items, depth0: depth)
        if recursive {
            loop.recurse = { [unowned self] next in
                var inner = ""
                try self.runLoop(target, next, filter: filter, body: body, otherwise: otherwise, recursive: true,
                                 depth: depth + 1, scope, into: &inner)
                return inner
            }
        }
        local.vars["loop"] = .object(loop)
        for (i, item) in items.enumerated() {
            try step()
            loop.index0 = i
            try assign(target, item, local)
            if try execute(body, local, into: &out) == .breakLoop { break }
        }
    }

    func assign(_ target: Target, _ value: Value, _ scope: Scope) throws {
        switch target {
        case let .name(n):
            scope.vars[n] = value
        case let .attribute(object, attr):
            guard case let .object(o)? = scope.lookup(object) ?? globals.lookup(object), let ns = o as? Namespace else {
                throw RenderError("cannot assign attribute on non-namespace object")
            }
            guard !attr.hasPrefix("_") else {
                throw RenderError("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(attr)'. Please rename the attribute.")
            }
            ns.values[attr] = value
        case let .tuple(targets):
            let items = try iterate(value)
            guard items.count == targets.count else {
                throw RenderError(items.count > targets.count ? "too many values to unpack (expected \(targets.count))"
                                  : "not enough values to unpack (expected \(targets.count), got \(items.count))")
            }
            for (t, v) in zip(targets, items) { try assign(t, v, scope) }
        }
    }

}
