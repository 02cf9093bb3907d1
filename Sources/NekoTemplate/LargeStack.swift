import Foundation

/// Carries a closure and its result across threads (the caller waits, so access is ordered).
private final class StackBox<T>: @unchecked Sendable {
    var body: (() throws -> T)?
    var result: Result<T, Error>?
}

/// One long-lived thread with a 64 MB stack that parses and renders templates for every
/// caller, one at a time. The parser and interpreter recurse over the template's nesting
/// (bounded by `Limits.depth`); the threads of Swift's cooperative pool have small stacks
/// (512 KB) and debug builds use a lot of stack per level, so templates never run on the
/// caller's stack. The thread is started once and reused: a render costs a hand-off, not a
/// new thread.
private final class TemplateThread: @unchecked Sendable {
    static let shared = TemplateThread()
    private let condition = NSCondition()
    private var work: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while work.isEmpty { condition.wait() }
                let item = work.removeFirst()
                condition.unlock()
                item()
            }
        }
        thread.name = "nekochat-template"
        thread.stackSize = 64 << 20
        thread.start()
    }

    func run(_ item: @escaping () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Whether the caller is this thread (a template rendering a template: run inline).
    var isCurrent: Bool { Thread.current.name == "nekochat-template" }
}

/// Runs `body` on the template thread and waits for it.
func onLargeStack<T>(_ body: () throws -> T) throws -> T {
    if TemplateThread.shared.isCurrent { return try body() }
    return try withoutActuallyEscaping(body) { body in
        let box = StackBox<T>()
        box.body = body
        let done = DispatchSemaphore(value: 0)
        TemplateThread.shared.run {
            box.result = Result { try box.body!() }
            box.body = nil   // release it before the caller's withoutActuallyEscaping ends
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}
