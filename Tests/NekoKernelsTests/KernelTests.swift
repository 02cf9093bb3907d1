import CNekoKernels
import NekoKernels
import Testing

/// Deterministic pseudo-random floats in [-1, 1).
struct Noise {
    var state: UInt64
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
    }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
}

/// Naive twins of the conversions: bit manipulation written independently of the kernels.
func bf16Bits(_ f: Float) -> UInt16 { UInt16(truncatingIfNeeded: f.bitPattern >> 16) }
func bf16Value(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

/// Weights stored as `dtype` bytes at a deliberately odd offset inside a buffer.
struct StoredMatrix {
    let bytes: UnsafeMutableRawPointer
    let matrix: WeightMatrix
    /// The exact float32 value of every stored element (what a naive product must use).
    let values: [Float]

    init(rows: Int, cols: Int, dtype: DType, seed: UInt64, misalign: Int = 1) {
        var noise = Noise(state: seed)
        let n = rows * cols
        bytes = .allocate(byteCount: n * dtype.size + 16, alignment: 16)
        let base = bytes + misalign
        var values: [Float] = []
        for i in 0..<n {
            let f = noise.next()
            switch dtype {
            case .f32:
                base.storeBytes(of: f.bitPattern, toByteOffset: 4 * i, as: UInt32.self)
                values.append(f)
            case .bf16:
                let b = bf16Bits(f)
                base.storeBytes(of: b, toByteOffset: 2 * i, as: UInt16.self)
                values.append(bf16Value(b))
            case .f16:
                let h = Float16(f)
                base.storeBytes(of: h.bitPattern, toByteOffset: 2 * i, as: UInt16.self)
                values.append(Float(h))
            }
        }
        self.values = values
        matrix = WeightMatrix(base: UnsafeRawPointer(base), dtype: dtype, rows: rows, cols: cols)
    }

    func free() { bytes.deallocate() }
}

func naiveLinear(_ x: [Float], tokens: Int, _ w: StoredMatrix) -> [Float] {
    let rows = w.matrix.rows, cols = w.matrix.cols
    var y = [Float](repeating: 0, count: tokens * rows)
    for t in 0..<tokens {
        for r in 0..<rows {
            var acc = 0.0
            for c in 0..<cols { acc += Double(w.values[r * cols + c]) * Double(x[t * cols + c]) }
            y[t * rows + r] = Float(acc)
        }
    }
    return y
}

func maxDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

@Suite struct KernelTests {
    let pool = WorkerPool(threads: 2)

    @Test(arguments: [DType.bf16, .f16, .f32], [0, 1, 2])
    func linearMatchesNaive(dtype: DType, simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        // Columns not a multiple of 8 or 16 exercise the tails; odd byte offsets the unaligned loads.
        for (rows, cols) in [(37, 61), (64, 48), (5, 300), (130, 17), (21, 688), (9, 1024)] {
            let w = StoredMatrix(rows: rows, cols: cols, dtype: dtype, seed: UInt64(rows * cols))
            defer { w.free() }
            for tokens in [1, 2, 3, 4, 5, 9, 20, 33] {
                var noise = Noise(state: UInt64(tokens))
                let x = noise.floats(tokens * cols)
                let expected = naiveLinear(x, tokens: tokens, w)
                for method in [Kernels.Method.rows, .gemm, .auto] {
                    var y = [Float](repeating: .nan, count: tokens * rows)
                    y.withUnsafeMutableBufferPointer { yp in
                        Kernels.linear(x, tokens: tokens, w.matrix, yp.baseAddress!, pool: pool,
                                       scratch: ScratchBuffer(), method: method)
                    }
                    #expect(maxDiff(y, expected) < 1e-4, "\(dtype) \(rows)x\(cols) t=\(tokens) \(method)")
                }
            }
        }
    }

    @Test func linearWithStridesWritesOnlyItsColumns() {
        let w = StoredMatrix(rows: 6, cols: 10, dtype: .bf16, seed: 3)
        defer { w.free() }
        var noise = Noise(state: 9)
        let tokens = 9, ldx = 14, ldy = 11
        let x = noise.floats(tokens * ldx)
        let packed = (0..<tokens).flatMap { t in x[t * ldx..<t * ldx + 10] }
        let expected = naiveLinear(packed, tokens: tokens, w)
        for method in [Kernels.Method.rows, .gemm] {
            var y = [Float](repeating: -7, count: tokens * ldy)
            y.withUnsafeMutableBufferPointer { yp in
                Kernels.linear(x, tokens: tokens, ldx: ldx, w.matrix, yp.baseAddress!, ldy: ldy,
                               pool: pool, scratch: ScratchBuffer(), method: method)
            }
            for t in 0..<tokens {
                #expect(maxDiff(Array(y[t * ldy..<t * ldy + 6]), Array(expected[t * 6..<t * 6 + 6])) < 1e-4)
                #expect(y[t * ldy + 6..<t * ldy + ldy].allSatisfy { $0 == -7 }, "\(method) wrote past its columns")
            }
        }
    }

    @Test(arguments: [0, 1, 2] as [Int32])
    func conversionIsExact(simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        // Every F16 bit pattern (normals, subnormals, ±0, ±inf, NaN) against Swift's Float16.
        let halves = (0...UInt16.max).map { $0 }
        var out = [Float](repeating: 0, count: halves.count)
        halves.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                Kernels.toFloat(src.baseAddress!, dtype: .f16, count: halves.count, out: dst.baseAddress!)
            }
        }
        for (h, f) in zip(halves, out) {
            let expected = Float(Float16(bitPattern: h))
            #expect(expected.isNaN ? f.isNaN : f.bitPattern == expected.bitPattern, "f16 \(h)")
        }
        halves.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { dst in
                Kernels.toFloat(src.baseAddress!, dtype: .bf16, count: halves.count, out: dst.baseAddress!)
            }
        }
        for (h, f) in zip(halves, out) {
            #expect(f.bitPattern == bf16Value(h).bitPattern || (f.isNaN && bf16Value(h).isNaN), "bf16 \(h)")
        }
    }

    @Test(arguments: [0, 1, 2] as [Int32])
    func vectorKernelsMatchNaive(simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        var noise = Noise(state: 42)
        for n in [1, 7, 8, 15, 16, 33, 128, 1000] {
            let a = noise.floats(n), b = noise.floats(n)
            let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            #expect(abs(Double(Kernels.dot(a, b, n)) - dot) < 1e-4)
            var y = a
            y.withUnsafeMutableBufferPointer { Kernels.axpy($0.baseAddress!, 0.5, b, n) }
            #expect(maxDiff(y, zip(a, b).map { $0 + 0.5 * $1 }) < 1e-6)
        }
    }

    /// log Σ exp against double precision, at every SIMD level, for lengths around the vector
    /// width, a vocabulary-sized row, large values and −∞ (masked) entries.
    @Test(arguments: [0, 1, 2] as [Int32])
    func logSumExpMatchesDoublePrecision(level: Int32) {
        nk_thread_simd_level(level)
        defer { nk_thread_simd_level(-1) }
        var noise = Noise(state: 11)
        for n in [1, 7, 8, 9, 31, 32006] {
            for scale: Float in [1, 40] {
                var x = noise.floats(n).map { $0 * scale }
                if n > 2 { x[1] = -.infinity }
                let m = Double(x.max()!)
                let want = m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
                let got = x.withUnsafeBufferPointer { Kernels.logSumExp($0.baseAddress!, n) }
                #expect(abs(got - want) < 1e-5 * max(1, abs(want)), "n \(n) scale \(scale) level \(level): \(got) vs \(want)")
            }
        }
    }

    @Test func elementwiseKernelsMatchTheirDefinitions() {
        var noise = Noise(state: 7)
        let n = 50
        let x = noise.floats(n), w = noise.floats(n)
        // rmsnorm(x, w) = w * x / sqrt(mean(x²) + eps)
        let eps: Float = 1e-6
        let rms = (x.reduce(0.0) { $0 + Double($1 * $1) } / Double(n) + Double(eps)).squareRoot()
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { Kernels.rmsnorm(x, weight: w, count: n, eps: eps, out: $0.baseAddress!) }
        #expect(maxDiff(out, (0..<n).map { Float(Double(w[$0]) * Double(x[$0]) / rms) }) < 1e-5)
        // softmax
        var s = x.map { $0 * 30 }
        s.withUnsafeMutableBufferPointer { Kernels.softmax($0.baseAddress!, n) }
        let m = x.map { Double($0 * 30) }.max()!
        let e = x.map { exp(Double($0 * 30) - m) }, z = e.reduce(0, +)
        #expect(maxDiff(s, e.map { Float($0 / z) }) < 1e-6)
        // silu(g) * u
        var g = x
        g.withUnsafeMutableBufferPointer { Kernels.siluMul($0.baseAddress!, w, n) }
        #expect(maxDiff(g, (0..<n).map { x[$0] / (1 + exp(-x[$0])) * w[$0] }) < 1e-6)
        // RoPE: rotate-half pairs (i, i + d/2)
        let d = 16
        var v = Array(x[0..<d])
        let cos = (0..<d / 2).map { Float(Foundation.cos(Double($0) * 0.3)) }
        let sin = (0..<d / 2).map { Float(Foundation.sin(Double($0) * 0.3)) }
        v.withUnsafeMutableBufferPointer { Kernels.rope($0.baseAddress!, cos: cos, sin: sin, headDim: d) }
        for i in 0..<d / 2 {
            #expect(abs(v[i] - (x[i] * cos[i] - x[i + d / 2] * sin[i])) < 1e-6)
            #expect(abs(v[i + d / 2] - (x[i + d / 2] * cos[i] + x[i] * sin[i])) < 1e-6)
        }
    }
}

import Foundation
