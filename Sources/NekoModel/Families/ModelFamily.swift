import NekoJSON

/// A model family: the `model_type`s it answers to, how it reads config.json into the engine's
/// `ModelConfig`, and where its checkpoints keep each tensor. The forward pass is one for every
/// family; a family differs from another only through the switches its reader sets on the config
/// (`RouterRule`, `QKNormRule`, `SharedExpertRule`, multipliers, sliding window) and through its
/// `TensorLayout`. A new family is one file in this folder and one line in `all`
/// (Sources/NekoModel/README.md says what each family file must write down).
public struct ModelFamily: Sendable {
    /// The family's name as users know it ("OLMoE").
    public let name: String
    /// The `model_type` values of config.json that this family reads.
    public let modelTypes: [String]
    /// Where the family's checkpoints keep each tensor.
    let tensors: TensorLayout
    /// Reads config.json's fields (the family's names and defaults) and sets the family's switches.
    let readConfig: @Sendable (inout ConfigReader) throws -> ModelConfig

    init(name: String, modelTypes: [String], tensors: TensorLayout,
         readConfig: @escaping @Sendable (inout ConfigReader) throws -> ModelConfig) {
        self.name = name
        self.modelTypes = modelTypes
        self.tensors = tensors
        self.readConfig = readConfig
    }

    /// Every family nekochat runs, in the order `nekochat info` and errors list them.
    public static let all: [ModelFamily] = [.nekomind, .qwen2MoE, .qwen3MoE, .olmoe, .mixtral, .graniteMoE]

    /// The family of `modelType`, if nekochat has one.
    public static func named(modelType: String) -> ModelFamily? {
        all.first { $0.modelTypes.contains(modelType) }
    }

    /// Every supported `model_type`, for error messages.
    public static var supportedModelTypes: [String] { all.flatMap(\.modelTypes) }

    /// The family config.json's `model_type` names; NekoMind's when it names none (a config
    /// written by hand). An unknown one is an error that lists the supported ones.
    static func forConfig(_ r: inout ConfigReader) throws -> ModelFamily {
        guard let type = try r.optionalString("model_type") else { return .nekomind }
        guard let family = named(modelType: type) else {
            throw r.fail("model_type", "'\(type)' is not a model family nekochat runs (supported: "
                + supportedModelTypes.joined(separator: ", ") + ")")
        }
        return family
    }

    /// The family that reads `config` (it was read by one of `all`).
    static func of(_ config: ModelConfig) -> ModelFamily {
        all.first { $0.name == config.family } ?? .nekomind
    }
}

// MARK: - the switches

/// How a router turns one token's logits into the chosen experts and their weights.
public enum RouterRule: String, Sendable, Equatable {
    /// softmax over all experts (float32), then the k most probable (ties: lower index); the
    /// weights are those probabilities, renormalised over the k when `norm_topk_prob`.
    case softmaxThenTopK = "softmax over all experts, then top-k"
    /// the k largest logits (ties: lower index), then a softmax over those k alone.
    case topKThenSoftmax = "top-k of the logits, then softmax over the k"
}

/// Where RMS normalisation of queries and keys applies (before RoPE).
public enum QKNormRule: String, Sendable, Equatable {
    case none
    /// Over each head's head_dim values, weights `[head_dim]` (Qwen3-MoE).
    case perHead = "per head"
    /// Per head when the checkpoint has q_norm/k_norm, else none (NekoMind's optional part).
    case perHeadWhenPresent = "per head, when present"
    /// Over the whole projection before it is split into heads, weights `[heads·head_dim]` (OLMoE).
    case wholeProjection = "over the whole projection"
}

/// Whether MoE layers have a shared expert beside the routed ones.
public enum SharedExpertRule: String, Sendable, Equatable {
    case none
    /// Always, scaled by σ(h·g) with g = `shared_expert_gate` (Qwen2-MoE).
    case gated
    /// Gated, when the checkpoint has one (NekoMind's optional part).
    case gatedWhenPresent = "gated, when present"
    /// Always, added as it is.
    case ungated
}

// MARK: - tensor names

/// The names of one SwiGLU MLP's three matrices.
struct MLPNames: Sendable {
    var gate: String
    var up: String
    var down: String

    /// `prefix` + `gate_proj.weight`, `up_proj.weight`, `down_proj.weight`.
    init(prefix: String) {
        self.init(gate: prefix + "gate_proj.weight", up: prefix + "up_proj.weight", down: prefix + "down_proj.weight")
    }

    init(gate: String, up: String, down: String) {
        self.gate = gate
        self.up = up
        self.down = down
    }
}

/// How a checkpoint stores one MoE layer's routed experts.
enum ExpertLayout: Sendable {
    /// One tensor per expert and matrix ("{E}" is the expert's index).
    case separate(MLPNames)
    /// Two tensors for all experts: gate and up `(experts, 2 · moe_intermediate, hidden)`, each
    /// expert's gate rows first, and down `(experts, hidden, moe_intermediate)`.
    case fused(gateUp: String, down: String)
}

