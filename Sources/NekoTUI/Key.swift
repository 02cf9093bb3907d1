/// A key press, decoded from the terminal (ncurses codes and escape sequences).
public enum Key: Equatable, Sendable {
    case char(Character)
    case ctrl(Character)      // Ctrl-A … Ctrl-Z as "a" … "z"
    case enter
    case newline              // Alt-Enter or Ctrl-J: a newline in the input
    case escape
    case up, down, left, right, home, end, pageUp, pageDown, backspace, delete, tab, backTab
    /// Ctrl- or Alt-modified arrows and Home/End.
    case ctrlUp, ctrlDown, ctrlLeft, ctrlRight, ctrlHome, ctrlEnd
    /// Alt (Meta) with a character: ESC then the character.
    case alt(Character)
    case resize
    case wheel(Int)           // -1 up, +1 down
    case paste(String)        // bracketed paste, as one piece
}

/// Turns raw input (characters and ncurses key codes) into keys, parsing bracketed paste
/// (`ESC [ 200 ~` … `ESC [ 201 ~`) and Alt-Enter (`ESC` then Enter), which ncurses leaves to us.
public struct KeyDecoder: Sendable {
    private var pending: [UInt32] = []
    private var pasting = false
    private var pasteBuffer: [Unicode.Scalar] = []

    public init() {}

    /// Feeds one character (a Unicode scalar value); returns the keys it completes.
    public mutating func feed(character c: UInt32) -> [Key] {
        if pasting {
            pasteBuffer.append(Unicode.Scalar(c) ?? "?")
            let end: [Unicode.Scalar] = ["\u{1B}", "[", "2", "0", "1", "~"]
            if pasteBuffer.count >= end.count, Array(pasteBuffer.suffix(end.count)) == end {
                pasting = false
                var text = String(String.UnicodeScalarView(pasteBuffer.dropLast(end.count)))
                text = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
                pasteBuffer = []
                return [.paste(text)]
            }
            return []
        }
        if !pending.isEmpty {
            pending.append(c)
            let seq = pending
            if seq.count == 2 {
                if c == 0x5B || c == 0x4F { return [] }          // ESC [ or ESC O: a sequence follows
                pending = []
                if c == 0x0D || c == 0x0A { return [.newline] }  // Alt-Enter
                if c >= 0x20, c < 0x7F, let s = Unicode.Scalar(c) { return [.alt(Character(s))] }
                return [.escape] + feed(character: c)
            }
            // ESC [ … final byte in 0x40…0x7E
            if c >= 0x40 && c <= 0x7E {
                pending = []
                let body = String(String.UnicodeScalarView(seq.dropFirst(2).compactMap(Unicode.Scalar.init)))
                switch body {
                case "200~": pasting = true; return []
                case "A": return [.up]
                case "B": return [.down]
                case "C": return [.right]
                case "D": return [.left]
                case "H", "1~", "7~": return [.home]
                case "F", "4~", "8~": return [.end]
                case "5~": return [.pageUp]
                case "6~": return [.pageDown]
                case "3~": return [.delete]
                case "Z": return [.backTab]
                // xterm modifiers: 1;3 Alt, 1;5 Ctrl (either counts).
                case "1;5A", "1;3A": return [.ctrlUp]
                case "1;5B", "1;3B": return [.ctrlDown]
                case "1;5C", "1;3C": return [.ctrlRight]
                case "1;5D", "1;3D": return [.ctrlLeft]
                case "1;5H", "1;3H": return [.ctrlHome]
                case "1;5F", "1;3F": return [.ctrlEnd]
                default: return []
                }
            }
            if seq.count > 16 { pending = []; return [] }
            return []
        }
        switch c {
        case 0x1B: pending = [c]; return []
        case 0x0D: return [.enter]
        case 0x0A: return [.newline]      // Ctrl-J
        case 0x09: return [.tab]
        case 0x7F, 0x08: return [.backspace]
        case 0x01...0x1A: return [.ctrl(Character(Unicode.Scalar(c + 0x60)!))]
        default:
            guard let s = Unicode.Scalar(c) else { return [] }
            return [.char(Character(s))]
        }
    }

    /// Whether an escape sequence has begun and not ended.
    public var isPending: Bool { !pending.isEmpty }

    /// A lone Escape that no sequence followed (the input went quiet).
    public mutating func flushEscape() -> [Key] {
        guard pending == [0x1B] else { return [] }
        pending = []
        return [.escape]
    }
}
