extension ModelFamily {
    /// OLMoE (`olmoe`: OLMoE-1B-7B), as transformers' `OlmoeForCausalLM`.
    /// - Every layer MoE; `intermediate_size` is one expert's width. No shared expert.
    /// - Router: softmax over all experts in float32, top-k, renormalised only with `norm_topk_prob`
    ///   (default false).
    /// - Attention: QK-norm over the whole q and k projections (weights `[heads·head_dim]` and
    ///   `[kv_heads·head_dim]`) before they are split into heads; then, with `clip_qkv`, q, k and v
    ///   clamped to ±clip_qkv; then RoPE. Biases on q, k, v and o with `attention_bias`.
    /// - Spellings: `num_experts` or `num_local_experts`.
    /// - Defaults: θ 10,000, ε 1e-5, context 4,096, 64 experts top-8, width 2048.
    static let olmoe = ModelFamily(name: "OLMoE", modelTypes: ["olmoe"], tensors: .qwen) { r in
        var c = try r.decoder(ropeTheta: 10000, rmsNormEps: 1e-5, maxPositions: 4096)
        c.moeIntermediateSize = try r.int("intermediate_size", default: 2048)
        c.numExperts = try r.int("num_experts", or: ["num_local_experts"], default: 64)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 8)
        c.normTopkProb = try r.bool("norm_topk_prob", default: false)
        c.attentionBias = try r.bool("attention_bias", default: false)
        c.outputBias = c.attentionBias
        c.clipQKV = try r.optionalDouble("clip_qkv")
        c.router = .softmaxThenTopK
        c.qkNorm = .wholeProjection
        c.sharedExpert = .none
        return c
    }
}
