/// A template that cannot be parsed or rendered; carries the line and column of the cause.
public struct TemplateError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// The template text is not valid Jinja.
        case syntax
        /// `raise_exception(message)` was called: the message is the template's own.
        case raised
        /// Anything else that fails while rendering (undefined attributes, type errors, …).
        case runtime
    }
    public let kind: Kind
    public let message: String
    public let line: Int
    public let column: Int
    /// The template's file name, when known.
    public var file: String?

    public init(_ kind: Kind, _ message: String, line: Int, column: Int, file: String? = nil) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
        self.file = file
    }

    /// `<file>:<line>:<col>: message` (Sources/nekochat/README.md's error format without the `error: ` prefix).
    public var description: String {
        if kind == .raised { return "\(file.map { "\($0): " } ?? "")\(message)" }
        return "\(file ?? "<template>"):\(line):\(column): \(message)"
    }
}

/// A position in the template source (1-based).
struct SourceLocation: Sendable, Equatable {
    var line: Int
    var column: Int
}
