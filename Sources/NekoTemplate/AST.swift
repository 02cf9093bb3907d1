/// Jinja expressions.
indirect enum Expr: Sendable {
    case literal(Value)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case item(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, [Expr], negated: Bool)
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    /// `a < b <= c`: operands and operators.
    case compare(Expr, [(String, Expr)])
    case conditional(Expr, condition: Expr, otherwise: Expr?)
    case located(Expr, SourceLocation)
}

/// Assignment targets of `set` and `for`.
indirect enum Target: Sendable {
    case name(String)
    case attribute(String, String)   // namespace attribute: ns.x
    case tuple([Target])
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [(String, Expr?)]
    let body: [Node]
}

/// Jinja statements.
indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case ifBlock([(Expr, [Node])], otherwise: [Node])
    case forLoop(Target, Expr, filter: Expr?, body: [Node], otherwise: [Node], recursive: Bool)
    case set(Target, Expr)
    case setBlock(Target, filters: [(String, [Expr], [(String, Expr)])], body: [Node])
    case macro(MacroDefinition)
    case callBlock(Expr, parameters: [(String, Expr?)], body: [Node])
    case filterBlock([(String, [Expr], [(String, Expr)])], body: [Node])
    /// `{% with a = 1 %}…{% endwith %}`: a scope of its own.
    case with([(Target, Expr)], body: [Node])
    case breakLoop
    case continueLoop
    /// `{% generation %}…{% endgeneration %}` (transformers' AssistantTracker): renders its body.
    case generation([Node])
    case located(Node, SourceLocation)
}
