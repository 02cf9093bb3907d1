import Foundation
import NekoJSON

/// `config.json` of a checkpoint, parsed once by its family (`ModelFamily`, chosen by
/// `model_type`) into what the forward pass needs. The fields hold the engine's vocabulary; each
/// family file says which config.json names and defaults feed them, and which switches it sets.
/// Each field is named once, in the family's reader: the reader remembers what it resolved, in
/// order, and `fields` (what `nekochat info` prints) comes from that record.
public struct ModelConfig: Sendable, Equatable {
    /// `model_type` as written (nil when config.json has none: then NekoMind's rules apply).
    public var modelType: String?
    /// The family that read this config (`ModelFamily.name`: "NekoMind", "OLMoE", …).
    public var family = "NekoMind"

    public var hiddenSize = 0
    public var numHiddenLayers = 0
    public var numAttentionHeads = 0
    public var numKeyValueHeads = 0
    public var headDim = 0
    /// The dense layers' MLP width (nil when the config has no dense layers and does not say).
    public var intermediateSize: Int?
    /// One routed expert's MLP width.
    public var moeIntermediateSize: Int?
    /// The shared expert's width (nil: as its tensors say, or no shared expert).
    public var sharedExpertIntermediateSize: Int?
    public var numExperts = 0
    public var numExpertsPerTok = 0
    /// Renormalise the chosen experts' weights to sum to 1 (softmax-first routers).
    public var normTopkProb = false
    public var mlpOnlyLayers: [Int] = []
    public var firstKDenseReplace = 0
    public var decoderSparseStep = 1
    public var rmsNormEps = 1e-6
    public var ropeTheta = 1e6
    public var maxPositionEmbeddings = 32768
    public var vocabSize = 0
    /// nil when config.json does not say: then the head is tied iff there is no `lm_head.weight`.
    public var tieWordEmbeddings: Bool?
    /// Biases on the q, k and v projections.
    public var attentionBias = false
    /// A bias on the output projection too (OLMoE's and Granite's `attention_bias`).
    public var outputBias = false
    public var bosTokenId: Int?
    public var eosTokenIds: [Int] = []

    // The family's switches (see ModelFamily): how routing, normalisation and scaling differ.
    /// How the router picks experts and weighs them.
    public var router = RouterRule.softmaxThenTopK
    /// Where QK-norm applies, if anywhere.
    public var qkNorm = QKNormRule.perHeadWhenPresent
    /// Whether MoE layers have a shared expert, and whether a gate scales it.
    public var sharedExpert = SharedExpertRule.gatedWhenPresent
    /// q, k and v are clamped to ±clipQKV after the projections (and QK-norm) (OLMoE).
    public var clipQKV: Double?
    /// The attention logits' scale; nil: 1/√head_dim (Granite: `attention_multiplier`).
    public var attentionScale: Double?
    /// The embedding's output is multiplied by this (Granite).
    public var embeddingMultiplier = 1.0
    /// Each block's output is multiplied by this before it joins the residual stream (Granite).
    public var residualMultiplier = 1.0
    /// The logits are divided by this (Granite's `logits_scaling`).
    public var logitsScaling = 1.0
    /// Keys older than this many positions are not attended to, on the layers in `slidingLayers`.
    public var slidingWindow: Int?
    /// The layers that use `slidingWindow` (all of them unless the family says otherwise).
    public var slidingLayers: [Int] = []

    /// Every field as resolved (defaults applied, alternative spellings under the family's name),
    /// in the order read.
    public internal(set) var fields: [ConfigField] = []

    /// An empty config, for family readers to fill.
    init() {}

    /// Reads config.json's fields with the rules of the family its `model_type` names.
    public init(json: JSONValue, file: String) throws {
        var r = ConfigReader(json: json, file: file)
        let family = try ModelFamily.forConfig(&r)
        self = try family.readConfig(&r)
        self.family = family.name
        modelType = json["model_type"]?.string
        fields = r.read
    }

    /// `eos_token_id` may be an int, a list of ints, or null (generation_config.json's reader).
    public static func decodeIds<K: CodingKey>(_ c: KeyedDecodingContainer<K>, _ key: K) throws -> [Int] {
        if (try? c.decodeNil(forKey: key)) ?? true { return [] }
        if let one = try? c.decode(Int.self, forKey: key) { return [one] }
        return try c.decode([Int].self, forKey: key)
    }

