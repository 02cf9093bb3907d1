import Foundation
import NekoKernels

/// Which positions of a forward pass need logits.
public enum LogitsRequest: Sendable {
    case none
    /// The last position only (generation).
    case last
    /// Every position (scoring).
    case all
}

/// Threads and scratch memory for forward passes; one per thread that runs the model.
public final class ForwardContext: @unchecked Sendable {
    public let pool: WorkerPool
    /// Called with a debug name, the layer (-1 for none) and the activations, when set:
    /// dump any intermediate to compare with the reference (llama.cpp's `cb(cur, name, il)`).
    public var trace: ((String, Int, UnsafeBufferPointer<Float>) -> Void)?

    let convert = ScratchBuffer()      // weight blocks converted to float32 for sgemm
    let x = ScratchBuffer(), h = ScratchBuffer(), y = ScratchBuffer()
    let q = ScratchBuffer(), attn = ScratchBuffer(), scores = ScratchBuffer()
    let rope = ScratchBuffer(), router = ScratchBuffer()
    let gathered = ScratchBuffer(), gate = ScratchBuffer(), up = ScratchBuffer(), out = ScratchBuffer()

    public init(threads: Int) { pool = WorkerPool(threads: threads) }

    func dump(_ name: String, _ layer: Int, _ p: UnsafePointer<Float>, _ count: Int) {
        trace?(name, layer, UnsafeBufferPointer(start: p, count: count))
    }
}

/// A NekoMind checkpoint, mapped and ready to run. The forward pass below reads like SPEC.md.
public final class NekoMindModel: @unchecked Sendable {
    public let config: ModelConfig
    public let directory: String
    /// The weight files, kept mapped for the model's lifetime.
    public let files: [SafetensorsFile]
    /// Things the loader decided that a user may want to know (printed to stderr by the CLI).
    public let notices: [String]
    /// Parameters stored (the embedding once when tied) and used per token (top-k experts).
    public let parameterCount: Int
    public let activeParameterCount: Int
    /// The storage dtype of most weights (by bytes).
    public let dtype: DType
    let weights: ModelWeights
    /// RoPE frequencies θ^(−2i/headDim), in double precision (SPEC.md), computed once.
    let inverseFrequencies: [Double]

    public var bytesOnDisk: Int { files.reduce(0) { $0 + $1.byteCount } }
    public var hasTiedHead: Bool { weights.tied }

    /// Loads `config.json` and the safetensors weights of a Hugging Face model directory.
    public static func load(directory: String) throws -> NekoMindModel {
        var directory = directory
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        let config = try ModelConfig.load(path: directory + "/config.json")
        let files = try WeightFiles.open(directory: directory)
        var store = try TensorStore(directory: directory, files: files)
        var notices: [String] = []
        let weights = try ModelWeights.load(config: config, store: &store, notices: &notices)
        return NekoMindModel(config: config, directory: directory, files: files, weights: weights,
                             notices: notices, parameters: store.usedElements,
                             dtype: store.dominantDtype)
    }

    init(config: ModelConfig, directory: String, files: [SafetensorsFile], weights: ModelWeights,
         notices: [String], parameters: Int, dtype: DType) {
        self.config = config
        self.directory = directory
        self.files = files
        self.weights = weights
        self.notices = notices
        self.dtype = dtype
        inverseFrequencies = (0..<config.headDim / 2).map { pow(config.ropeTheta, -2.0 * Double($0) / Double(config.headDim)) }
        parameterCount = parameters
        var inactive = 0
        for layer in weights.layers {
            if case let .moe(moe) = layer.feedForward, let e = moe.experts.first {
                let perExpert = e.gate.rows * e.gate.cols + e.up.rows * e.up.cols + e.down.rows * e.down.cols
                inactive += (moe.experts.count - config.numExpertsPerTok) * perExpert
            }
        }
        activeParameterCount = parameters - inactive
    }

    /// A routing record shaped for this model.
    public func makeRoutingRecord() -> RoutingRecord {
        RoutingRecord(moeLayers: config.moeLayers, expertsPerToken: config.numExpertsPerTok)
    }

    /// A KV cache for `capacity` positions (default: the configured context).
    public func makeCache(capacity: Int? = nil) throws -> KVCache {
        try KVCache(config: config, capacity: min(capacity ?? config.maxPositionEmbeddings,
                                               config.maxPositionEmbeddings))
    }

