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

/// A checkpoint of one of the supported families (`ModelFamily`), mapped and ready to run. The
/// forward pass (this file, Attention.swift, FeedForward.swift) is one for every family and reads
/// like the specification in Sources/NekoModel/README.md; a family changes it only through the
/// switches of its `ModelConfig`.
public final class LanguageModel: @unchecked Sendable {
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
    /// The weights in use: as stored (`bf16`), or quantised at load.
    public let weightFormat: WeightFormat
    /// The quantised weights' cache (nil for `bf16`), kept mapped for the model's lifetime.
    public let weightCache: WeightCacheFile?
    let weights: ModelWeights
    /// RoPE frequencies θ^(−2i/headDim), in double precision, computed once.
    let inverseFrequencies: [Double]
    /// Per layer: its sliding window in positions, or 0 for full attention.
    let layerWindows: [Int]

    public var bytesOnDisk: Int { files.reduce(0) { $0 + $1.byteCount } }
    public var hasTiedHead: Bool { weights.tied }
    /// Whether the loaded weights have QK-norm (the family's rule, or NekoMind's tensors, decide).
    public var hasQKNorm: Bool { weights.layers.first?.attention.qNorm != nil }
    /// The shared expert of the MoE layers as loaded: "gated", "ungated" or "none".
    public var sharedExpert: String {
        for layer in weights.layers {
            if case let .moe(m) = layer.feedForward { return m.shared == nil ? "none" : m.sharedGate == nil ? "ungated" : "gated" }
        }
        return "none"
    }
    public var hasSharedExpert: Bool { sharedExpert != "none" }

    /// Throws unless `interventions` fit this model (`Interventions.check`).
    public func check(_ interventions: Interventions) throws {
        if interventions.isEmpty { return }
        try interventions.check(config, hasSharedExpert: hasSharedExpert)
    }

    /// Loads `config.json` and the safetensors weights of a Hugging Face model directory, as stored.
    public static func load(directory: String) throws -> LanguageModel {
        try load(directory: directory, weights: .bf16)
    }

    /// Loads a model directory with the weights in `weights`: as stored (`bf16`), or quantised to
    /// `q8`/`q4` — read from the cache when a valid one exists, else quantised now (calling
    /// `progress`) and cached as `cache` says. Quantising uses `threads` threads.
    public static func load(directory: String, weights format: WeightFormat,
                            cache: WeightCachePolicy = .automatic, threads: Int? = nil,
                            progress: ((QuantizationProgress) -> Void)? = nil) throws -> LanguageModel {
        var directory = directory
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        try checkModelFolder(directory)
        let config = try ModelConfig.load(path: directory + "/config.json")
        let files = try WeightFiles.open(directory: directory)
        var store = try TensorStore(directory: directory, files: files)
        var notices: [String] = []
        var weights = try ModelWeights.load(config: config, store: &store, notices: &notices)
        var cacheFile: WeightCacheFile?
        if format != .bf16 {
            let quantized = try Quantizer(directory: directory, files: files, format: format, policy: cache,
                                          threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
                                          progress: progress).run(weights)
            weights = quantized.weights
            cacheFile = quantized.file
            notices += quantized.notices
        }
        return LanguageModel(config: config, directory: directory, files: files, weights: weights,
                             notices: notices, parameters: store.usedElements,
                             dtype: store.dominantDtype, format: format, cache: cacheFile)
    }

