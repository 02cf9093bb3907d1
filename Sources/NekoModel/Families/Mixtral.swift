extension ModelFamily {
    /// Mixtral (`mixtral`: Mixtral-8x7B, 8x22B), as transformers' `MixtralForCausalLM`.
    /// - Every layer MoE; `intermediate_size` is one expert's width. No shared expert, no biases,
    ///   no QK-norm.
    /// - Router: softmax over all experts in float32, top-k, always renormalised over the k (the same
    ///   weights as a softmax over the k chosen logits).
    /// - Sliding window when `sliding_window` is set (not null): every layer, a token sees itself and
    ///   the `sliding_window − 1` before it.
    /// - Tensors as the Hub keeps them: `block_sparse_moe.gate` (the router) and
    ///   `block_sparse_moe.experts.N.{w1 (gate), w3 (up), w2 (down)}`.
    /// - Spellings: `num_local_experts` or `num_experts`.
    /// - Defaults: θ 1e6, ε 1e-5, context 131,072, 8 experts top-2, width 14336.
    static let mixtral = ModelFamily(name: "Mixtral", modelTypes: ["mixtral"], tensors: .mixtral) { r in
        var c = try r.decoder(ropeTheta: 1e6, rmsNormEps: 1e-5, maxPositions: 4096 * 32)
        c.moeIntermediateSize = try r.int("intermediate_size", default: 14336)
        c.numExperts = try r.int("num_local_experts", or: ["num_experts"], default: 8)
        c.numExpertsPerTok = try r.int("num_experts_per_tok", default: 2)
        c.normTopkProb = true
        try r.slidingWindow(into: &c, switchedBy: nil) { c in Array(0..<c.numHiddenLayers) }
        c.router = .softmaxThenTopK
        c.qkNorm = .none
        c.sharedExpert = .none
        return c
    }
}

extension TensorLayout {
    /// Mixtral's Hub layout.
    static let mixtral: TensorLayout = {
        var t = TensorLayout.qwen
        t.router = "model.layers.{L}.block_sparse_moe.gate.weight"
        let e = "model.layers.{L}.block_sparse_moe.experts.{E}."
        t.experts = [.separate(MLPNames(gate: e + "w1.weight", up: e + "w3.weight", down: e + "w2.weight"))]
        return t
    }()
}
