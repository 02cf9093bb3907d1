import Foundation

/// Carries a closure and its result across threads (the caller waits, so access is ordered).
private final class StackBox<T>: @unchecked Sendable {
    var body: (() throws -> T)?
    var result: Result<T, Error>?
}

/// Runs `body` on a thread with a 64 MB stack and waits for it. The parser and interpreter
/// recurse over the template's nesting; the threads of Swift's cooperative pool have small
/// stacks (512 KB), which large real templates exceed.
func onLargeStack<T>(_ body: () throws -> T) throws -> T {
    try withoutActuallyEscaping(body) { body in
        let box = StackBox<T>()
        box.body = body
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.result = Result { try box.body!() }
            box.body = nil   // release it before the caller's withoutActuallyEscaping ends
            done.signal()
        }
        thread.stackSize = 64 << 20
        thread.start()
        done.wait()
        return try box.result!.get()
    }
}
