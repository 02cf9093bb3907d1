extension ModelFamily {
    /// NekoMind1.5 (`nekomind`), the model this program was written for (Sources/NekoModel/README.md):
    /// Qwen2-MoE's MoE block with Qwen3's QK-norm.
    /// - Layers: dense (`intermediate_size`) where `mlp_only_layers`, `first_k_dense_replace` or
    ///   `decoder_sparse_step` say so; the rest MoE (`moe_intermediate_size`).
    /// - Router: softmax over all experts, top-k, renormalised only with `norm_topk_prob` (default false).
    /// - Optional parts follow the tensors: per-head QK-norm when `q_norm`/`k_norm` are present, a
    ///   σ-gated shared expert when `shared_expert.*` is (its size from the tensors when the config
    ///   is silent). So Qwen2-MoE- and Qwen3-MoE-shaped checkpoints written as NekoMind load too.
    /// - Spellings: the expert count as `num_experts`, `num_local_experts` or `n_routed_experts`;
    ///   q/k/v biases as `attention_bias` or `qkv_bias`; `rope_theta` or `rope_parameters.rope_theta`.
    /// - Defaults: RoPE θ 1e6, RMSNorm ε 1e-6, context 32,768. A config without `model_type` is read so.
    static let nekomind = ModelFamily(name: "NekoMind", modelTypes: ["nekomind"], tensors: .qwen) { r in
        var c = try r.decoder(ropeTheta: 1e6, rmsNormEps: 1e-6, maxPositions: 32768)
        c.intermediateSize = try r.optionalInt("intermediate_size")
        c.moeIntermediateSize = try r.optionalInt("moe_intermediate_size")
        c.sharedExpertIntermediateSize = try r.optionalInt("shared_expert_intermediate_size")
        c.numExperts = try r.int("num_experts", or: ["num_local_experts", "n_routed_experts"], default: 0)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 0)
        c.normTopkProb = try r.bool("norm_topk_prob", default: false)
        c.mlpOnlyLayers = try r.ints("mlp_only_layers")
        c.firstKDenseReplace = try r.int("first_k_dense_replace", default: 0)
        c.decoderSparseStep = try r.int("decoder_sparse_step", default: 1)
        c.attentionBias = try r.bool("attention_bias", or: ["qkv_bias"], default: false)
        c.router = .softmaxThenTopK
        c.qkNorm = .perHeadWhenPresent
        c.sharedExpert = .gatedWhenPresent
        return c
    }
}
