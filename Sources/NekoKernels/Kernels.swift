import CNekoKernels
import COpenBLAS

/// Reusable float32 scratch memory, grown on demand.
public final class ScratchBuffer: @unchecked Sendable {
    public private(set) var capacity = 0
    public private(set) var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)

    public init() {}
    deinit { pointer.deallocate() }

    /// At least `count` floats; the contents are undefined.
    public func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = max(count, capacity * 2)
            pointer = .allocate(capacity: capacity)
        }
        return pointer
    }
}

/// The kernels the model calls by name. No knowledge of layers here: matrices and vectors only.
public enum Kernels {
    /// Below this many tokens a weight matrix is streamed row by row (`nk_matmul_rows`);
    /// from it on, blocks of rows are converted to float32 and multiplied with `cblas_sgemm`.
    public static let gemmThreshold = 8

    /// How `linear` multiplies: chosen by batch size, or forced (tests compare the two).
    public enum Method: Sendable { case auto, rows, gemm }
    /// Elements converted per `sgemm` block: 4 MB of float32, cache-friendly and bounded.
    static let blockElements = 1 << 20

    /// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `t < tokens`, `r < W.rows`.
    /// `x` is `(tokens, ldx)` with `ldx ≥ W.cols`; `y` is `(tokens, ldy)` with `ldy ≥ W.rows`.
    public static func linear(_ x: UnsafePointer<Float>, tokens: Int, ldx: Int? = nil,
                              _ w: WeightMatrix,
                              _ y: UnsafeMutablePointer<Float>, ldy: Int? = nil,
                              pool: WorkerPool, scratch: ScratchBuffer, method: Method = .auto) {
        let ldx = ldx ?? w.cols, ldy = ldy ?? w.rows
        guard tokens > 0, w.rows > 0 else { return }
        if method == .rows || (method == .auto && tokens < gemmThreshold) {
            pool.parallelRanges(w.rows, minChunk: 16) { begin, end in
                nk_matmul_rows(w.base, w.dtype.c, w.cols, begin, end, x, tokens, ldx, y, ldy)
            }
            return
        }
        let blockRows = max(1, min(w.rows, blockElements / max(1, w.cols)))
        var r0 = 0
        while r0 < w.rows {
            let nb = min(blockRows, w.rows - r0)
            let block = w.rows(r0, count: nb)
            let b: UnsafePointer<Float>
            if block.dtype == .f32, Int(bitPattern: block.base) % 4 == 0 {
                b = block.base.assumingMemoryBound(to: Float.self)
            } else {
                let buf = scratch.reserve(nb * w.cols)
                let es = block.dtype.size
                pool.parallelRanges(nb * w.cols, minChunk: 1 << 16) { begin, end in
                    nk_to_f32(block.base + begin * es, block.dtype.c, end - begin, buf + begin)
                }
                b = UnsafePointer(buf)
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(tokens), Int32(nb), Int32(w.cols),
                        1, x, Int32(ldx), b, Int32(w.cols), 0, y + r0, Int32(ldy))
            r0 += nb
        }
    }

    /// `C = alpha · A · op(B) + beta · C` in float32, row-major (`op(B)` = Bᵀ when `transposeB`).
    /// A is (m, k), op(B) is (k, n), C is (m, n).
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

    public static func rmsnorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count: Int,
                               eps: Float, out: UnsafeMutablePointer<Float>) {
        nk_rmsnorm(x, weight, count, eps, out)
    }

    public static func softmax(_ x: UnsafeMutablePointer<Float>, _ n: Int) { nk_softmax(x, n) }

    /// `gate[i] = silu(gate[i]) · up[i]`.
    public static func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, _ n: Int) {
        nk_silu_mul(gate, up, n)
    }

    public static func rope(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>,
                            sin: UnsafePointer<Float>, headDim: Int) {
        nk_rope(x, cos, sin, headDim)
    }

    /// `out[i] = float(src[i])` for `n` elements of `dtype`.
    public static func toFloat(_ src: UnsafeRawPointer, dtype: DType, count: Int,
                               out: UnsafeMutablePointer<Float>) {
        nk_to_f32(src, dtype.c, count, out)
    }
}
