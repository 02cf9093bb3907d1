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

    /// Digits after the point that a number format may ask for (`%.Nf`, `{:.Nf}`, `round(x, N)`).
    public static let precision = 1000

    /// A width or count a template asks for (padding, indentation, a format's width), checked
    /// before any memory is reserved for it: at most `string`.
    static func width(_ n: Int, _ what: String) throws -> Int {
        guard n <= string else { throw RenderError("\(what) \(n) is larger than nekochat's limit (\(string))") }
        return max(0, n)
    }

    static func checked(_ s: String) throws -> String {
        guard s.utf8.count <= string else { throw RenderError("string longer than \(string) bytes (nekochat's limit)") }
        return s
    }
}
