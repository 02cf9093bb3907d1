/// Whether a template body refers to a variable (jinja2 lets a macro take extra positional
/// arguments only when its body uses `varargs`, and extra keywords only when it uses `kwargs`).
enum NameUsage {
    static func uses(_ name: String, in nodes: [Node]) -> Bool { nodes.contains { uses(name, in: $0) } }

    static func uses(_ name: String, in node: Node) -> Bool {
        switch node {
        case .text, .breakLoop, .continueLoop: return false
        case let .located(inner, _): return uses(name, in: inner)
        case let .output(e): return uses(name, in: e)
        case let .ifBlock(branches, otherwise):
            return branches.contains { uses(name, in: $0.0) || uses(name, in: $0.1) } || uses(name, in: otherwise)
        case let .forLoop(_, iterable, filter, body, otherwise, _):
            return uses(name, in: iterable) || (filter.map { uses(name, in: $0) } ?? false)
                || uses(name, in: body) || uses(name, in: otherwise)
        case let .set(_, e): return uses(name, in: e)
        case let .setBlock(_, filters, body), let .filterBlock(filters, body):
            return uses(name, in: body) || filters.contains { $0.1.contains { uses(name, in: $0) } || $0.2.contains { uses(name, in: $0.1) } }
        case .macro: return false   // a nested macro has its own varargs
        case let .callBlock(call, _, body): return uses(name, in: call) || uses(name, in: body)
        case let .with(assignments, body): return assignments.contains { uses(name, in: $0.1) } || uses(name, in: body)
        case let .generation(body): return uses(name, in: body)
        }
    }

    static func uses(_ name: String, in e: Expr) -> Bool {
        switch e {
        case .literal: return false
        case let .name(n): return n == name
        case let .located(inner, _): return uses(name, in: inner)
        case let .list(items), let .tuple(items): return items.contains { uses(name, in: $0) }
        case let .dict(pairs): return pairs.contains { uses(name, in: $0.0) || uses(name, in: $0.1) }
        case let .attribute(base, _): return uses(name, in: base)
        case let .item(a, b), let .binary(_, a, b), let .and(a, b), let .or(a, b): return uses(name, in: a) || uses(name, in: b)
        case let .slice(a, b, c, d): return [a, b, c, d].contains { $0.map { uses(name, in: $0) } ?? false }
        case let .call(f, args, kwargs), let .filter(f, _, args, kwargs):
            return uses(name, in: f) || args.contains { uses(name, in: $0) } || kwargs.contains { uses(name, in: $0.1) }
        case let .test(base, _, args, _): return uses(name, in: base) || args.contains { uses(name, in: $0) }
        case let .unary(_, a): return uses(name, in: a)
        case let .compare(first, rest): return uses(name, in: first) || rest.contains { uses(name, in: $0.1) }
        case let .conditional(a, b, c): return uses(name, in: a) || uses(name, in: b) || (c.map { uses(name, in: $0) } ?? false)
        }
    }
}
