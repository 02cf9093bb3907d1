import CNekoKernels
import Foundation
import NekoKernels
import Testing

/// The AMX path (level 3: BF16 prefill on tiles, the input split into three BF16 parts) against
/// float64 sums: whole 16-row × 16-token tiles, ragged rows and tokens, one and two token
/// blocks, a GLU pair over a subset of the input's rows, and two jobs that share one packed
/// input. On a machine without AMX the same checks run at level 2.
@Suite(.serialized) struct AMXKernelTests {
    @Test(arguments: [1, 2])
    func amxJobsMatchNaive(threads: Int) {
        nk_thread_simd_level(3)
        defer { nk_thread_simd_level(-1) }
        if nk_simd_detect() >= 3 { #expect(nk_simd_level() == 3) }
        let pool = WorkerPool(threads: threads)
        for (rows, cols, tokens) in [(16, 32, 16), (40, 64, 17), (33, 96, 40), (48, 1024, 33), (100, 288, 20)] {
            let inputRows = tokens + 5
            var noise = Noise(state: UInt64(rows * 31 + tokens))
            let x = noise.floats(inputRows * cols)
            let w = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: UInt64(rows))
            let u = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: UInt64(rows + 1))
            defer { w.free(); u.free() }
            let subset = (0..<tokens).map { Int32(($0 * 5 + 3) % inputRows) }
            let picked = subset.flatMap { x[Int($0) * cols..<(Int($0) + 1) * cols] }
            let plain = naiveLinear(Array(x[0..<tokens * cols]), tokens: tokens, w)
            let g = naiveLinear(picked, tokens: tokens, w), up = naiveLinear(picked, tokens: tokens, u)
            let glu = zip(g, up).map { Float(Double($0) / (1 + exp(-Double($0))) * Double($1)) }
            // What the split allows: each input is kept to 2^-27 of itself (three BF16 parts of 8
            // bits), so a sum is off by float32 rounding of Σ|w·x| terms: 2^-21 · Σ|w·x| holds it
            // here, where two parts (2^-18) fail it by up to 2.6× and one part by over 2000×.
            func magnitude(_ m: StoredMatrix, _ xs: [Float]) -> [Double] {
                var out = [Double](repeating: 0, count: tokens * rows)
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var sum: Double = 0
                        for c in 0..<cols {
                            let wv = Double(m.values[r * cols + c]), xv = Double(xs[t * cols + c])
                            sum += abs(wv * xv)
                        }
                        out[t * rows + r] = sum
                    }
                }
                return out
            }
            let split = pow(2.0, -21.0)
            let plainBound = magnitude(w, x).map { $0 * split }
            let bg = magnitude(w, picked).map { $0 * split }, bu = magnitude(u, picked).map { $0 * split }
            // silu'(g) ≤ 1.1, |silu(g)| ≤ |g|.
            var gluBound = [Double](repeating: 0, count: g.count)
            for i in 0..<g.count {
                let gv = abs(Double(g[i])), uv = abs(Double(up[i]))
                let first: Double = 1.1 * uv * bg[i]
                let second: Double = gv * bu[i] + bg[i] * bu[i]
                gluBound[i] = first + second
            }

            let input = PreparedInput()
            var y1 = [Float](repeating: .nan, count: tokens * rows), y2 = y1, y3 = y1
            x.withUnsafeBufferPointer { xp in
                subset.withUnsafeBufferPointer { sp in
                    y1.withUnsafeMutableBufferPointer { p1 in
                        y2.withUnsafeMutableBufferPointer { p2 in
                            y3.withUnsafeMutableBufferPointer { p3 in
                                input.set(xp.baseAddress!, rows: inputRows, ldx: cols, cols: cols)
                                var list = MatVecList()
                                list.add(w.matrix, input: input, count: tokens, out: p1.baseAddress!, ldy: rows)
                                list.add(w.matrix, input: input, count: tokens, out: p2.baseAddress!, ldy: rows)
                                list.add(w.matrix, up: u.matrix, input: input, inputRows: sp.baseAddress!,
                                         count: tokens, out: p3.baseAddress!, ldy: rows)
                                if threads == 1 { list.runSerially() } else { list.run(pool) }
                            }
                        }
                    }
                }
            }
            /// The worst ratio of error to what is allowed (≤ 1 passes).
            func worst(_ a: [Float], _ b: [Float], _ bound: [Double]) -> Double {
                var result: Double = 0
                for i in 0..<a.count {
                    if a[i].isNaN { return .infinity }
                    let ref = Double(b[i])
                    let error: Double = abs(Double(a[i]) - ref)
                    let allowed: Double = bound[i] + 1e-6 * (1 + abs(ref))
                    result = max(result, error / allowed)
                }
                return result
            }
            let shape = "\(rows)×\(cols), \(tokens) tokens, \(threads) threads"
            #expect(worst(y1, plain, plainBound) <= 1, "\(shape): plain, \(worst(y1, plain, plainBound))× the bound")
            #expect(y2 == y1, "\(shape): a job sharing the packed input differs")
            #expect(worst(y3, glu, gluBound) <= 1, "\(shape): GLU over a subset, \(worst(y3, glu, gluBound))× the bound")
        }
    }
}
