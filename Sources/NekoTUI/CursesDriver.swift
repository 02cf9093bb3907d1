import CNcursesw
import Foundation
import NekoChat

/// The ncurses screen: one thread (the caller's) owns all curses calls. Writes only the cells
/// that changed since the last frame; turns curses key codes and escape sequences into keys.
public final class CursesDriver: ScreenDriver {
    private var previous: CellGrid?
    private var theme: Theme
    private var pairs: [String: Int16] = [:]
    private var colors = false
    private var colors256 = false
    private var screen: OpaquePointer?
    private var closed = false
    private var decoder = KeyDecoder()

    public init(theme: Theme) throws {
        self.theme = theme
        nk_setlocale_all()
        guard isatty(0) != 0, isatty(1) != 0 else {
            throw TerminalError("the chat needs a terminal on stdin and stdout (use `nekochat generate` for pipes)")
        }
        // A parent may have blocked or ignored SIGWINCH (test runners do): ncurses needs it to
        // notice resizes, so unblock every signal and give SIGWINCH its default before newterm.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        signal(SIGWINCH, SIG_DFL)
        CrashRestore.install()
        guard let s = nk_newterm() else {
            throw TerminalError("cannot start the terminal UI for TERM=\(ProcessInfo.processInfo.environment["TERM"] ?? "(unset)")")
        }
        screen = s
        raw()
        noecho()
        nonl()   // Enter arrives as CR, Ctrl-J as LF: they must differ
        keypad(nk_stdscr(), true)
        nk_set_escdelay(25)
        timeout(0)
        setMouse(true)
        startColors()
        // Bracketed paste: the terminal wraps pasted text in ESC[200~ … ESC[201~.
        writeRaw("\u{1B}[?2004h")
        curs_set(1)
    }

    deinit { close() }

    private func startColors() {
        colors = false
        pairs = [:]
        if theme.usesColor, has_colors() {
            start_color()
            use_default_colors()
            colors = true
            colors256 = nk_colors() >= 256
        }
    }

    /// Restores the terminal (idempotent).
    public func close() {
        guard !closed else { return }
        closed = true
        writeRaw("\u{1B}[?2004l")
        endwin()
        if let screen { delscreen(screen) }
    }

    public var size: (width: Int, height: Int) { (Int(nk_cols()), Int(nk_lines())) }

    public func setTheme(_ theme: Theme) {
        self.theme = theme
        startColors()
        previous = nil
    }

    public func setMouse(_ on: Bool) { nk_enable_mouse(on ? 1 : 0) }

    public func writeRaw(_ text: String) {
        try? FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
    }

    public func suspend(_ body: () -> Void) {
        writeRaw("\u{1B}[?2004l")
        def_prog_mode()
        endwin()
        body()
        reset_prog_mode()
        writeRaw("\u{1B}[?2004h")
        previous = nil
        refresh()
    }

    /// Raw input: characters and key codes, or nil when none is waiting.
    private func read() -> (code: UInt32, isKey: Bool)? {
        var c: UInt32 = 0
        let r = nk_get_wch(&c)
        if r == ERR { return nil }
        return (c, r == nk_key_code_yes())
    }

    private func key(code: UInt32) -> [Key] {
        switch Int32(code) {
        case nk_key_resize(): previous = nil; return [.resize]
        case nk_key_mouse(): let w = Int(nk_mouse_wheel()); return w != 0 ? [.wheel(w)] : []
        case KEY_UP: return [.up]
        case KEY_DOWN: return [.down]
        case KEY_LEFT: return [.left]
        case KEY_RIGHT: return [.right]
        case KEY_HOME: return [.home]
        case KEY_END: return [.end]
        case KEY_PPAGE: return [.pageUp]
        case KEY_NPAGE: return [.pageDown]
        case KEY_BACKSPACE: return [.backspace]
        case KEY_DC: return [.delete]
        case KEY_ENTER: return [.enter]
        case KEY_BTAB: return [.backTab]
        default:
            // xterm's modified keys, as ncurses names them (kUP5, kHOM5, …).
            if let name = nk_keyname(Int32(code)).map({ String(cString: $0) }) {
                switch name {
                case "kUP5", "kUP3": return [.ctrlUp]
                case "kDN5", "kDN3": return [.ctrlDown]
                case "kLFT5", "kLFT3": return [.ctrlLeft]
                case "kRIT5", "kRIT3": return [.ctrlRight]
                case "kHOM5", "kHOM3": return [.ctrlHome]
                case "kEND5", "kEND3": return [.ctrlEnd]
                default: break
                }
            }
            return []
        }
    }

