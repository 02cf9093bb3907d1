import Foundation
import CNekoKernels
import NekoKernels
import Testing

/// Naive twins of the quantised formats, written from nk_quant.h's documentation: block
/// quantisers, a reader of the packed bytes, and double-precision dot products over the decoded
/// values. The kernels' integer block sums are exact, so they must agree to float rounding.
enum Naive {
    /// Q8: d = max|x| / 127 rounded to half, q = round-to-even(x · (1 / d)) clamped to ±127.
    static func q8Block(_ x: ArraySlice<Float>) -> (d: Float16, q: [Int]) {
        let amax = x.map { abs($0) }.max() ?? 0
        let d = Float16(min(amax / 127, 65504))
        let id: Float = Float(d) > 0 ? 1 / Float(d) : 0
        var q = x.map { max(-127, min(127, Int(($0 * id).rounded(.toNearestOrEven)))) }
        q += repeatElement(0, count: 32 - q.count)
        return (d, q)
    }

    /// Activations: d = max|x| / 127 (float), q = round-to-even(x · (1 / d)).
    static func actBlock(_ x: ArraySlice<Float>) -> (d: Float, q: [Int]) {
        let amax = x.map { abs($0) }.max() ?? 0
        let d = amax / 127
        let id: Float = d > 0 ? 1 / d : 0
        var q = x.map { Int(($0 * id).rounded(.toNearestOrEven)) }
        q += repeatElement(0, count: 32 - q.count)
        return (d, q)
    }

