extension ModelFamily {
    /// Granite-MoE (`granitemoe`: IBM's granite-3.x 1B-A400M and 3B-A800M), as transformers'
    /// `GraniteMoeForCausalLM`.
    /// - Every layer MoE; `intermediate_size` is one expert's width. No shared expert, no QK-norm.
    /// - Router: the k largest logits, then a softmax over those k only.
    /// - Multipliers: the embedding's output × `embedding_multiplier`; the attention logits ×
    ///   `attention_multiplier` *instead of* 1/√head_dim; each block's output ×
    ///   `residual_multiplier` before it joins the residual stream; the logits ÷ `logits_scaling`.
    /// - Biases on q, k, v and o with `attention_bias`.
    /// - Tensors: `block_sparse_moe.router.layer` (the router), `block_sparse_moe.input_linear`
    ///   `(experts, 2·width, hidden)` with each expert's gate rows first, then up, and
    ///   `block_sparse_moe.output_linear` `(experts, hidden, width)`.
    /// - Spellings: `num_local_experts` or `num_experts`.
    /// - Defaults: θ 10,000, ε 1e-6, context 2,048, 8 experts top-2, width 11008, multipliers 1.
    static let graniteMoE = ModelFamily(name: "Granite-MoE", modelTypes: ["granitemoe"], tensors: .granite) { r in
        var c = try r.decoder(ropeTheta: 10000, rmsNormEps: 1e-6, maxPositions: 2048)
        c.moeIntermediateSize = try r.int("intermediate_size", default: 11008)
        c.numExperts = try r.int("num_local_experts", or: ["num_experts"], default: 8)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 2)
        c.attentionBias = try r.bool("attention_bias", default: false)
        c.outputBias = c.attentionBias
        c.embeddingMultiplier = try r.double("embedding_multiplier", default: 1)
        c.attentionScale = try r.double("attention_multiplier", default: 1)
        c.residualMultiplier = try r.double("residual_multiplier", default: 1)
        c.logitsScaling = try r.double("logits_scaling", default: 1)
        c.router = .topKThenSoftmax
        c.qkNorm = .none
        c.sharedExpert = .none
        return c
    }
}

extension TensorLayout {
    /// Granite-MoE's Hub layout (experts fused on disk).
    static let granite: TensorLayout = {
        var t = TensorLayout.qwen
        t.router = "model.layers.{L}.block_sparse_moe.router.layer.weight"
        t.experts = [.fused(gateUp: "model.layers.{L}.block_sparse_moe.input_linear.weight",
                            down: "model.layers.{L}.block_sparse_moe.output_linear.weight")]
        return t
    }()
}