    public func readKeys(timeout: Double, wake: Int32) -> [Key] {
        var keys = drainInput()
        if keys.isEmpty && !decoder.isPending {
            // ncurses holds nothing back now: wait on the terminal and the wake descriptor.
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            if wake >= 0 { fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0)) }
            _ = poll(&fds, nfds_t(fds.count), Int32(max(0, timeout) * 1000))
            keys = drainInput()
        }
        if decoder.isPending {
            // An Escape alone, or the start of a sequence: give the rest 30 ms to arrive.
            var fds = [pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, 30) > 0 { keys += drainInput() }
            if decoder.isPending && keys.isEmpty { keys += decoder.flushEscape() }
        }
        return keys
    }

    private func drainInput() -> [Key] {
        var keys: [Key] = []
        while let (code, isKey) = read() {
            keys += isKey ? key(code: code) : decoder.feed(character: code)
        }
        return keys
    }

    func colorIndex(_ c: Theme.Color) -> Int16 {
        switch c {
        case .terminalDefault: return -1
        case let .standard(n): return n
        case let .rgb(r, g, b):
            if colors256 {
                func level(_ v: Int) -> Int { v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40 }
                return Int16(16 + 36 * level(r) + 6 * level(g) + level(b))
            }
            return (r + g + b) / 3 > 128 ? 7 : 0
        }
    }

    func attributes(_ role: StyleRole) -> (Int32, Int16) {
        var look = theme.looks[role] ?? Theme.Look()
        if case let .expert(e) = role, !theme.expertColors.isEmpty {
            look.foreground = theme.expertColors[e % theme.expertColors.count]
            look.bold = e / theme.expertColors.count % 2 == 1   // the second round of colours is bold
        }
        var attrs: Int32 = 0
        if look.bold { attrs |= nk_attr_bold() }
        if look.dim { attrs |= nk_attr_dim() }
        if look.reverse { attrs |= nk_attr_reverse() }
        if look.italic { attrs |= nk_attr_italic() }
        if look.underline { attrs |= nk_attr_underline() }
        guard colors, look.foreground != .terminalDefault || look.background != .terminalDefault else { return (attrs, 0) }
        let key = "\(look.foreground)/\(look.background)"
        if let p = pairs[key] { return (attrs, p) }
        let p = Int16(pairs.count + 1)
        init_pair(p, colorIndex(look.foreground), colorIndex(look.background))
        pairs[key] = p
        return (attrs, p)
    }

    /// Draws `grid`, writing only what changed; puts the cursor at (cursorX, cursorY).
    public func draw(_ grid: CellGrid, cursorX: Int, cursorY: Int) {
        let full = previous == nil || previous!.width != grid.width || previous!.height != grid.height
        if full { erase() }
        for y in 0..<grid.height {
            for x in 0..<grid.width {
                let cell = grid[x, y]
                if !full, previous![x, y] == cell { continue }
                guard cell.width > 0 else { continue }
                var text = cell.text
                if case let .heat(h) = cell.style, let glyphs = theme.heatGlyphs, !colors {
                    text = glyphs[min(glyphs.count - 1, h * glyphs.count / 8)]
                }
                var wide = text.unicodeScalars.prefix(4).map { wchar_t(bitPattern: $0.value) }
                wide.append(0)
                let (attrs, pair) = attributes(cell.style)
                _ = nk_put_cell(Int32(y), Int32(x), wide, attrs, pair)
            }
        }
        move(Int32(cursorY), Int32(cursorX))
        refresh()
        previous = grid
    }

}

public struct TerminalError: UserFacingError {
    public let description: String
    init(_ d: String) { description = d }
}

/// On a crash (a Swift trap is SIGILL or SIGTRAP; also SEGV, BUS, FPE, ABRT) the terminal is put
/// back before the process dies of the same signal, with async-signal-safe calls only: the modes
/// saved before ncurses changed them (tcsetattr) and escape sequences (write) that undo its setup.
enum CrashRestore {
    /// On the heap, not a Swift global: ASan sizes an imported C struct global without its tail
    /// padding (57 of termios' 60 bytes) and reports tcgetattr's write as an overflow.
    nonisolated(unsafe) static let saved: UnsafeMutablePointer<termios> = {
        let p = UnsafeMutablePointer<termios>.allocate(capacity: 1)
        p.initialize(to: termios())
        return p
    }()
    nonisolated(unsafe) static var haveSaved = false
    /// Allocated here, not in the handler (malloc is not async-signal-safe).
    nonisolated(unsafe) static let reset = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 32)
    nonisolated(unsafe) static var resetCount = 0

    static func install() {
        haveSaved = tcgetattr(0, saved) == 0
        let bytes = Array("\u{1B}[?2004l\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l\r\n".utf8)
        resetCount = bytes.count
        _ = reset.initialize(from: bytes)
        for sig in [SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGABRT] {
            signal(sig) { sig in
                if CrashRestore.haveSaved { tcsetattr(0, TCSANOW, CrashRestore.saved) }
                _ = write(1, CrashRestore.reset.baseAddress, CrashRestore.resetCount)
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }
}
