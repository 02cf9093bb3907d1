/// The input box's text and cursor, with emacs keys and history.
public struct LineEditor: Equatable, Sendable {
    public private(set) var text: [Character] = []
    public private(set) var cursor = 0
    /// Sent texts, oldest first (kept between sessions by the chat).
    public var history: [String] = []
    private var historyIndex: Int?
    private var draft: [Character] = []

    public init() {}

    public var string: String { String(text) }
    public var isEmpty: Bool { text.isEmpty }

    public mutating func insert(_ s: String) {
        let chars = Array(s)
        text.insert(contentsOf: chars, at: cursor)
        cursor += chars.count
    }
    public mutating func backspace() { if cursor > 0 { cursor -= 1; text.remove(at: cursor) } }
    public mutating func deleteForward() { if cursor < text.count { text.remove(at: cursor) } }
    public mutating func left() { cursor = max(0, cursor - 1) }
    public mutating func right() { cursor = min(text.count, cursor + 1) }
    /// Ctrl-A / Home: start of the current line.
    public mutating func home() { while cursor > 0, text[cursor - 1] != "\n" { cursor -= 1 } }
    /// Ctrl-E / End: end of the current line.
    public mutating func end() { while cursor < text.count, text[cursor] != "\n" { cursor += 1 } }
    /// Ctrl-K: delete to the end of the line.
    public mutating func killToEnd() {
        var e = cursor
        while e < text.count, text[e] != "\n" { e += 1 }
        if e == cursor, e < text.count { e += 1 }
        text.removeSubrange(cursor..<e)
    }
    /// Ctrl-U: delete to the start of the line.
    public mutating func killToStart() {
        var s = cursor
        while s > 0, text[s - 1] != "\n" { s -= 1 }
        text.removeSubrange(s..<cursor)
        cursor = s
    }
    /// Ctrl-W: delete the word before the cursor.
    public mutating func deleteWord() {
        var s = cursor
        while s > 0, text[s - 1].isWhitespace { s -= 1 }
        while s > 0, !text[s - 1].isWhitespace { s -= 1 }
        text.removeSubrange(s..<cursor)
        cursor = s
    }

    /// Takes the text (Enter) and remembers it for Up/Down.
    public mutating func submit() -> String {
        let s = string
        if !s.isEmpty, history.last != s { history.append(s) }
        if history.count > 1000 { history.removeFirst(history.count - 1000) }
        text = []; cursor = 0; historyIndex = nil
        return s
    }

    /// Replaces the text (the cursor goes to its end).
    public mutating func set(_ s: String) {
        text = Array(s)
        cursor = text.count
        historyIndex = nil
    }

    /// Whether the cursor is on the first (last) line of the text.
    public var onFirstLine: Bool { !text[..<cursor].contains("\n") }
    public var onLastLine: Bool { !text[cursor...].contains("\n") }

    /// Up: the line above in a multi-line text, else the previous history entry.
    public mutating func up() {
        guard !onFirstLine else { return historyUp() }
        let column = cursor - (text[..<cursor].lastIndex(of: "\n").map { $0 + 1 } ?? 0)
        home()
        cursor -= 1   // onto the previous line's newline
        let start = text[..<cursor].lastIndex(of: "\n").map { $0 + 1 } ?? 0
        cursor = min(start + column, cursor)
    }

    /// Down: the line below in a multi-line text, else the next history entry.
    public mutating func down() {
        guard !onLastLine else { return historyDown() }
        let column = cursor - (text[..<cursor].lastIndex(of: "\n").map { $0 + 1 } ?? 0)
        end()
        cursor += 1   // past the newline
        let lineEnd = text[cursor...].firstIndex(of: "\n") ?? text.count
        cursor = min(cursor + column, lineEnd)
    }

    public mutating func historyUp() {
        guard !history.isEmpty else { return }
        if historyIndex == nil { draft = text; historyIndex = history.count }
        historyIndex = max(0, historyIndex! - 1)
        text = Array(history[historyIndex!]); cursor = text.count
    }

    public mutating func historyDown() {
        guard let i = historyIndex else { return }
        if i + 1 >= history.count {
            historyIndex = nil; text = draft
        } else {
            historyIndex = i + 1; text = Array(history[i + 1])
        }
        cursor = text.count
    }
}