    /// Throws unless every id is inside the vocabulary.
    public func check(tokens: [Int]) throws {
        for (i, id) in tokens.enumerated() where id < 0 || id >= config.vocabSize {
            throw ModelError.input("token id \(id) at position \(i) is outside the vocabulary (vocab_size \(config.vocabSize))")
        }
    }

    // MARK: - forward

    /// Runs `tokens` at positions `cache.length ..< cache.length + tokens.count` as one batch,
    /// appends their keys and values to `cache`, records routing, and returns logits
    /// `(rows, vocab)` for the requested positions.
    public func forward(_ tokens: [Int], cache: KVCache, logits request: LogitsRequest = .last,
                        routing: RoutingRecord? = nil, context ctx: ForwardContext) throws -> [Float] {
        let n = tokens.count, hidden = config.hiddenSize
        guard n > 0 else { return [] }
        try check(tokens: tokens)
        let start = cache.length
        guard start + n <= cache.capacity else {
            throw ModelError.input("context window full: \(start) cached + \(n) new tokens > context size \(cache.capacity)")
        }
        let x = ctx.x.reserve(n * hidden)  // (n, hidden): the residual stream
        for (t, id) in tokens.enumerated() { weights.embed.row(id, into: x + t * hidden) }
        ctx.dump("embed", -1, x, n * hidden)
        let rope = ropeTable(positions: start..<start + n, ctx: ctx)
        let firstRouted = routing?.append(count: n) ?? 0
        var moeSlot = 0
        for (l, layer) in weights.layers.enumerated() {
            attention(layer: l, layer.attention, norm: layer.inputNorm, x: x, count: n, start: start,
                      rope: rope, cache: cache, ctx: ctx)
            let h = ctx.h.reserve(n * hidden)
            rmsnorm(x, layer.postAttentionNorm, rows: n, out: h)
            let y = ctx.y.reserve(n * hidden)
            switch layer.feedForward {
            case let .dense(mlp):
                self.mlp(h, count: n, mlp, out: y, ctx: ctx)
            case let .moe(moe):
                self.moe(h, count: n, moe, out: y, slot: moeSlot, routing: routing,
                         firstToken: firstRouted, ctx: ctx)
                moeSlot += 1
            }
            Kernels.axpy(x, 1, y, n * hidden)
            ctx.dump("layer_out", l, x, n * hidden)
        }
        cache.length = start + n

        let rows: Range<Int>
        switch request {
        case .none: return []
        case .last: rows = n - 1..<n
        case .all: rows = 0..<n
        }
        let h = ctx.h.reserve(rows.count * hidden)
        rmsnorm(x + rows.lowerBound * hidden, weights.norm, rows: rows.count, out: h)
        var logits = [Float](repeating: 0, count: rows.count * config.vocabSize)
        logits.withUnsafeMutableBufferPointer { out in
            Kernels.linear(h, tokens: rows.count, weights.lmHead, out.baseAddress!,
                           pool: ctx.pool, scratch: ctx.convert)
        }
        return logits
    }

    /// `out[t] = rmsnorm(x[t], w)` for `rows` rows of `hidden`.
    func rmsnorm(_ x: UnsafePointer<Float>, _ w: [Float], rows: Int, out: UnsafeMutablePointer<Float>) {
        let hidden = config.hiddenSize, eps = Float(config.rmsNormEps)
        w.withUnsafeBufferPointer { wp in
            for t in 0..<rows {
                Kernels.rmsnorm(x + t * hidden, weight: wp.baseAddress!, count: hidden, eps: eps, out: out + t * hidden)
            }
        }
    }