    /// (d, m, codes) of row r, block b of a packed matrix, read by the documented layout.
    static func read(_ format: MatrixFormat, _ packed: UnsafeRawPointer, cols: Int, row r: Int, block b: Int)
        -> (d: Float, m: Float, q: [Int]) {
        let nb = (cols + 31) / 32, g = r / 16, i = r % 16
        let bytes = format == .q8 ? 544 : 320
        let blk = packed + (g * nb + b) * bytes
        func half(_ offset: Int) -> Float { Float(Float16(bitPattern: blk.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
        var q = [Int](repeating: 0, count: 32)
        for k in 0..<32 {
            if format == .q8 {
                q[k] = Int(blk.load(fromByteOffset: 32 + 64 * (k / 4) + 4 * i + k % 4, as: UInt8.self)) - 128
            } else {
                let kk = k % 16
                let byte = blk.load(fromByteOffset: 64 + 64 * (kk / 4) + 4 * i + kk % 4, as: UInt8.self)
                q[k] = Int(k < 16 ? byte & 15 : byte >> 4)
            }
        }
        return (half(2 * i), format == .q4 ? half(32 + 2 * i) : 0, q)
    }

    /// Σ_blocks d_w·d_x·Σ q_w q_x (+ m_w·d_x·Σ q_x) in double, and Σ of the terms' magnitudes.
    static func dot(_ format: MatrixFormat, _ packed: UnsafeRawPointer, cols: Int, row: Int, x: [Float])
        -> (value: Double, scale: Double) {
        var acc = 0.0, mag = 0.0
        for b in 0..<(cols + 31) / 32 {
            let w = read(format, packed, cols: cols, row: row, block: b)
            let a = actBlock(x[(32 * b)..<min(cols, 32 * b + 32)])
            var isum = 0, qsum = 0
            for k in 0..<32 { isum += w.q[k] * a.q[k]; qsum += a.q[k] }
            let scaled = Double(w.d) * Double(a.d) * Double(isum), offset = Double(w.m) * Double(a.d) * Double(qsum)
            acc += scaled + offset
            mag += abs(scaled) + abs(offset)
        }
        return (acc, mag)
    }
}

/// A stored matrix packed into `format` (deallocate `packed` when done).
struct PackedMatrix {
    let stored: StoredMatrix
    let packed: UnsafeMutableRawPointer
    let matrix: WeightMatrix

    init(rows: Int, cols: Int, format: MatrixFormat, seed: UInt64) {
        stored = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: seed)
        packed = .allocate(byteCount: format.byteCount(rows: rows, cols: cols), alignment: 64)
        stored.matrix.pack(format, groups: 0..<stored.matrix.groups, into: packed)
        matrix = WeightMatrix(packed: packed, format: format, rows: rows, cols: cols, source: .bf16)
    }

    func free() { stored.free(); packed.deallocate() }
}

extension KernelTests {
    static let quantShapes = [(37, 61), (16, 32), (48, 688), (33, 1024), (130, 17), (5, 300)]

    @Test func q8PackingIsTheDocumentedLayout() {
        for (rows, cols) in Self.quantShapes {
            let p = PackedMatrix(rows: rows, cols: cols, format: .q8, seed: UInt64(rows + cols))
            defer { p.free() }
            for r in 0..<rows {
                let row = p.stored.values[r * cols..<(r + 1) * cols]
                var decoded = [Float](repeating: 0, count: cols)
                decoded.withUnsafeMutableBufferPointer { p.matrix.row(r, into: $0.baseAddress!) }
                for b in 0..<(cols + 31) / 32 {
                    let lo = row.startIndex + 32 * b, hi = min(row.endIndex, lo + 32)
                    let want = Naive.q8Block(row[lo..<hi])
                    let got = Naive.read(.q8, p.packed, cols: cols, row: r, block: b)
                    #expect(got.d == Float(want.d) && got.q == want.q, "q8 \(rows)x\(cols) row \(r) block \(b)")
                    for k in 0..<(hi - lo) { #expect(decoded[32 * b + k] == Float(want.d) * Float(want.q[k])) }
                }
            }
            // Rows past the last one (in the last group) are zero.
            if rows % 16 != 0 {
                let pad = Naive.read(.q8, p.packed, cols: cols, row: rows, block: 0)
                #expect(pad.d == 0 && pad.q.allSatisfy { $0 == 0 })
            }
        }
    }

    @Test func q4PackingDecodesAndBeatsPlainMinMax() {
        for (rows, cols) in Self.quantShapes {
            let p = PackedMatrix(rows: rows, cols: cols, format: .q4, seed: UInt64(3 * rows + cols))
            defer { p.free() }
            var errSearch = 0.0, errMinMax = 0.0
            for r in 0..<rows {
                var decoded = [Float](repeating: 0, count: cols)
                decoded.withUnsafeMutableBufferPointer { p.matrix.row(r, into: $0.baseAddress!) }
                for b in 0..<(cols + 31) / 32 {
                    let got = Naive.read(.q4, p.packed, cols: cols, row: r, block: b)
                    let lo = r * cols + 32 * b, hi = min((r + 1) * cols, lo + 32)
                    let x = p.stored.values[lo..<hi]
                    let mn = x.min()!, mx = x.max()!, d = (mx - mn) / 15
                    for (k, v) in x.enumerated() {
                        #expect(got.q[k] >= 0 && got.q[k] <= 15)
                        let value = got.d * Float(got.q[k]) + got.m
                        #expect(decoded[32 * b + k] == value, "q4 \(rows)x\(cols) row \(r) value \(32 * b + k)")
                        errSearch += Double((value - v) * (value - v))
                        let c = d > 0 ? ((v - mn) / d).rounded() : 0
                        errMinMax += Double((d * c + mn - v) * (d * c + mn - v))
                    }
                }
            }
            #expect(errSearch <= errMinMax * 1.01, "q4 \(rows)x\(cols): search \(errSearch) vs min/max \(errMinMax)")
        }
    }

    @Test(arguments: [0, 1, 2] as [Int32])
    func activationQuantisationIsExact(simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        var noise = Noise(state: 5)
        for cols in [1, 17, 32, 100, 688] {
            let rows = 3
            var x = noise.floats(rows * cols)
            x[0] = 0.5  // a block with exact halves
            let bytes = nk_qact_bytes(Int64(rows), Int64(cols))
            let mem = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            defer { mem.deallocate() }
            var a = nk_qact()
            nk_qact_init(&a, mem, Int64(rows), Int64(cols))
            nk_quantize_act(x, Int64(rows), Int64(cols), Int64(cols), &a)
            for r in 0..<rows {
                for b in 0..<Int(a.blocks) {
                    let lo = r * cols + 32 * b, hi = min((r + 1) * cols, lo + 32)
                    let want = lo < hi ? Naive.actBlock(x[lo..<hi]) : (d: 0, q: [Int](repeating: 0, count: 32))
                    let got = (0..<32).map { Int(a.q[r * Int(a.stride) + 32 * b + $0]) }
                    #expect(got == want.q && a.d[r * Int(a.blocks) + b] == want.d, "cols \(cols) row \(r) block \(b)")
                    let sum = want.q.reduce(0, +)
                    #expect(a.c8[r * Int(a.blocks) + b] == Int32(-128 * sum))
                    #expect(a.ds[r * Int(a.blocks) + b] == want.d * Float(sum))
                }
            }
        }
    }

    /// Every level's Q8/Q4 rows kernel against the naive twin, through gathered input rows.
    @Test(arguments: [MatrixFormat.q8, .q4], [0, 1, 2] as [Int32])
    func quantizedRowsMatchNaive(format: MatrixFormat, simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        for (rows, cols) in Self.quantShapes {
            let p = PackedMatrix(rows: rows, cols: cols, format: format, seed: UInt64(rows * 7 + cols))
            defer { p.free() }
            var noise = Noise(state: UInt64(rows + 11 * cols))
            let inputRows = 20
            let x = noise.floats(inputRows * cols)
            let input = PreparedInput()
            for tokens in [1, 2, 3, 4, 5, 8, 9, 17] {
                let pick = (0..<tokens).map { Int32(($0 * 7 + 3) % inputRows) }
                var y = [Float](repeating: .nan, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in
                    input.set(xp.baseAddress!, rows: inputRows, ldx: cols, cols: cols)
                    pick.withUnsafeBufferPointer { ip in
                        y.withUnsafeMutableBufferPointer { yp in
                            var list = MatVecList()
                            list.add(p.matrix, input: input, inputRows: ip.baseAddress!, count: tokens,
                                     out: yp.baseAddress!, ldy: rows)
                            list.runSerially()
                        }
                    }
                }
                for t in 0..<tokens {
                    let xt = Array(x[Int(pick[t]) * cols..<(Int(pick[t]) + 1) * cols])
                    for r in 0..<rows {
                        let want = Naive.dot(format, p.packed, cols: cols, row: r, x: xt)
                        let d = abs(Double(y[t * rows + r]) - want.value)
                        #expect(d <= 1e-5 * (want.scale + 1e-6), "\(format) L\(simd) \(rows)x\(cols) t=\(tokens) [\(t),\(r)]: \(y[t * rows + r]) vs \(want.value)")
                    }
                }
            }
        }
    }

    /// A fused gate/up job equals silu(gate·x) · (up·x) from two plain jobs, for every format.
    @Test(arguments: [MatrixFormat.bf16, .q8, .q4], [0, 1, 2] as [Int32])
    func gluJobIsSiluGateTimesUp(format: MatrixFormat, simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        let rows = 40, cols = 96, tokens = 6
        let gateM: WeightMatrix, upM: WeightMatrix
        var keep: [() -> Void] = []
        if format == .bf16 {
            let g = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: 1), u = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: 2)
            gateM = g.matrix; upM = u.matrix
            keep = [g.free, u.free]
        } else {
            let g = PackedMatrix(rows: rows, cols: cols, format: format, seed: 1), u = PackedMatrix(rows: rows, cols: cols, format: format, seed: 2)
            gateM = g.matrix; upM = u.matrix
            keep = [g.free, u.free]
        }
        defer { keep.forEach { $0() } }
        var noise = Noise(state: 77)
        let x = noise.floats(tokens * cols)
        var g = [Float](repeating: 0, count: tokens * rows), u = g, fused = g
        let input = PreparedInput()
        x.withUnsafeBufferPointer { xp in
            input.set(xp.baseAddress!, rows: tokens, ldx: cols, cols: cols)
            var list = MatVecList()
            g.withUnsafeMutableBufferPointer { list.add(gateM, input: input, out: $0.baseAddress!, ldy: rows) }
            u.withUnsafeMutableBufferPointer { list.add(upM, input: input, out: $0.baseAddress!, ldy: rows) }
            fused.withUnsafeMutableBufferPointer { list.add(gateM, up: upM, input: input, out: $0.baseAddress!, ldy: rows) }
            list.runSerially()
        }
        let want = zip(g, u).map { $0 / (1 + exp(-$0)) * $1 }
        #expect(maxDiff(fused, want) < 1e-6)
    }

    /// The BF16 kernels read the even/odd-prepared input; without it they read the natural order.
    @Test(arguments: [0, 1, 2] as [Int32])
    func bf16PreparedAndNaturalInputsAgree(simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        for (rows, cols) in [(19, 700), (32, 64), (3, 33)] {
            let w = StoredMatrix(rows: rows, cols: cols, dtype: .bf16, seed: 9)
            defer { w.free() }
            for tokens in [1, 2, 4, 7] {
                var noise = Noise(state: UInt64(tokens))
                let x = noise.floats(tokens * cols)
                let stride = Int(nk_prep_stride(Int64(cols)))
                var xp = [Float](repeating: .nan, count: tokens * stride)
                nk_prep_bf16(x, Int64(tokens), Int64(cols), Int64(cols), &xp)
                // The prepared layout: per block of 32, the 16 even then the 16 odd values, zero-padded.
                for t in 0..<tokens {
                    for c in 0..<stride {
                        let b = c / 32 * 32, i = c % 32
                        let src = b + (i < 16 ? 2 * i : 2 * (i - 16) + 1)
                        #expect(xp[t * stride + c] == (src < cols ? x[t * cols + src] : 0))
                    }
                }
                let expected = naiveLinear(x, tokens: tokens, w)
                for prepared in [true, false] {
                    var y = [Float](repeating: .nan, count: tokens * rows)
                    x.withUnsafeBufferPointer { xb in
                        xp.withUnsafeBufferPointer { pb in
                            y.withUnsafeMutableBufferPointer { yb in
                                var job = nk_matvec()
                                job.w = w.matrix.base
                                job.format = MatrixFormat.bf16.rawValue
                                job.ntok = Int32(tokens)
                                job.rows = Int64(rows)
                                job.cols = Int64(cols)
                                job.x = xb.baseAddress
                                job.ldx = Int64(cols)
                                job.xp = prepared ? pb.baseAddress : nil
                                job.y = yb.baseAddress
                                job.ldy = Int64(rows)
                                nk_run_matvecs_serial(&job, 1)
                            }
                        }
                    }
                    #expect(maxDiff(y, expected) < 1e-4, "L\(simd) \(rows)x\(cols) t=\(tokens) prepared \(prepared)")
                }
            }
        }
    }

    @Test func halfConversionRoundsToNearestEven() {
        var noise = Noise(state: 123)
        var values: [Float] = [0, -0, 1, -1, 65504, 65519, 65520, 1e-8, 3e-8, 5.96e-8, 6.1e-5, 1e9, -1e9, .infinity, 0.1, 1 / 3]
        values += noise.floats(20000).map { $0 * 70000 } + noise.floats(20000).map { $0 * 1e-4 }
        for f in values {
            let want = Float16(f).bitPattern
            #expect(nk_f32_to_f16(f) == want, "\(f)")
            #expect(nk_f16_to_f32(want).bitPattern == Float(Float16(bitPattern: want)).bitPattern)
        }
    }
}

extension KernelTests {
    /// (query heads per KV head, head_dim, cached positions): NekoMind's 2 × 128, OLMoE's and
    /// Mixtral's 4 × 128, groups of 8, 16 and past 64, head sizes 16 to 128 in steps of 16 and
    /// odd ones (the portable path), one position, block edges (64, 65, 127) and long contexts
    /// (several thousand positions: many blocks of the online softmax).
    static let attentionShapes = [(1, 16, 1), (2, 128, 37), (4, 64, 300), (3, 24, 5), (2, 10, 7), (4, 128, 300), (8, 64, 50),
                                  (16, 128, 20), (3, 96, 33), (5, 80, 9), (2, 48, 5), (1, 112, 7), (6, 32, 40), (16, 16, 3), (7, 128, 2),
                                  (2, 128, 64), (2, 128, 65), (1, 8, 127), (2, 128, 4099), (4, 128, 2500), (3, 40, 1500), (70, 16, 70)]