    /// Says what is wrong with a path that is not a model folder: missing, a file, or a folder
    /// without config.json (the three read alike as "cannot read config.json" otherwise).
    static func checkModelFolder(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ModelError.io(path: directory, message: "no such folder (a model is a folder with config.json and *.safetensors)")
        }
        guard isDirectory.boolValue else {
            throw ModelError.io(path: directory, message: "is a file, not a model folder (give the folder that holds config.json and *.safetensors)")
        }
        guard FileManager.default.fileExists(atPath: directory + "/config.json") else {
            throw ModelError.io(path: directory, message: "is not a model folder: it has no config.json")
        }
    }

    init(config: ModelConfig, directory: String, files: [SafetensorsFile], weights: ModelWeights,
         notices: [String], parameters: Int, dtype: DType, format: WeightFormat, cache: WeightCacheFile?) {
        self.config = config
        self.directory = directory
        self.files = files
        self.weights = weights
        self.notices = notices
        self.dtype = dtype
        self.weightFormat = format
        self.weightCache = cache
        layerWindows = (0..<config.numHiddenLayers).map { config.slidingLayers.contains($0) ? config.slidingWindow ?? 0 : 0 }
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

    /// A routing record shaped for this model (under `interventions`, which may change how many
    /// experts each token gets).
    public func makeRoutingRecord(_ interventions: Interventions = .none) -> RoutingRecord {
        RoutingRecord(moeLayers: config.moeLayers, expertsPerToken: interventions.expertsPerToken(config))
    }

    /// A KV cache for `capacity` positions (default: the configured context) holding keys and
    /// values in `precision` (float32, the exact default; each front end picks its own).
    /// A capacity past `max_position_embeddings` is allowed (RoPE goes on; the model was not trained
    /// there: `contextWarning` says so), up to what memory holds.
    public func makeCache(capacity: Int? = nil, precision: KVPrecision = .float32) throws -> KVCache {
        try KVCache(config: config, capacity: capacity ?? config.maxPositionEmbeddings, precision: precision)
    }

    /// What to tell a user whose context of `size` tokens is past what the model was trained for.
    public func contextWarning(_ size: Int) -> String? {
        guard size > config.maxPositionEmbeddings else { return nil }
        return "the context is \(size) tokens, past the \(config.maxPositionEmbeddings) this model was trained for "
            + "(max_position_embeddings): text past \(config.maxPositionEmbeddings) tokens may be poor"
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
    /// `(rows, vocab)` for the requested positions. The MoE layers route under `interventions`.
    public func forward(_ tokens: [Int], cache: KVCache, logits request: LogitsRequest = .last,
                        routing: RoutingRecord? = nil, interventions: Interventions = .none,
                        context ctx: ForwardContext) throws -> [Float] {
        let n = tokens.count
        guard n > 0 else { return [] }
        try check(tokens: tokens)
        try check(interventions, routing: routing.map { [$0] } ?? [])
        guard cache.length + n <= cache.capacity else {
            throw ModelError.input("context window full: \(cache.length) cached + \(n) new tokens > context size \(cache.capacity)")
        }
        let first = routing?.append(count: n) ?? 0
        let segment = Segment(cache: cache, start: cache.length, rows: 0..<n, routing: routing, firstRouted: first)
        let rows: [Int]
        switch request {
        case .none: rows = []
        case .last: rows = [n - 1]
        case .all: rows = Array(0..<n)
        }
        return run(tokens, segments: [segment], logitRows: rows, interventions: interventions, ctx: ctx)
    }

    /// Runs the pass that wrote `tape` again from MoE layer `layer`'s feed-forward block onwards
    /// (its residual stream taken from the tape), with `interventions` applied at that layer
    /// only; returns the logits of every position. What is below the layer cannot change, so
    /// an ablation of one layer costs the layers from it up. The tape's tokens are `tokens`.
    public func resume(_ tokens: [Int], from layer: Int, tape: ResidualTape, interventions: Interventions,
                       kvPrecision: KVPrecision = .float32, context ctx: ForwardContext) throws -> [Float] {
        guard let residual = tape.layers[layer], tape.tokens == tokens.count else {
            throw ModelError.input("the tape holds no residual stream of \(tokens.count) tokens at layer \(layer)")
        }
        try check(interventions)
        let cache = try makeCache(capacity: tokens.count, precision: kvPrecision)
        let segment = Segment(cache: cache, start: 0, rows: 0..<tokens.count, routing: nil, firstRouted: 0)
        let saved = (ctx.tape, ctx.saliency)
        ctx.tape = nil
        ctx.saliency = nil
        defer { (ctx.tape, ctx.saliency) = saved }
        return residual.withUnsafeBufferPointer { r in
            run(tokens, segments: [segment], logitRows: Array(tokens.indices), interventions: .none,
                resume: ResumePoint(layer: layer, residual: r.baseAddress!, interventions: interventions), ctx: ctx)
        }
    }

    /// Where a resumed pass starts: at `layer`'s feed-forward block, from `residual`, with
    /// `interventions` at that layer alone.
    struct ResumePoint {
        let layer: Int
        let residual: UnsafePointer<Float>
        let interventions: Interventions
    }

    /// Throws unless `interventions` fit the model and every routing record has room for the
    /// experts chosen per token under them.
    func check(_ interventions: Interventions, routing: [RoutingRecord?]) throws {
        try check(interventions)
        let k = interventions.expertsPerToken(config)
        for case let record? in routing where record.expertsPerToken != k {
            throw ModelError.input("a routing record for \(record.expertsPerToken) experts per token cannot record routing with \(k)")
        }
    }

    /// One decode step for each of N independent sequences in ONE forward pass: `tokens[i]` runs
    /// at position `caches[i].length` of `caches[i]` (appended there) and records its routing in
    /// `routing[i]`. The weight-streaming products see N rows; attention is per sequence.
    /// Returns each sequence's logits (vocab values each).
    /// All sequences route under the same `interventions`.
    public func decode(tokens: [Int], caches: [KVCache], routing: [RoutingRecord?],
                       interventions: Interventions = .none, context ctx: ForwardContext) throws -> [[Float]] {
        guard tokens.count == caches.count, routing.isEmpty || routing.count == tokens.count else {
            throw ModelError.input("decode: \(tokens.count) tokens, \(caches.count) caches and \(routing.count) routing records must be as many")
        }
        guard !tokens.isEmpty else { return [] }
        try check(tokens: tokens)
        try check(interventions, routing: routing)
        var seen = Set<ObjectIdentifier>()
        for (i, cache) in caches.enumerated() {
            guard seen.insert(ObjectIdentifier(cache)).inserted else {
                throw ModelError.input("decode: sequence \(i) uses the same KV cache as an earlier one")
            }
            guard cache.length < cache.capacity else {
                throw ModelError.input("context window full for sequence \(i): \(cache.length) cached + 1 new token > context size \(cache.capacity)")
            }
        }
        let segments = caches.enumerated().map { i, cache in
            let record = routing.isEmpty ? nil : routing[i]
            return Segment(cache: cache, start: cache.length, rows: i..<i + 1, routing: record,
                           firstRouted: record?.append(count: 1) ?? 0)
        }
        let logits = run(tokens, segments: segments, logitRows: Array(tokens.indices), interventions: interventions, ctx: ctx)
        let vocab = config.vocabSize
        return tokens.indices.map { Array(logits[$0 * vocab..<($0 + 1) * vocab]) }
    }

    /// The layers over a batch of rows (`tokens[i]` is row i), per Sources/NekoModel/README.md; returns logits
    /// `(logitRows.count, vocab)`.
    func run(_ tokens: [Int], segments: [Segment], logitRows: [Int], interventions: Interventions,
             resume: ResumePoint? = nil, ctx: ForwardContext) -> [Float] {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { ctx.profile?.totalSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        let n = tokens.count, hidden = config.hiddenSize
        let x = ctx.x.reserve(n * hidden)  // (n, hidden): the residual stream
        for (t, id) in tokens.enumerated() { weights.embed.row(id, into: x + t * hidden) }
        if config.embeddingMultiplier != 1 { Kernels.scale(x, Float(config.embeddingMultiplier), n * hidden) }
        ctx.dump("embed", -1, x, n * hidden)
        var positions = [Int](repeating: 0, count: n)
        for s in segments { for r in s.rows { positions[r] = s.start + r - s.rows.lowerBound } }
        let rope = ropeTable(positions: positions, ctx: ctx)
        var moeSlot = 0
        for (l, layer) in weights.layers.enumerated() {
            if let resume, l <= resume.layer {
                if l < resume.layer {
                    if case .moe = layer.feedForward { moeSlot += 1 }
                    continue
                }
                x.update(from: resume.residual, count: n * hidden)
            } else {
                attention(layer: l, layer.attention, norm: layer.inputNorm, x: x, count: n,
                          segments: segments, rope: rope, ctx: ctx)
            }
            if let tape = ctx.tape, case .moe = layer.feedForward { tape.store(layer: l, x, rows: n, hidden: hidden) }
            let h = ctx.h.reserve(n * hidden)     // (n, hidden): the feed-forward input from here on
            rmsnorm(x, layer.postAttentionNorm, rows: n, out: h)
            ctx.dump("ffn_norm", l, h, n * hidden)
            ctx.hInput.set(h, rows: n, ldx: hidden, cols: hidden)
            let y = ctx.proj.reserve(n * hidden)  // (n, hidden): the feed-forward output
            switch layer.feedForward {
            case let .dense(mlp):
                denseMLP(mlp, count: n, out: y, ctx: ctx)
            case let .moe(moe):
                let here = resume.map { $0.layer == l ? $0.interventions : .none } ?? interventions
                self.moe(moe, input: h, layer: l, slot: moeSlot, count: n, segments: segments,
                         interventions: here, out: y, ctx: ctx)
                moeSlot += 1
            }
            Kernels.axpy(x, Float(config.residualMultiplier), y, n * hidden)
            ctx.dump("layer_out", l, x, n * hidden)
        }
        for s in segments { s.cache.length = s.start + s.rows.count }
        guard !logitRows.isEmpty else { return [] }

        let m = logitRows.count
        let normed = ctx.logitRows.reserve(m * hidden)   // (m, hidden)
        for (i, r) in logitRows.enumerated() { rmsnorm(x + r * hidden, weights.norm, rows: 1, out: normed + i * hidden) }
        ctx.dump("final_norm", -1, normed, m * hidden)
        ctx.headInput.set(normed, rows: m, ldx: hidden, cols: hidden)
        // Every value is written by the head's jobs: no need to zero the array first.
        return [Float](unsafeUninitializedCapacity: m * config.vocabSize) { out, count in
            ctx.jobs.add(weights.lmHead, input: ctx.headInput, out: out.baseAddress!, ldy: config.vocabSize)
            ctx.runPhase("lm_head")
            count = m * config.vocabSize
            if config.logitsScaling != 1 { Kernels.scale(out.baseAddress!, Float(1 / config.logitsScaling), count) }
        }
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

    /// cos and sin, `(n, headDim / 2)` each, angles in double precision (Sources/NekoModel/README.md).
    func ropeTable(positions: [Int], ctx: ForwardContext) -> (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
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
}
