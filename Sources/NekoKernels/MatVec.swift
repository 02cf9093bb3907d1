import CNekoKernels

/// One layer input, prepared once for every matrix that reads it: the float rows as given,
/// plus (made on first need) the BF16 kernels' even/odd copy and the int8 blocks the Q8/Q4
/// kernels read. Owns those copies; the float rows belong to the caller and must outlive the jobs.
public final class PreparedInput: @unchecked Sendable {
    public private(set) var x: UnsafePointer<Float>?
    public private(set) var rows = 0, ldx = 0, cols = 0
    private let bf16 = ScratchBuffer()          // (rows, pad32(cols)), even/odd per block of 32
    private var bf16Ready = false
    private var quantMemory: UnsafeMutableRawPointer?
    private var quantBytes = 0
    /// The int8 blocks (pointers into quantMemory), at a stable address for the C jobs.
    let qact = UnsafeMutablePointer<nk_qact>.allocate(capacity: 1)
    private var quantReady = false

    public init() {}
    deinit {
        quantMemory?.deallocate()
        qact.deallocate()
    }

    /// Points at new float rows `(rows, ldx)`, of which the first `cols` columns are the input.
    public func set(_ x: UnsafePointer<Float>, rows: Int, ldx: Int, cols: Int) {
        self.x = x
        self.rows = rows
        self.ldx = ldx
        self.cols = cols
        bf16Ready = false
        quantReady = false
    }

    /// The even/odd copy for BF16 jobs.
    func bf16Rows() -> UnsafePointer<Float> {
        let stride = Int(nk_prep_stride(Int64(cols)))
        let p = bf16.reserve(max(1, rows * stride))
        if !bf16Ready {
            nk_prep_bf16(x!, Int64(rows), Int64(ldx), Int64(cols), p)
            bf16Ready = true
        }
        return UnsafePointer(p)
    }

    /// The int8 blocks for Q8/Q4 jobs.
    func quantized() -> UnsafePointer<nk_qact> {
        if !quantReady {
            let bytes = nk_qact_bytes(Int64(rows), Int64(cols))
            if bytes > quantBytes {
                quantMemory?.deallocate()
                quantBytes = max(bytes, quantBytes * 2)
                quantMemory = .allocate(byteCount: quantBytes, alignment: 64)
            }
            nk_qact_init(qact, quantMemory, Int64(rows), Int64(cols))
            nk_quantize_act(x!, Int64(rows), Int64(ldx), Int64(cols), qact)
            quantReady = true
        }
        return UnsafePointer(qact)
    }
}

/// A list of matrix-vector jobs run in one fork/join: a phase of a layer.
public struct MatVecList {
    public private(set) var jobs: [nk_matvec] = []

    public init() {}

    public var isEmpty: Bool { jobs.isEmpty }
    public mutating func removeAll() { jobs.removeAll(keepingCapacity: true) }

    /// `out[t · ldy + r] = Σ_c W[r, c] · input[row(t), c]` for `t < count`, where `row(t)` is
    /// `inputRows[t]` (or `t`); with `up`: `silu(W·x) · (up·x)` (a fused gate/up pair).
    /// `count` defaults to the input's rows. `inputRows` must outlive the run.
    public mutating func add(_ w: WeightMatrix, up: WeightMatrix? = nil, input: PreparedInput,
                             inputRows: UnsafePointer<Int32>? = nil, count: Int? = nil,
                             out: UnsafeMutablePointer<Float>, ldy: Int) {
        precondition(input.cols == w.cols, "input has \(input.cols) columns, matrix \(w.cols)")
        if let up { precondition(up.format == w.format && up.rows == w.rows && up.cols == w.cols) }
        let n = count ?? input.rows
        guard n > 0, w.rows > 0 else { return }
        var job = nk_matvec()
        job.w = w.base
        job.w_up = up.map { $0.base }
        job.format = w.format.rawValue
        job.ntok = Int32(n)
        job.rows = Int64(w.rows)
        job.cols = Int64(w.cols)
        job.x = input.x
        job.ldx = Int64(input.ldx)
        switch w.format {
        case .bf16: job.xp = input.bf16Rows()
        case .q8, .q4: job.xq = input.quantized()
        case .f32, .f16: break
        }
        job.xrows = inputRows
        job.y = out
        job.ldy = Int64(ldy)
        jobs.append(job)
    }

    /// Bytes of weights the jobs read (a GLU job reads two matrices).
    public var weightBytes: Int {
        jobs.reduce(0) { total, job in
            let format = MatrixFormat(rawValue: job.format) ?? .bf16
            return total + format.byteCount(rows: Int(job.rows), cols: Int(job.cols)) * (job.w_up == nil ? 1 : 2)
        }
    }

    /// Runs every job (the pool splits all rows across its threads).
    public func run(_ pool: WorkerPool) {
        jobs.withUnsafeBufferPointer { pool.run($0) }
    }

    /// Runs every job on the calling thread.
    public func runSerially() {
        jobs.withUnsafeBufferPointer { nk_run_matvecs_serial($0.baseAddress, Int64($0.count)) }
    }
}
