/// What a template may cost, so that hostile or broken templates end with an error naming the
/// limit instead of hanging, exhausting memory or overflowing the stack. Real chat templates
/// use a tiny fraction of each (the largest of 111 real ones, over 50 turns: ~3,000 steps).
public enum Limits {
    /// Statements, expression outputs, loop turns and calls per render.
    public static let steps = 1_000_000
    /// Bytes of output per render.
    public static let output = 32 << 20
    /// Characters of any one string built by the template (`~`, `+`, `*`, padding).
    public static let string = 32 << 20
    /// Items of a list built by `+`.
    public static let listItems = 1_000_000
    /// Nesting of expressions and blocks the parser follows (the recursion stays far inside the
    /// template thread's stack).
    public static let nesting = 1000

    static func checked(_ s: String) throws -> String {
        guard s.utf8.count <= string else { throw RenderError("string longer than \(string) bytes (nekochat's limit)") }
        return s
    }
}