    /// Decode attention for a group of query heads against a naive softmax(q·kᵀ)·v in double
    /// precision over the cache's own (rounded) values, for each cache precision and SIMD level.
    /// The keys grow along the context, so later blocks raise the running maximum (the rescale
    /// path of the online softmax), and some scores are large (a peaked softmax).
    @Test(arguments: [0, 1, 2] as [Int32], [DType.f32, .f16, .bf16])
    func decodeAttentionMatchesNaive(simd: Int32, dtype: DType) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        var noise = Noise(state: 31)
        for (group, hd, n) in Self.attentionShapes {
            let q = noise.floats(group * hd)
            let kf = noise.floats(n * hd).enumerated().map { $0.element * (1 + 4 * Float($0.offset / hd) / Float(n)) }
            let vf = noise.floats(n * hd)
            // The cache's bytes, and the values they hold as floats.
            func stored(_ x: [Float]) -> (bytes: [UInt8], values: [Float]) {
                switch dtype {
                case .f32: return (x.withUnsafeBytes { Array($0) }, x)
                case .f16, .bf16:
                    var bits = [UInt16](repeating: 0, count: x.count)
                    x.withUnsafeBufferPointer {
                        if dtype == .f16 { Kernels.toHalf($0.baseAddress!, count: x.count, out: &bits) }
                        else { Kernels.toBFloat16($0.baseAddress!, count: x.count, out: &bits) }
                    }
                    let values = bits.map { dtype == .f16 ? Float(Float16(bitPattern: $0)) : Float(bitPattern: UInt32($0) << 16) }
                    return (bits.withUnsafeBytes { Array($0) }, values)
                }
            }
            let (kb, k) = stored(kf), (vb, v) = stored(vf)
            let scale = 1 / Float(hd).squareRoot()
            var scores = [Float](repeating: .nan, count: min(group, 64) * Kernels.attendBlock)
            var out = [Float](repeating: .nan, count: group * hd)
            kb.withUnsafeBytes { kp in
                vb.withUnsafeBytes { vp in
                    Kernels.attendDecode(q: q, group: group, headDim: hd, keys: kp.baseAddress!, values: vp.baseAddress!,
                                         dtype: dtype, count: n, scale: scale, scores: &scores, out: &out)
                }
            }
            var want = [Float](repeating: 0, count: group * hd)
            for g in 0..<group {
                let s = (0..<n).map { p in (0..<hd).reduce(0.0) { $0 + Double(q[g * hd + $1]) * Double(k[p * hd + $1]) } * Double(scale) }
                let m = s.max()!, e = s.map { exp($0 - m) }, z = e.reduce(0, +)
                for i in 0..<hd { want[g * hd + i] = Float((0..<n).reduce(0.0) { $0 + e[$1] / z * Double(v[$1 * hd + i]) }) }
            }
            #expect(maxDiff(out, want) < 2e-5, "L\(simd) \(dtype) group \(group) hd \(hd) n \(n)")
        }
    }