    /// cos and sin, `(positions, headDim / 2)` each, angles in double precision (SPEC.md).
    func ropeTable(positions: Range<Int>, ctx: ForwardContext) -> (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = config.headDim / 2, n = positions.count
        let table = ctx.rope.reserve(2 * n * half)
        for (t, pos) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(pos) * inverseFrequencies[i]
                table[t * half + i] = Float(Foundation.cos(angle))
                table[(n + t) * half + i] = Float(Foundation.sin(angle))
            }
        }
        return (UnsafePointer(table), UnsafePointer(table + n * half))
    }

    /// x += o_proj(softmax(q·kᵀ/√d + mask)·v), with q, k from the normed x, QK-norm and RoPE.
    func attention(layer l: Int, _ w: AttentionWeights, norm: [Float], x: UnsafeMutablePointer<Float>,
                   count n: Int, start: Int, rope: (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>),
                   cache: KVCache, ctx: ForwardContext) {
        let hidden = config.hiddenSize, hd = config.headDim, half = hd / 2
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, eps = Float(config.rmsNormEps)
        let h = ctx.h.reserve(n * hidden)
        rmsnorm(x, norm, rows: n, out: h)
        ctx.dump("attn_norm", l, h, n * hidden)

        let q = ctx.q.reserve(n * qDim)                 // (n, heads * headDim)
        let k = cache.keys(l) + start * kvDim           // (n, kvHeads * headDim), in place in the cache
        let v = cache.values(l) + start * kvDim
        Kernels.linear(h, tokens: n, w.q, q, pool: ctx.pool, scratch: ctx.convert)
        Kernels.linear(h, tokens: n, w.k, k, pool: ctx.pool, scratch: ctx.convert)
        Kernels.linear(h, tokens: n, w.v, v, pool: ctx.pool, scratch: ctx.convert)
        for (bias, out, width) in [(w.qBias, q, qDim), (w.kBias, k, kvDim), (w.vBias, v, kvDim)] {
            guard let bias else { continue }
            bias.withUnsafeBufferPointer { b in
                for t in 0..<n { Kernels.axpy(out + t * width, 1, b.baseAddress!, width) }
            }
        }
        for (normWeights, out, count) in [(w.qNorm, q, heads), (w.kNorm, k, kvHeads)] {
            for t in 0..<n {
                for head in 0..<count {
                    let vec = out + t * count * hd + head * hd
                    if let normWeights {
                        normWeights.withUnsafeBufferPointer { nw in
                            Kernels.rmsnorm(vec, weight: nw.baseAddress!, count: hd, eps: eps, out: vec)
                        }
                    }
                    Kernels.rope(vec, cos: rope.cos + t * half, sin: rope.sin + t * half, headDim: hd)
                }
            }
        }
        ctx.dump("q", l, q, n * qDim)
        ctx.dump("k", l, k, n * kvDim)

        let keys = UnsafePointer(cache.keys(l)), values = UnsafePointer(cache.values(l))
        let total = start + n, group = heads / kvHeads
        let scale = 1 / Float(hd).squareRoot()
        let out = ctx.attn.reserve(n * qDim)            // (n, heads * headDim)
        if n < Kernels.gemmThreshold {
            // Decode and short chunks: one (token, head) pair per task.
            let scores = ctx.scores.reserve(n * heads * total)
            ctx.pool.parallelRanges(n * heads) { begin, end in
                for task in begin..<end {
                    let t = task / heads, head = task % heads, kvHead = head / group
                    let visible = start + t + 1
                    let s = scores + task * total
                    let qv = q + t * qDim + head * hd
                    for p in 0..<visible { s[p] = Kernels.dot(qv, keys + p * kvDim + kvHead * hd, hd) * scale }
                    Kernels.softmax(s, visible)
                    let o = out + t * qDim + head * hd
                    o.initialize(repeating: 0, count: hd)
                    for p in 0..<visible { Kernels.axpy(o, s[p], values + p * kvDim + kvHead * hd, hd) }
                }
            }
        } else {
            // Prefill: per head, S = q·kᵀ (n, total) and out = softmax(S)·v through sgemm.
            let s = ctx.scores.reserve(n * total)
            for head in 0..<heads {
                let kvHead = head / group
                Kernels.gemm(m: n, n: total, k: hd, alpha: scale, a: q + head * hd, lda: qDim,
                             b: keys + kvHead * hd, ldb: kvDim, transposeB: true, c: s, ldc: total)
                for t in 0..<n {
                    let visible = start + t + 1, row = s + t * total
                    Kernels.softmax(row, visible)
                    (row + visible).initialize(repeating: 0, count: total - visible)
                }
                Kernels.gemm(m: n, n: hd, k: total, a: s, lda: total, b: values + kvHead * hd, ldb: kvDim,
                             transposeB: false, c: out + head * hd, ldc: qDim)
            }
        }
        ctx.dump("attn", l, out, n * qDim)
        let projected = ctx.y.reserve(n * hidden)
        Kernels.linear(out, tokens: n, w.o, projected, pool: ctx.pool, scratch: ctx.convert)
        Kernels.axpy(x, 1, projected, n * hidden)
    }

    /// `out = down(silu(gate(h)) * up(h))` for `count` rows of `h`.
    func mlp(_ h: UnsafePointer<Float>, count n: Int, _ w: MLPWeights, out: UnsafeMutablePointer<Float>,
             ctx: ForwardContext) {
        let inter = w.gate.rows
        let gate = ctx.gate.reserve(n * inter), up = ctx.up.reserve(n * inter)
        Kernels.linear(h, tokens: n, w.gate, gate, pool: ctx.pool, scratch: ctx.convert)
        Kernels.linear(h, tokens: n, w.up, up, pool: ctx.pool, scratch: ctx.convert)
        Kernels.siluMul(gate, up, n * inter)
        Kernels.linear(gate, tokens: n, w.down, out, pool: ctx.pool, scratch: ctx.convert)
    }

    /// Sparse MoE: router softmax → top-k (ties: lower index) → optional renormalisation →
    /// weighted experts (tokens grouped by expert) + sigmoid-gated shared expert.
    func moe(_ h: UnsafePointer<Float>, count n: Int, _ w: MoEWeights, out y: UnsafeMutablePointer<Float>,
             slot: Int, routing: RoutingRecord?, firstToken: Int, ctx: ForwardContext) {
        let hidden = config.hiddenSize, experts = w.experts.count, k = config.numExpertsPerTok
        let probs = ctx.router.reserve(n * experts)     // (n, experts)
        Kernels.linear(h, tokens: n, w.router, probs, pool: ctx.pool, scratch: ctx.convert)
        var chosen = [Int32](repeating: 0, count: n * k)   // (n, k)
        var chosenWeights = [Float](repeating: 0, count: n * k)
        var byExpert = [[(token: Int, weight: Float)]](repeating: [], count: experts)
        for t in 0..<n {
            let p = probs + t * experts
            Kernels.softmax(p, experts)
            var sum: Float = 0
            for j in 0..<k {
                var best = -1
                for e in 0..<experts where !chosen[t * k..<t * k + j].contains(Int32(e)) {
                    if best < 0 || p[e] > p[best] { best = e }  // strict: the lower index wins ties
                }
                chosen[t * k + j] = Int32(best)
                chosenWeights[t * k + j] = p[best]
                sum += p[best]
            }
            if config.normTopkProb {
                for j in 0..<k { chosenWeights[t * k + j] /= sum }
            }
            for j in 0..<k { byExpert[Int(chosen[t * k + j])].append((t, chosenWeights[t * k + j])) }
            if let routing {
                chosen.withUnsafeBufferPointer { c in
                    chosenWeights.withUnsafeBufferPointer { cw in
                        routing.set(token: firstToken + t, slot: slot,
                                    experts: c.baseAddress! + t * k, weights: cw.baseAddress! + t * k)
                    }
                }
            }
        }
        y.initialize(repeating: 0, count: n * hidden)
        for (e, assigned) in byExpert.enumerated() where !assigned.isEmpty {
            let m = assigned.count
            let input = ctx.gathered.reserve(m * hidden)   // (m, hidden): the tokens routed to e
            for (j, a) in assigned.enumerated() {
                (input + j * hidden).update(from: h + a.token * hidden, count: hidden)
            }
            let result = ctx.out.reserve(m * hidden)
            mlp(input, count: m, w.experts[e], out: result, ctx: ctx)
            for (j, a) in assigned.enumerated() {
                Kernels.axpy(y + a.token * hidden, a.weight, result + j * hidden, hidden)
            }
        }
        if let shared = w.shared, let sharedGate = w.sharedGate {
            let result = ctx.out.reserve(n * hidden)
            mlp(h, count: n, shared, out: result, ctx: ctx)
            sharedGate.withUnsafeBufferPointer { g in
                for t in 0..<n {
                    let gate = 1 / (1 + exp(-Kernels.dot(h + t * hidden, g.baseAddress!, hidden)))
                    Kernels.axpy(y + t * hidden, gate, result + t * hidden, hidden)
                }
            }
        }
    }
}
