import Foundation

/// What the chat needs of a screen: its size, keys, and drawing a grid. The ncurses driver is
/// the real one; the in-memory driver lets every key and command be tested without a terminal.
public protocol ScreenDriver: AnyObject {
    var size: (width: Int, height: Int) { get }
    /// Waits at most `timeout` seconds for keys — or for `wake` (a descriptor, -1 for none) to
    /// become readable — and returns the keys that came (possibly none).
    func readKeys(timeout: Double, wake: Int32) -> [Key]
    /// Shows `grid`, writing only what changed, with the cursor at (x, y).
    func draw(_ grid: CellGrid, cursorX: Int, cursorY: Int)
    func setTheme(_ theme: Theme)
    /// Mouse reporting on (the wheel scrolls) or off (the terminal selects text).
    func setMouse(_ on: Bool)
    /// Bytes for the terminal itself (OSC 52 clipboard), written as they are.
    func writeRaw(_ text: String)
    /// Gives the terminal to another program (an editor) while `body` runs.
    func suspend(_ body: () -> Void)
    func close()
}

/// A screen in memory: keys come from a script, frames are kept. For tests.
public final class MemoryDriver: ScreenDriver {
    public var size: (width: Int, height: Int)
    /// Batches of keys, one batch per `readKeys` call.
    public var script: [[Key]]
    public private(set) var frames = 0
    public private(set) var grid: CellGrid
    public private(set) var cursor = (x: 0, y: 0)
    public private(set) var raw = ""
    public private(set) var mouse = true
    public private(set) var theme: Theme?
    public private(set) var closed = false
    /// What `suspend` ran (an external editor, in tests a closure of the test's own).
    public var onSuspend: (() -> Void)?

    public init(width: Int = 80, height: Int = 24, script: [[Key]] = []) {
        size = (width, height)
        self.script = script
        grid = CellGrid(width: width, height: height)
    }

    /// An empty batch (or the end of the script) waits for the backend, like a person
    /// watching the screen.
    public func readKeys(timeout: Double, wake: Int32) -> [Key] {
        let batch = script.isEmpty ? [] : script.removeFirst()
        if batch.isEmpty, wake >= 0 {
            var fds = [pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, Int32(timeout * 1000))
        }
        return batch
    }

    public func draw(_ grid: CellGrid, cursorX: Int, cursorY: Int) {
        self.grid = grid
        cursor = (cursorX, cursorY)
        frames += 1
    }

    public func setTheme(_ theme: Theme) { self.theme = theme }
    public func setMouse(_ on: Bool) { mouse = on }
    public func writeRaw(_ text: String) { raw += text }
    public func suspend(_ body: () -> Void) { body() }
    public func close() { closed = true }

    /// The last frame as text.
    public var text: String { grid.text }
}
