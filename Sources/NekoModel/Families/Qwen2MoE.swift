extension ModelFamily {
    /// Qwen2-MoE (`qwen2_moe`: Qwen1.5-MoE, Qwen2-57B-A14B), as transformers' `Qwen2MoeForCausalLM`.
    /// - Layers: MoE where `i ∉ mlp_only_layers` and `(i + 1) % decoder_sparse_step == 0`, else a
    ///   dense MLP of `intermediate_size`.
    /// - Router: softmax over all experts in float32, top-k, renormalised only with `norm_topk_prob`.
    /// - Shared expert: always, `shared_expert_intermediate_size` wide, scaled by σ(h·shared_expert_gate).
    /// - Attention: biases on q, k, v (`qkv_bias`, default true), none on o; no QK-norm; scale 1/√head_dim.
    /// - Sliding window only with `use_sliding_window`: on the layers `layer_types` marks, else on the
    ///   even layers below `max_window_layers` (default 28).
    /// - Defaults: θ 10,000, ε 1e-6, context 32,768, 60 experts top-4, sizes 5632 / 1408 / 5632.
    static let qwen2MoE = ModelFamily(name: "Qwen2-MoE", modelTypes: ["qwen2_moe"], tensors: .qwen) { r in
        var c = try r.decoder(ropeTheta: 10000, rmsNormEps: 1e-6, maxPositions: 32768)
        c.intermediateSize = try r.int("intermediate_size", default: 5632)
        c.moeIntermediateSize = try r.int("moe_intermediate_size", default: 1408)
        c.sharedExpertIntermediateSize = try r.int("shared_expert_intermediate_size", default: 5632)
        c.numExperts = try r.int("num_experts", default: 60)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 4)
        c.normTopkProb = try r.bool("norm_topk_prob", default: false)
        c.mlpOnlyLayers = try r.ints("mlp_only_layers")
        c.decoderSparseStep = try r.int("decoder_sparse_step", default: 1)
        c.attentionBias = try r.bool("qkv_bias", default: true)
        let maxWindowLayers = try r.int("max_window_layers", default: 28)
        try r.slidingWindow(into: &c, switchedBy: "use_sliding_window") { c in
            (0..<c.numHiddenLayers).filter { ($0 + 1) % 2 != 0 && $0 < maxWindowLayers }
        }
        c.router = .softmaxThenTopK
        c.qkNorm = .none
        c.sharedExpert = .gated
        return c
    }
}