    /// bfloat16 conversion rounds to nearest even (ties to the even mantissa), keeps NaN a NaN
    /// and infinities infinite, at every level.
    @Test(arguments: [0, 1, 2] as [Int32])
    func bfloat16ConversionRoundsToNearestEven(simd: Int32) {
        nk_thread_simd_level(simd)
        defer { nk_thread_simd_level(-1) }
        var noise = Noise(state: 77)
        var values: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .greatestFiniteMagnitude, 1e-40, -3e-39,
                               Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000), Float(bitPattern: 0x3f80_8001)]
        values += noise.floats(4001).map { $0 * 1e5 }
        var bits = [UInt16](repeating: 0, count: values.count + 1)
        (values + [.nan]).withUnsafeBufferPointer { Kernels.toBFloat16($0.baseAddress!, count: values.count + 1, out: &bits) }
        for (f, b) in zip(values, bits) {
            // Round to nearest even in integer arithmetic, as the format defines it.
            let u = f.bitPattern, lower = u & 0xffff, upper = u >> 16
            let up = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1)
            #expect(b == UInt16(truncatingIfNeeded: upper &+ (up ? 1 : 0)), "\(f)")
        }
        #expect(Float(bitPattern: UInt32(bits[values.count]) << 16).isNaN)
    }
}