/// Where a family keeps each tensor. "{L}" stands for the layer's index and "{E}" for an expert's;
/// names are made once, at load, never in the forward pass.
struct TensorLayout: Sendable {
    var embed = "model.embed_tokens.weight"
    var finalNorm = "model.norm.weight"
    var lmHead = "lm_head.weight"
    var inputNorm = "model.layers.{L}.input_layernorm.weight"
    var postAttentionNorm = "model.layers.{L}.post_attention_layernorm.weight"
    /// The attention projections without their `.weight` / `.bias` suffix.
    var q = "model.layers.{L}.self_attn.q_proj"
    var k = "model.layers.{L}.self_attn.k_proj"
    var v = "model.layers.{L}.self_attn.v_proj"
    var o = "model.layers.{L}.self_attn.o_proj"
    var qNorm = "model.layers.{L}.self_attn.q_norm.weight"
    var kNorm = "model.layers.{L}.self_attn.k_norm.weight"
    /// A dense layer's MLP.
    var dense = MLPNames(prefix: "model.layers.{L}.mlp.")
    /// The router `(experts, hidden)`.
    var router = "model.layers.{L}.mlp.gate.weight"
    /// The routed experts, in every layout the family's checkpoints are found in (the first that
    /// the files hold is used).
    var experts: [ExpertLayout] = [
        .separate(MLPNames(prefix: "model.layers.{L}.mlp.experts.{E}.")),
        .fused(gateUp: "model.layers.{L}.mlp.experts.gate_up_proj", down: "model.layers.{L}.mlp.experts.down_proj"),
    ]
    var sharedExpert = MLPNames(prefix: "model.layers.{L}.mlp.shared_expert.")
    /// The shared expert's gate `(1, hidden)`.
    var sharedExpertGate = "model.layers.{L}.mlp.shared_expert_gate.weight"

    /// The layout of the Qwen2-MoE lineage (NekoMind, Qwen2-MoE, Qwen3-MoE, OLMoE), as
    /// transformers' `save_pretrained` writes it (per-expert) or keeps it in memory (fused).
    static let qwen = TensorLayout()
}

extension String {
    /// A layout name for layer `layer` (and expert `expert`).
    func tensor(layer: Int, expert: Int? = nil) -> String {
        var s = replacingOccurrences(of: "{L}", with: String(layer))
        if let expert { s = s.replacingOccurrences(of: "{E}", with: String(expert)) }
        return s
    }
}

// MARK: - fields every family reads

extension ConfigReader {
    /// The fields of every decoder family: sizes, attention shape, vocabulary, norms, RoPE and
    /// special ids, with the family's defaults where config.json is silent.
    mutating func decoder(ropeTheta: Double, rmsNormEps: Double, maxPositions: Int) throws -> ModelConfig {
        var c = ModelConfig()
        c.hiddenSize = try int("hidden_size")
        c.numHiddenLayers = try int("num_hidden_layers")
        c.numAttentionHeads = try int("num_attention_heads")
        c.numKeyValueHeads = try int("num_key_value_heads", default: c.numAttentionHeads)
        c.headDim = try int("head_dim", default: c.numAttentionHeads > 0 ? c.hiddenSize / c.numAttentionHeads : 0)
        c.vocabSize = try int("vocab_size")
        c.rmsNormEps = try double("rms_norm_eps", default: rmsNormEps)
        c.ropeTheta = try double("rope_theta", or: ["rope_parameters.rope_theta"], default: ropeTheta)
        try plainRoPE()
        c.maxPositionEmbeddings = try int("max_position_embeddings", default: maxPositions)
        c.tieWordEmbeddings = try optionalBool("tie_word_embeddings")
        c.bosTokenId = try optionalInt("bos_token_id")
        c.eosTokenIds = try ids("eos_token_id")
        return c
    }

    /// RoPE as the forward pass computes it (no scaling): a scaled `rope_type` (linear, dynamic,
    /// YaRN, …) would silently give other numbers, so it is an error naming the field.
    func plainRoPE() throws {
        for key in ["rope_parameters.rope_type", "rope_scaling.rope_type", "rope_scaling.type"] {
            guard let (k, v) = lookup(key, []) else { continue }
            guard let type = v.string else { throw fail(k, "has the wrong type (expected a string)") }
            if type != "default" {
                throw fail(k, "RoPE scaling '\(type)' is not supported (nekochat computes plain RoPE)")
            }
        }
    }

    /// Sliding-window attention as `use_sliding_window` / `sliding_window` / `layer_types` say,
    /// for families whose configs carry them. `defaultLayers` are the windowed layers when
    /// `layer_types` is absent.
    mutating func slidingWindow(into c: inout ModelConfig, switchedBy flag: String?,
                                defaultLayers: (ModelConfig) -> [Int]) throws {
        if let flag, !(try bool(flag, default: false)) {
            record("sliding_window", .null)
            return
        }
        guard let window = try optionalInt("sliding_window"), window > 0 else { return }
        c.slidingWindow = window
        if let types = try optionalStrings("layer_types") {
            guard types.count == c.numHiddenLayers else {
                throw fail("layer_types", "has \(types.count) entries for \(c.numHiddenLayers) layers")
            }
            for (i, t) in types.enumerated() {
                guard t == "sliding_attention" || t == "full_attention" else {
                    throw fail("layer_types", "entry \(i) is '\(t)' (expected sliding_attention or full_attention)")
                }
            }
            c.slidingLayers = types.indices.filter { types[$0] == "sliding_attention" }
        } else {
            c.slidingLayers = defaultLayers(c)
        }
    }
}
