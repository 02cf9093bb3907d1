import Foundation

// How the chat's work is split across threads (the one concurrency story; Sources/README.md):
// - The UI thread (the main thread) owns the conversation (`ChatController`), reads keys and
//   draws. It never runs the model and never blocks on it.
// - One model thread (`ModelThread`) runs backend work, one job at a time, in order.
// - Backend events travel to the UI thread through one bounded `EventChannel`: the model thread
//   blocks when it is full (back-pressure: a slow screen slows generation instead of piling up
//   memory), the UI thread drains it without blocking, woken by a file descriptor it polls
//   together with the terminal.
// Why not swift-async-algorithms' AsyncChannel: both ends here are dedicated threads in
// synchronous loops (a curses loop and a forward pass), and the cooperative pool has only two
// threads on these machines (Sources/README.md, "Traps"); a blocking queue with a wake descriptor needs no task
// on that pool at all.

/// A bounded, thread-safe queue: `send` waits while it is full, `drain` never waits.
/// `wakeDescriptor` becomes readable when something is queued, for `poll(2)` with other inputs.
public final class EventChannel<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    public let capacity: Int
    private var pipe: [Int32] = [-1, -1]

    public init(capacity: Int = 256) {
        self.capacity = max(1, capacity)
        if Glibc.pipe(&pipe) == 0 {
            for fd in pipe { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        }
    }

    deinit { for fd in pipe where fd >= 0 { close(fd) } }

    /// Readable while elements are queued (or -1 if no pipe could be made).
    public var wakeDescriptor: Int32 { pipe[0] }

    /// Adds an element, waiting while the channel is full.
    public func send(_ e: Element) {
        condition.lock()
        while items.count >= capacity { condition.wait() }
        items.append(e)
        let wasEmpty = items.count == 1
        condition.broadcast()
        condition.unlock()
        if wasEmpty, pipe[1] >= 0 {
            var byte: UInt8 = 1
            _ = write(pipe[1], &byte, 1)
        }
    }

    /// Everything queued now (possibly nothing).
    public func drain() -> [Element] {
        condition.lock()
        let out = items
        items.removeAll()
        condition.broadcast()
        condition.unlock()
        if pipe[0] >= 0 {
            var buffer = [UInt8](repeating: 0, count: 64)
            while read(pipe[0], &buffer, buffer.count) > 0 {}
        }
        return out
    }

    /// Waits until something is queued or `timeout` seconds pass; true when something is.
    public func wait(timeout: Double) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date().addingTimeInterval(timeout)
        while items.isEmpty {
            if !condition.wait(until: deadline) { return !items.isEmpty }
        }
        return true
    }
}

/// One dedicated thread with a large stack that runs submitted work in order: the model's
/// forward passes never run on Swift's cooperative pool.
public final class ModelThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var work: [() -> Void] = []
    private var stopping = false

    public init(name: String) {
        let thread = Thread { [self] in self.run() }   // the thread keeps this object until shutdown
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }

    public func submit(_ item: @escaping () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once the submitted work is done.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while work.isEmpty && !stopping { condition.wait() }
            if work.isEmpty { condition.unlock(); return }
            let item = work.removeFirst()
            condition.unlock()
            item()
        }
    }
}
