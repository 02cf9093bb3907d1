import CNekoKernels
import COpenBLAS

/// Reusable float32 scratch memory, grown on demand (64-byte aligned).
public final class ScratchBuffer: @unchecked Sendable {
    public private(set) var capacity = 0
    public private(set) var pointer = UnsafeMutablePointer<Float>(
        UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).assumingMemoryBound(to: Float.self))

    public init() {}
    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

    /// At least `count` floats; the contents are undefined (kept when the buffer does not grow).
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            UnsafeMutableRawPointer(pointer).deallocate()
            capacity = max(count, capacity * 2)
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64)
                .assumingMemoryBound(to: Float.self)
        }
        return pointer
    }
}

/// The kernels the model calls by name. No knowledge of layers here: matrices and vectors only.
public enum Kernels {
    /// How `linear` multiplies: the row kernels through the pool (`rows`, `auto`), or, for
    /// comparison, blocks converted to float32 and multiplied by OpenBLAS `sgemm` (`gemm`).
    public enum Method: Sendable { case auto, rows, gemm }

    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`, `r < W.rows`.
    /// `x` is `(tokens, ldx)` with `ldx ≥ W.cols`; `y` is `(tokens, ldy)` with `ldy ≥ W.rows`.
    public static func linear(_ x: UnsafePointer<Float>, tokens: Int, ldx: Int? = nil,
                              _ w: WeightMatrix,
                              _ y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
                              pool: WorkerPool, scratch: ScratchBuffer, method: Method = .auto) {
        let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
        guard tokens > 0, w.rows > 0 else { return }
        if method == .gemm && !w.format.isPacked {
            sgemmLinear(x, tokens: tokens, ldx: ldx, w, y, ldy: ldy, scratch: scratch)
            return
        }
        let input = PreparedInput()
        input.set(x, rows: tokens, ldx: ldx, cols: w.cols)
        var list = MatVecList()
        list.add(w, input: input, out: y, ldy: ldy)
        list.run(pool)
    }

    /// OpenBLAS on float32 copies of the weights, 4 MB of them at a time (the reference path).
    static func sgemmLinear(_ x: UnsafePointer<Float>, tokens: Int, ldx: Int, _ w: WeightMatrix,
                            _ y: UnsafeMutablePointer<Float>, ldy: Int, scratch: ScratchBuffer) {
        let blockRows = max(1, min(w.rows, (1 << 20) / max(1, w.cols)))
        var r0 = 0
        while r0 < w.rows {
            let nb = min(blockRows, w.rows - r0)
            let buf = scratch.reserve(nb * w.cols)
            nk_to_f32(w.base + r0 * w.cols * w.dtype.size, w.dtype.c, nb * w.cols, buf)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(tokens), Int32(nb), Int32(w.cols),
                        1, x, Int32(ldx), buf, Int32(w.cols), 0, y + r0, Int32(ldy))
            r0 += nb
        }
    }

    /// `C = alpha · A · op(B) + beta · C` in float32, row-major (`op(B)` = Bᵀ when `transposeB`).
    /// A is (m, k), op(B) is (k, n), C is (m, n). Single-threaded (safe inside pool tasks).
    public static func gemm(m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        nk_dot(a, b, n)
    }

    /// `y += alpha · x`.
    public static func axpy(_ y: UnsafeMutablePointer<Float>, _ alpha: Float,
                            _ x: UnsafePointer<Float>, _ n: Int) {
        nk_axpy(y, alpha, x, n)
    }

    /// `x *= alpha`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, _ alpha: Float, _ n: Int) {
        nk_scale(x, alpha, n)
    }

    public static func rmsnorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count: Int,
                               eps: Float, out: UnsafeMutablePointer<Float>) {
        nk_rmsnorm(x, weight, count, eps, out)
    }

    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) { nk_softmax(x, n) }

    /// log Σ exp(x[i]) over `n ≥ 1` values (the largest subtracted first).
    public static func logSumExp(_ x: UnsafePointer<Float>, _ n: Int) -> Double { nk_logsumexp(x, n) }

    /// `gate[i] = silu(gate[i]) · up[i]`.
    public static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        nk_silu_mul(gate, up, n)
    }

    public static func rope(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>,
                            sin: UnsafePointer<Float>, headDim: Int) {
        nk_rope(x, cos, sin, headDim)
    }

    /// Positions one block of decode attention covers: `scores` needs group × this many floats.
    public static let attendBlock = Int(NK_ATTEND_BLOCK)

    /// Decode attention of `group` query heads `q` (group, headDim) sharing one KV head whose
    /// `count` cached rows are `keys`/`values` (count, headDim) of `dtype` (f32, f16 or bf16):
    /// `out` (group, headDim) = softmax(q·kᵀ·scale)·v, through `scores` (group × `attendBlock`
    /// floats of scratch), with an online softmax over blocks of positions.
    public static func attendDecode(q: UnsafePointer<Float>, group: Int, headDim: Int,
                                    keys: UnsafeRawPointer, values: UnsafeRawPointer, dtype: DType, count: Int,
                                    scale: Float, scores: UnsafeMutablePointer<Float>,
                                    out: UnsafeMutablePointer<Float>) {
        nk_attend_decode(q, Int32(group), Int32(headDim), keys, values, dtype.c, Int64(count), scale, scores, out)
    }

    /// One step of an online softmax (flash attention's): `s[0..<n]` become e^(s − m') with m'
    /// the larger of `m` and their maximum; `l` becomes l·e^(m − m') + Σ, `m` becomes m'.
    /// Returns e^(m − m'): the factor for the output summed so far (0 when m was −∞).
    public static func softmaxFold(_ s: UnsafeMutablePointer<Float>, _ n: Int, max m: inout Float, sum l: inout Float) -> Float {
        nk_softmax_fold(s, Int64(n), &m, &l)
    }

    /// `out[i] = half(src[i])` (IEEE half bit patterns, round to nearest even).
    public static func toHalf(_ src: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<UInt16>) {
        nk_f32_to_f16_array(src, count, out)
    }

    /// `out[i] = bfloat16(src[i])` (bit patterns, round to nearest even).
    public static func toBFloat16(_ src: UnsafePointer<Float>, count: Int, out: UnsafeMutablePointer<UInt16>) {
        nk_f32_to_bf16_array(src, count, out)
    }

    /// `out[i] = float(src[i])` for `n` elements of `dtype`.
    public static func toFloat(_ src: UnsafeRawPointer, dtype: DType, count: Int,
                               out: UnsafeMutablePointer<Float>) {
        nk_to_f32(src, dtype.c, count, out)
    }
}
