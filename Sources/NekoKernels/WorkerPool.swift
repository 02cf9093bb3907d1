import COpenBLAS
import Dispatch

/// Splits loops across `threads` workers (and sets OpenBLAS to the same count).
public final class WorkerPool: @unchecked Sendable {
    public let threads: Int

    public init(threads: Int) {
        self.threads = max(1, threads)
        openblas_set_num_threads(Int32(self.threads))
    }

    /// Calls `body(begin, end)` on disjoint chunks covering `0..<count`, one chunk per worker.
    /// Small ranges (below `minChunk` items per worker) run on the calling thread.
    public func parallelRanges(_ count: Int, minChunk: Int = 1,
                               _ body: (_ begin: Int, _ end: Int) -> Void) {
        let workers = min(threads, max(1, count / max(1, minChunk)))
        if workers <= 1 || count < 2 {
            body(0, count)
            return
        }
        withoutActuallyEscaping(body) { body in
            // The chunks are disjoint; callers write only their own part of shared buffers.
            let task = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let begin = count * w / workers, end = count * (w + 1) / workers
                if begin < end { task.value(begin, end) }
            }
        }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
