import Foundation

/// A parsed Jinja template, rendered the way transformers configures jinja2 for chat templates:
/// sandboxed and immutable, `trim_blocks`, `lstrip_blocks`, loop controls, and the globals
/// `raise_exception`, `strftime_now`, `namespace`, `range`, `dict`.
public final class Template: @unchecked Sendable {
    public let source: String
    /// A file name for error messages.
    public let name: String?
    let nodes: [Node]

    /// Parses `source`; a syntax error carries `name` and the line and column.
    public init(_ source: String, name: String? = nil) throws {
        self.source = source
        self.name = name
        do {
            nodes = try onLargeStack { try Parser.parse(source) }
        } catch var e as TemplateError {
            e.file = name
            throw e
        }
    }

    /// Renders with `variables`; `clock` is what `strftime_now` formats (injectable for tests).
    public func render(_ variables: [String: Value], clock: @escaping @Sendable () -> Date = { Date() }) throws -> String {
        let globals = Scope(parent: nil)
        Self.installGlobals(globals)
        let scope = Scope(parent: globals)
        scope.vars = variables
        let interpreter = Interpreter(globals: globals, clock: clock)
        do {
            return try onLargeStack { try interpreter.render(nodes, scope) }
        } catch var e as TemplateError {
            e.file = name
            throw e
        }
    }

    static func installGlobals(_ g: Scope) {
        g.vars["raise_exception"] = .object(Function("raise_exception") { args, _, _ in
            throw RenderError(args.first?.str ?? "", raised: true)
        })
        g.vars["strftime_now"] = .object(Function("strftime_now") { args, _, interpreter in
            .string(PyFormat.strftime(args.first?.str ?? "", interpreter.clock()))
        })
        g.vars["namespace"] = .object(Function("namespace") { args, kwargs, _ in
            let ns = Namespace()
            if case let .dict(d)? = args.first { ns.values = d }
            for (k, v) in kwargs { ns.values[k] = v }
            return .object(ns)
        })
        g.vars["dict"] = .object(Function("dict") { args, kwargs, interpreter in
            var d = Value.Dict()
            if let first = args.first {
                if case let .dict(src) = first { d = src } else {
                    for pair in try interpreter.iterate(first) {
                        let kv = try interpreter.iterate(pair)
                        guard kv.count == 2 else { throw RenderError("dictionary update sequence element has length \(kv.count); 2 is required") }
                        d[kv[0]] = kv[1]
                    }
                }
            }
            for (k, v) in kwargs { d[k] = v }
            return .dict(d)
        })
        g.vars["range"] = .object(Function("range") { args, _, _ in
            let ints = try args.map { v -> Int in
                guard let i = v.integer else { throw RenderError("'\(v.typeName)' object cannot be interpreted as an integer") }
                return i
            }
            let (start, stop, step): (Int, Int, Int)
            switch ints.count {
            case 1: (start, stop, step) = (0, ints[0], 1)
            case 2: (start, stop, step) = (ints[0], ints[1], 1)
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw RenderError("range expected 1 to 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw RenderError("range() arg 3 must not be zero") }
            let span = Double(stop) - Double(start)
            let count = max(0, (span / Double(step)).rounded(.up))
            guard count <= 100_000 else { throw RenderError("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            return .list(Array(stride(from: start, to: stop, by: step)).map { .int($0) })
        })
        g.vars["cycler"] = .object(Function("cycler") { args, _, _ in .object(Cycler(args)) })
        g.vars["joiner"] = .object(Function("joiner") { args, _, _ in
            let sep = args.first?.str ?? ", "
            final class State: @unchecked Sendable { var used = false }
            let state = State()
            return .object(Function("joiner") { _, _, _ in
                defer { state.used = true }
                return .string(state.used ? sep : "")
            })
        })
    }
}

/// jinja2's `cycler(a, b, …)`: `.next()`, `.current`, `.reset()`.
final class Cycler: TemplateObject, @unchecked Sendable {
    let items: [Value]
    var position = 0
    init(_ items: [Value]) { self.items = items }
    override var typeName: String { "Cycler" }
    override func attribute(_ name: String) -> Value? {
        switch name {
        case "current": return items.isEmpty ? Value.none : items[position]
        case "next":
            return .object(Function("next") { [self] _, _, _ in
                guard !items.isEmpty else { return Value.none }
                defer { position = (position + 1) % items.count }
                return items[position]
            })
        case "reset":
            return .object(Function("reset") { [self] _, _, _ in
                position = 0
                return Value.none
            })
        default: return nil
        }
    }
}
