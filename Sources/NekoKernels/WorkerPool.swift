import CNekoKernels
import COpenBLAS

/// A persistent pool of exactly `threads` workers (the calling thread counts as one): the other
/// threads spin briefly after each task and then sleep, so a forward pass pays microseconds,
/// not a thread wake-up, per phase. One caller at a time.
public final class WorkerPool: @unchecked Sendable {
    public let threads: Int
    let pool: OpaquePointer

    public init(threads: Int) {
        // OpenBLAS only runs small single-threaded GEMMs (attention) inside our tasks.
        openblas_set_num_threads(1)
        pool = nk_pool_create(Int32(max(1, threads)))
        self.threads = Int(nk_pool_threads(pool))
    }

    deinit { nk_pool_destroy(pool) }

    /// Calls `body(begin, end)` on disjoint chunks covering `0..<count`, one chunk per worker.
    /// Small ranges (below `minChunk` items per worker) run on the calling thread.
    public func parallelRanges(_ count: Int, minChunk: Int = 1,
                               _ body: (_ begin: Int, _ end: Int) -> Void) {
        parallelChunks(count, minChunk: minChunk) { _, begin, end in body(begin, end) }
    }

    /// As `parallelRanges`, also passing the index (`0 ..< threads`) of the thread that runs the
    /// chunk, so a chunk can use scratch memory of its own. Chunks go to whichever threads are
    /// free: a thread that lost its core to another process does not hold the others up.
    public func parallelChunks(_ count: Int, minChunk: Int = 1,
                               _ body: (_ worker: Int, _ begin: Int, _ end: Int) -> Void) {
        let workers = workers(for: count, minChunk: minChunk)
        if workers <= 1 {
            if count > 0 { body(0, 0, count) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = RangeTask(body: body)
            withUnsafeMutablePointer(to: &task) { p in
                nk_pool_for(pool, Int64(count), Int64(workers), { context, thread, begin, end in
                    context!.assumingMemoryBound(to: RangeTask.self).pointee.body(Int(thread), Int(begin), Int(end))
                }, p)
            }
        }
    }

    /// How many chunks `parallelChunks(count, minChunk:)` makes (at most `threads`).
    public func workers(for count: Int, minChunk: Int = 1) -> Int {
        count < 2 ? 1 : min(threads, max(1, count / max(1, minChunk)))
    }

    /// Runs matrix-vector jobs in one fork/join (chunks weighted by cost, taken in order).
    public func run(_ jobs: UnsafeBufferPointer<nk_matvec>) {
        guard let base = jobs.baseAddress, !jobs.isEmpty else { return }
        nk_run_matvecs(pool, base, Int64(jobs.count))
    }

    /// Best read bandwidth of all threads over `bytes` of fresh memory, in bytes per second.
    public func measureReadBandwidth(bytes: Int, passes: Int = 5) -> Double {
        nk_measure_read_bandwidth(pool, bytes, Int32(passes))
    }

    /// Each pass's read bandwidth (bytes per second) over `bytes` of fresh memory.
    public func measureReadBandwidthPasses(bytes: Int, passes: Int) -> [Double] {
        var rates = [Double](repeating: 0, count: max(1, passes))
        nk_measure_read_bandwidth_passes(pool, bytes, Int32(rates.count), &rates)
        return rates
    }

    /// Each pass's read bandwidth (bytes per second) over `bytes` of existing memory at `memory`.
    public func measureReadBandwidth(of memory: UnsafeRawPointer, bytes: Int, passes: Int) -> [Double] {
        var rates = [Double](repeating: 0, count: max(1, passes))
        nk_measure_read_bandwidth_of(pool, memory, bytes, Int32(rates.count), &rates)
        return rates
    }

    /// Float32 FMA throughput of all threads at the current SIMD level (FLOP/s, FMA = 2).
    public func measureFMAPeak(seconds: Double = 0.2) -> Double {
        nk_measure_fma_peak(pool, seconds)
    }
}

private struct RangeTask {
    let body: (Int, Int, Int) -> Void
}

/// The SIMD level the kernels use (0 portable, 1 AVX2, 2 AVX-512 VNNI) and its name.
public enum SIMD {
    public static var level: Int { Int(nk_simd_level()) }
    public static var best: Int { Int(nk_simd_detect()) }
    public static func name(_ level: Int) -> String { String(cString: nk_simd_name(Int32(level))) }
    /// Forces a level (capped at what the CPU supports); for tests of every path.
    public static func force(_ level: Int) { nk_force_simd_level(Int32(level)) }
}
