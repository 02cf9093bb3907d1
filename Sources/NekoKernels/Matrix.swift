import CNekoKernels

/// How weights are stored on disk and in memory (they are never converted at load).
public enum DType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case bf16 = "BF16"
    case f16 = "F16"

    /// Bytes per element.
    public var size: Int { self == .f32 ? 4 : 2 }

    var c: nk_dtype {
        switch self {
        case .f32: NK_F32
        case .bf16: NK_BF16
        case .f16: NK_F16
        }
    }
}

/// A row-major weight matrix `(rows, cols)` as `nn.Linear` stores it, `(out, in)`,
/// pointing into memory that someone else owns (usually a memory-mapped file).
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let dtype: DType
    public let rows: Int
    public let cols: Int

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
    }

    /// Rows `[start, start + count)` as a matrix of their own.
    public func rows(_ start: Int, count: Int) -> WeightMatrix {
        precondition(start >= 0 && count >= 0 && start + count <= rows)
        return WeightMatrix(base: base + start * cols * dtype.size, dtype: dtype, rows: count, cols: cols)
    }

    /// Row `r` converted to float32 into `out` (`cols` values).
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        nk_to_f32(base + r * cols * dtype.size, dtype.c, cols, out)
    }

    /// The whole matrix as float32 (for small tensors: norms, biases).
    public func toFloatArray() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, n in
            nk_to_f32(base, dtype.c, rows * cols, buf.baseAddress!)
            n = rows * cols
        }
    }
}
