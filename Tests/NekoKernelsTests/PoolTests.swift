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