    /// Reads and validates `path` (a config.json).
    public static func load(path: String) throws -> ModelConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.io(path: path, message: "cannot read the file")
        }
        let json: JSONValue
        do { json = try JSONValue.parse([UInt8](data)) } catch {
            throw ModelError.config(file: path, field: "(file)", message: "not valid JSON (\(error))")
        }
        guard json.members != nil else { throw ModelError.config(file: path, field: "(file)", message: "expected a JSON object") }
        let config = try ModelConfig(json: json, file: path)
        try config.validate(file: path)
        return config
    }

    /// Whether layer `i` has a dense MLP (Sources/NekoModel/README.md's rule); every other layer is MoE.
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
        if let window = slidingWindow, window <= 0 { throw fail("sliding_window", "must be positive, found \(window)") }
        if let clip = clipQKV, !(clip > 0 && clip.isFinite) { throw fail("clip_qkv", "must be a positive number, found \(clip)") }
        if let scale = attentionScale, !(scale > 0 && scale.isFinite) {
            throw fail("attention_multiplier", "must be a positive number, found \(scale)")
        }
        for (value, field) in [(embeddingMultiplier, "embedding_multiplier"), (residualMultiplier, "residual_multiplier"),
                               (logitsScaling, "logits_scaling")] where !(value != 0 && value.isFinite) {
            throw fail(field, "must be a finite number other than 0, found \(value)")
        }
        for id in eosTokenIds where id < 0 || id >= vocabSize {
            throw fail("eos_token_id", "\(id) is outside the vocabulary (vocab_size \(vocabSize))")
        }
        if let bos = bosTokenId, bos < 0 || bos >= vocabSize {
            throw fail("bos_token_id", "\(bos) is outside the vocabulary (vocab_size \(vocabSize))")
        }
    }

    // MARK: parameter counts (used by `info`; checked against Sources/NekoModel/README.md's 1,352,990,208)

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
            if outputBias { attention += h }
            if qkNorm { attention += self.qkNorm == .wholeProjection ? q + kv : 2 * headDim }
            total += attention
            active += attention
            if isDense(layer: layer) {
                let mlp = 3 * h * (intermediateSize ?? 0)
                total += mlp
                active += mlp
            } else {
                let expert = 3 * h * (moeIntermediateSize ?? 0)
                var always = numExperts * h  // router
                if sharedExpert { always += 3 * h * (sharedExpertIntermediateSize ?? 0) + (self.sharedExpert == .ungated ? 0 : h) }
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

}

/// One resolved field of config.json.
public struct ConfigField: Sendable, Equatable {
    public let name: String
    public let value: JSONValue
}

/// Reads config.json's fields by name (with the alternative spellings real files use), checks
/// their types, applies defaults, and keeps what it resolved. Errors name the field.
struct ConfigReader {
    let json: JSONValue
    let file: String
    var read: [ConfigField] = []

    func fail(_ field: String, _ message: String) -> ModelError { .config(file: file, field: field, message: message) }

    /// The value under `name` or one of `others` (a dotted name looks inside an object), and the
    /// name it was found under.
    func lookup(_ name: String, _ others: [String]) -> (String, JSONValue)? {
        for key in [name] + others {
            var v: JSONValue? = json
            for part in key.split(separator: ".") { v = v?[String(part)] }
            if let v, !v.isNull { return (key, v) }
        }
        return nil
    }

    mutating func record(_ name: String, _ value: JSONValue) { read.append(ConfigField(name: name, value: value)) }

    mutating func optionalInt(_ name: String, or others: [String] = []) throws -> Int? {
        guard let (key, v) = lookup(name, others) else { record(name, .null); return nil }
        guard let i = v.int else { throw fail(key, "has the wrong type (expected an integer)") }
        record(name, .int(i))
        return i
    }

    mutating func int(_ name: String, or others: [String] = [], default d: Int? = nil) throws -> Int {
        if lookup(name, others) == nil {
            guard let d else { throw fail(name, "required but missing") }
            record(name, .int(d))
            return d
        }
        return try optionalInt(name, or: others)!
    }

    mutating func double(_ name: String, or others: [String] = [], default d: Double) throws -> Double {
        guard let (key, v) = lookup(name, others) else { record(name, .double(d)); return d }
        guard let x = v.double else { throw fail(key, "has the wrong type (expected a number)") }
        record(name, .double(x))
        return x
    }

    mutating func optionalDouble(_ name: String, or others: [String] = []) throws -> Double? {
        guard let (key, v) = lookup(name, others) else { record(name, .null); return nil }
        guard let x = v.double else { throw fail(key, "has the wrong type (expected a number)") }
        record(name, .double(x))
        return x
    }

    mutating func optionalString(_ name: String) throws -> String? {
        guard let (key, v) = lookup(name, []) else { return nil }
        guard let text = v.string else { throw fail(key, "has the wrong type (expected a string)") }
        record(name, .string(text))
        return text
    }

    mutating func optionalStrings(_ name: String) throws -> [String]? {
        guard let (key, v) = lookup(name, []) else { return nil }
        guard let items = v.array, items.allSatisfy({ $0.string != nil }) else {
            throw fail(key, "has the wrong type (expected a list of strings)")
        }
        let list = items.compactMap(\.string)
        record(name, .array(list.map { .string($0) }))
        return list
    }

    mutating func optionalBool(_ name: String, or others: [String] = []) throws -> Bool? {
        guard let (key, v) = lookup(name, others) else { record(name, .null); return nil }
        guard let b = v.bool else { throw fail(key, "has the wrong type (expected true or false)") }
        record(name, .bool(b))
        return b
    }

    mutating func bool(_ name: String, or others: [String] = [], default d: Bool) throws -> Bool {
        // Either spelling being true turns it on (attention_bias / qkv_bias).
        var value = d, found = false
        for key in [name] + others {
            guard let (k, v) = lookup(key, []) else { continue }
            guard let b = v.bool else { throw fail(k, "has the wrong type (expected true or false)") }
            value = found ? (value || b) : b
            found = true
        }
        record(name, .bool(value))
        return value
    }

    mutating func ints(_ name: String) throws -> [Int] {
        guard let (key, v) = lookup(name, []) else { record(name, .array([])); return [] }
        guard let items = v.array, items.allSatisfy({ $0.int != nil }) else {
            throw fail(key, "has the wrong type (expected a list of integers)")
        }
        let list = items.compactMap(\.int)
        record(name, .array(list.map { .int($0) }))
        return list
    }

    /// An int, a list of ints, or null.
    mutating func ids(_ name: String) throws -> [Int] {
        guard let (_, v) = lookup(name, []) else { record(name, .array([])); return [] }
        if let i = v.int { record(name, .array([.int(i)])); return [i] }
        return try ints(name)
    }
}
