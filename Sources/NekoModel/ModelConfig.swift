import Foundation

/// `config.json` of a NekoMind (or Qwen2-MoE / Qwen3-MoE) checkpoint, parsed once.
/// Field defaults are SPEC.md's; alternative spellings found in real files are read too.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var intermediateSize: Int?
    public var moeIntermediateSize: Int?
    public var sharedExpertIntermediateSize: Int?
    public var numExperts: Int
    public var numExpertsPerTok: Int
    public var normTopkProb: Bool
    public var mlpOnlyLayers: [Int]
    public var firstKDenseReplace: Int
    public var decoderSparseStep: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var maxPositionEmbeddings: Int
    public var vocabSize: Int
    /// nil when config.json does not say: then the head is tied iff there is no `lm_head.weight`.
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool
    public var bosTokenId: Int?
    public var eosTokenIds: [Int]

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case intermediateSize = "intermediate_size"
        case moeIntermediateSize = "moe_intermediate_size"
        case sharedExpertIntermediateSize = "shared_expert_intermediate_size"
        case numExperts = "num_experts"
        case numLocalExperts = "num_local_experts"
        case nRoutedExperts = "n_routed_experts"
        case numExpertsPerTok = "num_experts_per_tok"
        case normTopkProb = "norm_topk_prob"
        case mlpOnlyLayers = "mlp_only_layers"
        case firstKDenseReplace = "first_k_dense_replace"
        case decoderSparseStep = "decoder_sparse_step"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeParameters = "rope_parameters"
        case maxPositionEmbeddings = "max_position_embeddings"
        case vocabSize = "vocab_size"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case qkvBias = "qkv_bias"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    struct RopeParameters: Codable {
        var ropeTheta: Double?
        enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta" }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        numHiddenLayers = try c.decode(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decode(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? numAttentionHeads
        let defaultHeadDim = numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim) ?? defaultHeadDim
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize)
        moeIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .moeIntermediateSize)
        sharedExpertIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .sharedExpertIntermediateSize)
        numExperts = try c.decodeIfPresent(Int.self, forKey: .numExperts)
            ?? c.decodeIfPresent(Int.self, forKey: .numLocalExperts)
            ?? c.decodeIfPresent(Int.self, forKey: .nRoutedExperts) ?? 0
        numExpertsPerTok = try c.decodeIfPresent(Int.self, forKey: .numExpertsPerTok) ?? 0
        normTopkProb = try c.decodeIfPresent(Bool.self, forKey: .normTopkProb) ?? false
        mlpOnlyLayers = try c.decodeIfPresent([Int].self, forKey: .mlpOnlyLayers) ?? []
        firstKDenseReplace = try c.decodeIfPresent(Int.self, forKey: .firstKDenseReplace) ?? 0
        decoderSparseStep = try c.decodeIfPresent(Int.self, forKey: .decoderSparseStep) ?? 1
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps) ?? 1e-6
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
            ?? c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)?.ropeTheta ?? 1e6
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 32768
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias)
            ?? c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? false
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenIds = try Self.decodeIds(c, .eosTokenId)
    }

    /// `eos_token_id` may be an int, a list of ints, or null.
    public static func decodeIds<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> [Int] {
        if (try? c.decodeNil(forKey: key)) ?? true { return [] }
        if let one = try? c.decode(Int.self, forKey: key) { return [one] }
        return try c.decode([Int].self, forKey: key)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encodeIfPresent(intermediateSize, forKey: .intermediateSize)
        try c.encodeIfPresent(moeIntermediateSize, forKey: .moeIntermediateSize)
        try c.encodeIfPresent(sharedExpertIntermediateSize, forKey: .sharedExpertIntermediateSize)
        try c.encode(numExperts, forKey: .numExperts)
        try c.encode(numExpertsPerTok, forKey: .numExpertsPerTok)
        try c.encode(normTopkProb, forKey: .normTopkProb)
        try c.encode(mlpOnlyLayers, forKey: .mlpOnlyLayers)
        try c.encode(firstKDenseReplace, forKey: .firstKDenseReplace)
        try c.encode(decoderSparseStep, forKey: .decoderSparseStep)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encodeIfPresent(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(attentionBias, forKey: .attentionBias)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        try c.encode(eosTokenIds, forKey: .eosTokenId)
    }

    /// Reads and validates `path` (a config.json).
    public static func load(path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.io(path: path, message: "cannot read the file")
        }
        let config: ModelConfig
        do {
            config = try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch let error as DecodingError {
            throw ModelError.config(file: path, field: Self.fieldName(of: error), message: Self.reason(of: error))
        } catch {
            throw ModelError.config(file: path, field: "(file)", message: "not valid JSON")
        }
        try config.validate(file: path)
        return config
    }

    /// Whether layer `i` has a dense MLP (SPEC.md's rule); every other layer is MoE.
    public func isDense(layer i: Int) -> Bool {
        mlpOnlyLayers.contains(i) || i < firstKDenseReplace || numExperts <= 0
            || (i + 1) % decoderSparseStep != 0
    }

    /// Indices of the MoE layers, in order.
    public var moeLayers: [Int] { (0..<numHiddenLayers).filter { !isDense(layer: $0) } }

    /// Checks the fields against each other; every error names the field.
    public func validate(file: String = "config.json") throws {
        func fail(_ field: String, _ message: String) -> ModelError {
            .config(file: file, field: field, message: message)
        }
        func positive(_ value: Int, _ field: String) throws {
            if value <= 0 { throw fail(field, "must be positive, found \(value)") }
        }
        try positive(hiddenSize, "hidden_size")
        try positive(numHiddenLayers, "num_hidden_layers")
        try positive(numAttentionHeads, "num_attention_heads")
        try positive(numKeyValueHeads, "num_key_value_heads")
        try positive(vocabSize, "vocab_size")
        try positive(maxPositionEmbeddings, "max_position_embeddings")
        try positive(decoderSparseStep, "decoder_sparse_step")
        // Upper bounds keep later size arithmetic (and the KV cache reservation) from overflowing.
        for (value, field, limit) in [(hiddenSize, "hidden_size", 1 << 16), (numHiddenLayers, "num_hidden_layers", 4096),
                                      (numAttentionHeads, "num_attention_heads", 4096), (numKeyValueHeads, "num_key_value_heads", 4096),
                                      (headDim, "head_dim", 1 << 13), (vocabSize, "vocab_size", 1 << 24),
                                      (maxPositionEmbeddings, "max_position_embeddings", 1 << 22), (numExperts, "num_experts", 1 << 14),
                                      (intermediateSize ?? 0, "intermediate_size", 1 << 20), (moeIntermediateSize ?? 0, "moe_intermediate_size", 1 << 20),
                                      (sharedExpertIntermediateSize ?? 0, "shared_expert_intermediate_size", 1 << 20)]
            where value > limit {
            throw fail(field, "\(value) is larger than nekochat supports (\(limit))")
        }
        if headDim <= 0 || headDim % 2 != 0 {
            throw fail("head_dim", "must be a positive even number, found \(headDim)"
                + " (default hidden_size / num_attention_heads)")
        }
        if numAttentionHeads % numKeyValueHeads != 0 {
            throw fail("num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        if !(rmsNormEps > 0) { throw fail("rms_norm_eps", "must be positive, found \(rmsNormEps)") }
        if !(ropeTheta > 0) { throw fail("rope_theta", "must be positive, found \(ropeTheta)") }
        if numExperts < 0 { throw fail("num_experts", "must not be negative, found \(numExperts)") }
        for layer in mlpOnlyLayers where layer < 0 || layer >= numHiddenLayers {
            throw fail("mlp_only_layers", "layer \(layer) is outside 0..<\(numHiddenLayers)")
        }
        let moe = moeLayers
        if moe.count < numHiddenLayers {
            guard let size = intermediateSize else {
                throw fail("intermediate_size", "required: the config has dense layers")
            }
            try positive(size, "intermediate_size")
        }
        if !moe.isEmpty {
            if numExpertsPerTok < 1 || numExpertsPerTok > numExperts {
                throw fail("num_experts_per_tok", "must be in 1...\(numExperts) (num_experts), found \(numExpertsPerTok)")
            }
            guard let size = moeIntermediateSize else {
                throw fail("moe_intermediate_size", "required: the config has MoE layers")
            }
            try positive(size, "moe_intermediate_size")
        }
        if let shared = sharedExpertIntermediateSize { try positive(shared, "shared_expert_intermediate_size") }
        for id in eosTokenIds where id < 0 || id >= vocabSize {
            throw fail("eos_token_id", "\(id) is outside the vocabulary (vocab_size \(vocabSize))")
        }
        if let bos = bosTokenId, bos < 0 || bos >= vocabSize {
            throw fail("bos_token_id", "\(bos) is outside the vocabulary (vocab_size \(vocabSize))")
        }
    }

    // MARK: parameter counts (used by `info`; checked against SPEC.md's 1,352,990,208)

    /// Parameters of the model this config describes, with the optional parts as given.
    /// Tied heads count the embedding once.
    public func parameterCount(qkNorm: Bool = true, sharedExpert: Bool = true,
                               tied: Bool = true) -> (total: Int, active: Int) {
        let h = hiddenSize, q = numAttentionHeads * headDim, kv = numKeyValueHeads * headDim
        var total = vocabSize * h + h  // embedding + final norm
        if !tied { total += vocabSize * h }
        var active = total
        for layer in 0..<numHiddenLayers {
            var attention = 2 * h + h * q + 2 * h * kv + q * h
            if attentionBias { attention += q + 2 * kv }
            if qkNorm { attention += 2 * headDim }
            total += attention
            active += attention
            if isDense(layer: layer) {
                let mlp = 3 * h * (intermediateSize ?? 0)
                total += mlp
                active += mlp
            } else {
                let expert = 3 * h * (moeIntermediateSize ?? 0)
                var always = numExperts * h  // router
                if sharedExpert { always += 3 * h * (sharedExpertIntermediateSize ?? 0) + h }
                total += always + numExperts * expert
                active += always + numExpertsPerTok * expert
            }
        }
        return (total, active)
    }

    // MARK: decoding errors → field names

    public static func fieldName(of error: DecodingError) -> String {
        let path: [CodingKey]
        switch error {
        case let .keyNotFound(key, context): path = context.codingPath + [key]
        case let .typeMismatch(_, context), let .valueNotFound(_, context), let .dataCorrupted(context):
            path = context.codingPath
        @unknown default: path = []
        }
        let names = path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
        return names.isEmpty ? "(file)" : names.joined(separator: ".")
    }

    static func reason(of error: DecodingError) -> String {
        switch error {
        case .keyNotFound: "required but missing"
        case let .typeMismatch(type, _): "has the wrong type (expected \(type))"
        case let .valueNotFound(type, _): "is null (expected \(type))"
        case let .dataCorrupted(context): context.underlyingError == nil ? context.debugDescription : "not valid JSON"
        @unknown default: "invalid"
        }
    }
}
