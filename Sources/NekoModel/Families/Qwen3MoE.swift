extension ModelFamily {
    /// Qwen3-MoE (`qwen3_moe`: Qwen3-30B-A3B, Qwen3-235B-A22B), as transformers' `Qwen3MoeForCausalLM`.
    /// - Layers: MoE where `i ∉ mlp_only_layers` and `(i + 1) % decoder_sparse_step == 0`, else dense.
    /// - Router: softmax over all experts in float32, top-k, renormalised only with `norm_topk_prob`.
    /// - No shared expert. Attention: QK-norm per head (`[head_dim]` weights) before RoPE; biases on
    ///   q, k, v and o with `attention_bias` (default false).
    /// - Sliding window only with `use_sliding_window`, then on every layer.
    /// - Spellings: `num_experts`, or `num_local_experts` (what transformers 5 writes).
    /// - Defaults: θ 10,000, ε 1e-6, context 32,768, 128 experts top-8, sizes 6144 / 768.
    static let qwen3MoE = ModelFamily(name: "Qwen3-MoE", modelTypes: ["qwen3_moe"], tensors: .qwen) { r in
        var c = try r.decoder(ropeTheta: 10000, rmsNormEps: 1e-6, maxPositions: 32768)
        c.intermediateSize = try r.int("intermediate_size", default: 6144)
        c.moeIntermediateSize = try r.int("moe_intermediate_size", default: 768)
        c.numExperts = try r.int("num_experts", or: ["num_local_experts"], default: 128)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 8)
        c.normTopkProb = try r.bool("norm_topk_prob", default: false)
        c.mlpOnlyLayers = try r.ints("mlp_only_layers")
        c.decoderSparseStep = try r.int("decoder_sparse_step", default: 1)
        c.attentionBias = try r.bool("attention_bias", default: false)
        c.outputBias = c.attentionBias
        try r.slidingWindow(into: &c, switchedBy: "use_sliding_window") { c in Array(0..<c.numHiddenLayers) }
        c.router = .softmaxThenTopK
        c.qkNorm = .perHead
        c.sharedExpert = .none
        return c
    }
}
