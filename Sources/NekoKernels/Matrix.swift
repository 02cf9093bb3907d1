import CNekoKernels

/// How weights are stored on disk (safetensors dtypes nekochat computes with).
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

    /// The matrix format of weights used as stored.
    public var format: MatrixFormat {
        switch self {
        case .f32: .f32
        case .bf16: .bf16
        case .f16: .f16
        }
    }
}

/// What a matrix's bytes hold: a stored dtype, row-major (used in place from the file), or a
/// quantised format packed at load in 16-row groups (see nk_quant.h).
public enum MatrixFormat: Int32, Sendable, CaseIterable {
    case f32 = 0, bf16 = 1, f16 = 2
    /// int8 in blocks of 32 with a half-precision scale (34 bytes per 32 weights).
    case q8 = 3
    /// 4-bit codes in blocks of 32 with a half-precision scale and minimum (20 bytes per 32).
    case q4 = 4

    public var isPacked: Bool { self == .q8 || self == .q4 }
    var c: nk_format { nk_format(UInt32(rawValue)) }

    /// Bytes a rows × cols matrix takes in this format.
    public func byteCount(rows: Int, cols: Int) -> Int {
        switch self {
        case .f32: rows * cols * 4
        case .bf16, .f16: rows * cols * 2
        case .q8, .q4: Int(nk_packed_bytes(c, Int64(rows), Int64(cols)))
        }
    }
}

/// A weight matrix `(rows, cols)` as `nn.Linear` stores it, `(out, in)`, pointing into memory
/// that someone else owns (a memory-mapped weight file or quantisation cache).
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    /// The dtype of the stored weights (for packed matrices: the dtype they were quantised from).
    public let dtype: DType
    public let format: MatrixFormat
    public let rows: Int
    public let cols: Int

    /// A stored (row-major) matrix.
    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        self.base = base
        self.dtype = dtype
        self.format = dtype.format
        self.rows = rows
        self.cols = cols
    }

    /// A packed (quantised) matrix.
    public init(packed base: UnsafeRawPointer, format: MatrixFormat, rows: Int, cols: Int, source: DType) {
        precondition(format.isPacked)
        self.base = base
        self.dtype = source
        self.format = format
        self.rows = rows
        self.cols = cols
    }

    /// Bytes of the matrix in its format.
    public var byteCount: Int { format.byteCount(rows: rows, cols: cols) }

    /// Rows `[start, start + count)` as a matrix of their own (stored formats only).
    public func rows(_ start: Int, count: Int) -> WeightMatrix {
        precondition(!format.isPacked && start >= 0 && count >= 0 && start + count <= rows)
        return WeightMatrix(base: base + start * cols * dtype.size, dtype: dtype, rows: count, cols: cols)
    }

    /// Row `r` as float32 into `out` (`cols` values), dequantised when packed.
    public func row(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        if format.isPacked {
            nk_unpack_row(format.c, base, Int64(rows), Int64(cols), Int64(r), out)
        } else {
            nk_to_f32(base + r * cols * dtype.size, dtype.c, cols, out)
        }
    }

    /// The whole matrix as float32 (for small tensors: norms, biases).
    public func toFloatArray() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, n in
            for r in 0..<rows { row(r, into: buf.baseAddress! + r * cols) }
            n = rows * cols
        }
    }
}

extension WeightMatrix {
    /// Groups of 16 rows in a packed matrix of this shape.
    public var groups: Int { (rows + 15) / 16 }

    /// Quantises the 16-row groups `groups` of this stored matrix into `dst`, the memory of the
    /// whole packed matrix in `format` (disjoint ranges may run on different threads).
    public func pack(_ format: MatrixFormat, groups: Range<Int>, into dst: UnsafeMutableRawPointer) {
        precondition(format.isPacked && !self.format.isPacked)
        nk_pack(format.c, base, dtype.c, Int64(rows), Int64(cols), Int64(groups.lowerBound),
                Int64(groups.upperBound), dst)
    }
}
