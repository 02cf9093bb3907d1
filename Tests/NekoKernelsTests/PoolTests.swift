import Foundation
import CNekoKernels
import NekoKernels
import Testing

@Suite struct PoolTests {
    @Test(arguments: [1, 2, 3, 5])
    func rangesCoverEveryIndexOnce(threads: Int) {
        let pool = WorkerPool(threads: threads)
        #expect(pool.threads == threads)
        for count in [0, 1, 2, 7, 100, 1001] {
            let hits = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, count))
            hits.initialize(repeating: 0, count: max(1, count))
            defer { hits.deallocate() }
            for _ in 0..<20 {
                pool.parallelChunks(count) { worker, begin, end in
                    precondition(worker < pool.threads)
                    for i in begin..<end { hits[i] += 1 }
                }
            }
            #expect((0..<count).allSatisfy { hits[$0] == 20 }, "threads \(threads) count \(count)")
        }
    }

    /// Many jobs of every format through the pool equal the same jobs run serially.
    @Test(arguments: [1, 2, 4])
    func pooledJobsEqualSerialJobs(threads: Int) {
        let pool = WorkerPool(threads: threads)
        var noise = Noise(state: 3)
        let cols = 160, tokens = 3
        let x = noise.floats(tokens * cols)
        let input = PreparedInput()
        var matrices: [(WeightMatrix, () -> Void)] = []
        for (i, rows) in [17, 64, 300, 5, 129].enumerated() {
            let s = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: UInt64(i))
            matrices.append((s.matrix, s.free))
            for format in [MatrixFormat.q8, .q4] {
                let p = PackedMatrix(rows: rows, cols: cols, format: format, seed: UInt64(10 + i))
                matrices.append((p.matrix, p.free))
            }
        }
        defer { matrices.forEach { $0.1() } }
        let total = matrices.reduce(0) { $0 + $1.0.rows } * tokens
        var serial = [Float](repeating: 0, count: total), pooled = [Float](repeating: .nan, count: total)
        x.withUnsafeBufferPointer { xp in
            input.set(xp.baseAddress!, rows: tokens, ldx: cols, cols: cols)
            for (out, pooledRun) in [(0, false), (1, true)] {
                _ = out
                var list = MatVecList()
                var offset = 0
                let buffer = pooledRun ? pooled : serial
                var result = buffer
                result.withUnsafeMutableBufferPointer { yp in
                    for (m, _) in matrices {
                        list.add(m, input: input, out: yp.baseAddress! + offset, ldy: m.rows)
                        offset += m.rows * tokens
                    }
                    if pooledRun { list.run(pool) } else { list.runSerially() }
                }
                if pooledRun { pooled = result } else { serial = result }
            }
        }
        // Equal up to the SIMD level, which other suites may force while this one runs.
        let worst = zip(pooled, serial).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? .nan
        #expect(worst < 1e-5, "threads \(threads): worst relative difference \(worst)")
    }

    @Test func measurementsAreSane() {
        let pool = WorkerPool(threads: 2)
        let bandwidth = pool.measureReadBandwidth(bytes: 8 << 20, passes: 2)
        #expect(bandwidth > 1e8 && bandwidth < 1e13)
        let peak = pool.measureFMAPeak(seconds: 0.02)
        #expect(peak > 1e8 && peak < 1e14)
    }
}

/// A test pins a SIMD level for its own thread and the pool tasks it starts, never for the
/// process: kernel tests of different levels run side by side.
@Suite struct PinnedLevelTests {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var levels: [Int32] = []
        func add(_ l: Int32) { lock.withLock { levels.append(l) } }
    }

    @Test func aPinnedLevelStaysWithItsThreadAndItsPoolTasks() {
        guard nk_simd_detect() > 0 else { return }   // a portable-only CPU has nothing to tell apart
        nk_thread_simd_level(0)
        defer { nk_thread_simd_level(-1) }
        #expect(nk_current_simd_level() == 0)
        let other = Box(), done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { other.add(nk_current_simd_level()); done.signal() }
        done.wait()
        #expect(other.levels == [nk_simd_level()] && nk_simd_level() > 0)
        let pool = WorkerPool(threads: 2), seen = Box()
        for _ in 0..<20 {
            pool.parallelRanges(64, minChunk: 1) { _, _ in seen.add(nk_current_simd_level()) }
        }
        #expect(!seen.levels.isEmpty && seen.levels.allSatisfy { $0 == 0 })
    }
}
