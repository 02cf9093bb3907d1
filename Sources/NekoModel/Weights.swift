import Foundation
import NekoKernels

/// SwiGLU MLP weights: `down(silu(gate(h)) * up(h))`.
struct MLPWeights {
    var gate: WeightMatrix  // (intermediate, hidden)
    var up: WeightMatrix    // (intermediate, hidden)
    var down: WeightMatrix  // (hidden, intermediate)
}

struct AttentionWeights {
    var q: WeightMatrix  // (heads * headDim, hidden)
    var k: WeightMatrix  // (kvHeads * headDim, hidden)
    var v: WeightMatrix  // (kvHeads * headDim, hidden)
    var o: WeightMatrix  // (hidden, heads * headDim)
    var qBias: [Float]?, kBias: [Float]?, vBias: [Float]?
    var qNorm: [Float]?, kNorm: [Float]?  // (headDim), only when the checkpoint has them
}

struct MoEWeights {
    var router: WeightMatrix       // (experts, hidden)
    var experts: [MLPWeights]      // moe_intermediate_size each
    var shared: MLPWeights?        // shared_expert_intermediate_size
    var sharedGate: [Float]?       // (hidden): sigmoid(h · w) scales the shared expert
}

enum FeedForward {
    case dense(MLPWeights)
    case moe(MoEWeights)
}

struct LayerWeights {
    var inputNorm: [Float]          // (hidden)
    var postAttentionNorm: [Float]  // (hidden)
    var attention: AttentionWeights
    var feedForward: FeedForward
}

struct ModelWeights {
    var embed: WeightMatrix   // (vocab, hidden)
    var layers: [LayerWeights]
    var norm: [Float]         // (hidden)
    var lmHead: WeightMatrix  // (vocab, hidden); the embedding itself when tied
    var tied: Bool
}

/// All tensors of a checkpoint by name, with bookkeeping of which ones the model used.
struct TensorStore {
    let directory: String
    private(set) var tensors: [String: TensorInfo] = [:]
    private var used: Set<String> = []
    private var ignored: Set<String> = []

    init(directory: String, files: [SafetensorsFile]) throws {
        self.directory = directory
        for file in files {
            for name in file.names {
                if let other = tensors[name] {
                    throw ModelError.tensor(file: file.path, tensor: name,
                                            message: "also stored in \(other.file)")
                }
                tensors[name] = file.tensors[name]
            }
        }
    }

    func has(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor `name` with exactly `shape`; marks it used.
    mutating func take(_ name: String, _ shape: [Int]) throws -> TensorInfo {
        guard let t = tensors[name] else {
            throw ModelError.missingTensor(directory: directory, tensor: name, expectedShape: shape)
        }
        guard t.shape == shape else {
            throw ModelError.tensor(file: t.file, tensor: name,
                                    message: "has shape \(t.shape), expected \(shape)")
        }
        used.insert(name)
        return t
    }

    mutating func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let t = try take(name, [rows, cols])
        return WeightMatrix(base: t.data, dtype: t.dtype, rows: rows, cols: cols)
    }

    /// A 1-D tensor converted to float32 (norms, biases: small).
    mutating func vector(_ name: String, count: Int) throws -> [Float] {
        let t = try take(name, [count])
        return WeightMatrix(base: t.data, dtype: t.dtype, rows: 1, cols: count).toFloatArray()
    }

    /// Marks a tensor as deliberately ignored.
    mutating func ignore(_ name: String) { ignored.insert(name) }

    /// Tensors nobody asked for, in a stable order.
    var unused: [TensorInfo] {
        tensors.values.filter { !used.contains($0.name) && !ignored.contains($0.name) }.sorted { $0.name < $1.name }
    }

    /// Total elements of the tensors used.
    var usedElements: Int { used.reduce(0) { $0 + (tensors[$1]?.elementCount ?? 0) } }
}

extension ModelWeights {
    /// Builds the weights from the tensors, checking every name and shape against `config`.
    /// Per-expert tensors and the fused `experts.gate_up_proj` / `experts.down_proj` layout are
    /// both accepted. Optional parts (QK-norm, shared expert) follow the tensors present.
    static func load(config: ModelConfig, store: inout TensorStore,
                     notices: inout [String]) throws -> ModelWeights {
        let h = config.hiddenSize, hd = config.headDim
        let qDim = config.numAttentionHeads * hd, kvDim = config.numKeyValueHeads * hd
        let embed = try store.matrix("model.embed_tokens.weight", rows: config.vocabSize, cols: h)
        var layers: [LayerWeights] = []
        for i in 0..<config.numHiddenLayers {
            let p = "model.layers.\(i)."
            var attention = AttentionWeights(
                q: try store.matrix(p + "self_attn.q_proj.weight", rows: qDim, cols: h),
                k: try store.matrix(p + "self_attn.k_proj.weight", rows: kvDim, cols: h),
                v: try store.matrix(p + "self_attn.v_proj.weight", rows: kvDim, cols: h),
                o: try store.matrix(p + "self_attn.o_proj.weight", rows: h, cols: qDim))
            if config.attentionBias {
                attention.qBias = try store.vector(p + "self_attn.q_proj.bias", count: qDim)
                attention.kBias = try store.vector(p + "self_attn.k_proj.bias", count: kvDim)
                attention.vBias = try store.vector(p + "self_attn.v_proj.bias", count: kvDim)
            }
            if store.has(p + "self_attn.q_norm.weight") || store.has(p + "self_attn.k_norm.weight") {
                attention.qNorm = try store.vector(p + "self_attn.q_norm.weight", count: hd)
                attention.kNorm = try store.vector(p + "self_attn.k_norm.weight", count: hd)
            }
            let feedForward = try loadFeedForward(layer: i, config: config, store: &store)
            layers.append(LayerWeights(
                inputNorm: try store.vector(p + "input_layernorm.weight", count: h),
                postAttentionNorm: try store.vector(p + "post_attention_layernorm.weight", count: h),
                attention: attention, feedForward: feedForward))
        }
        let norm = try store.vector("model.norm.weight", count: h)
        let hasHead = store.has("lm_head.weight")
        let tied: Bool
        switch (config.tieWordEmbeddings, hasHead) {
        case (true?, true):
            store.ignore("lm_head.weight")
            notices.append("lm_head.weight is ignored: config.json sets tie_word_embeddings")
            tied = true
        case (true?, false), (nil, false): tied = true
        case (false?, _), (nil, true): tied = false
        }
        let lmHead = tied ? embed : try store.matrix("lm_head.weight", rows: config.vocabSize, cols: h)
        if let extra = store.unused.first {
            throw ModelError.unexpectedTensor(file: extra.file, tensor: extra.name)
        }
        return ModelWeights(embed: embed, layers: layers, norm: norm, lmHead: lmHead, tied: tied)
    }

    static func loadMLP(_ prefix: String, hidden: Int, intermediate: Int,
                        store: inout TensorStore) throws -> MLPWeights {
        MLPWeights(gate: try store.matrix(prefix + "gate_proj.weight", rows: intermediate, cols: hidden),
                   up: try store.matrix(prefix + "up_proj.weight", rows: intermediate, cols: hidden),
                   down: try store.matrix(prefix + "down_proj.weight", rows: hidden, cols: intermediate))
    }

    static func loadFeedForward(layer i: Int, config: ModelConfig,
                                store: inout TensorStore) throws -> FeedForward {
        let p = "model.layers.\(i).mlp.", h = config.hiddenSize
        let filesSayMoE = store.has(p + "gate.weight")
        if config.isDense(layer: i) {
            if filesSayMoE {
                throw ModelError.tensor(file: store.tensors[p + "gate.weight"]!.file, tensor: p + "gate.weight",
                    message: "layer \(i) has an MoE router, but config.json makes layer \(i) dense"
                        + " (mlp_only_layers, first_k_dense_replace, decoder_sparse_step, num_experts)")
            }
            return .dense(try loadMLP(p, hidden: h, intermediate: config.intermediateSize ?? 0, store: &store))
        }
        guard filesSayMoE else {
            if let dense = store.tensors[p + "gate_proj.weight"] {
                throw ModelError.tensor(file: dense.file, tensor: dense.name,
                    message: "layer \(i) has a dense MLP, but config.json makes layer \(i) MoE")
            }
            throw ModelError.missingTensor(directory: store.directory, tensor: p + "gate.weight",
                                           expectedShape: [config.numExperts, h])
        }
        let e = config.numExperts, inter = config.moeIntermediateSize ?? 0
        let router = try store.matrix(p + "gate.weight", rows: e, cols: h)
        var experts: [MLPWeights] = []
        if store.has(p + "experts.gate_up_proj") {
            // transformers 5's fused layout: gate rows first, then up rows, per expert.
            let gateUp = try store.take(p + "experts.gate_up_proj", [e, 2 * inter, h])
            let down = try store.take(p + "experts.down_proj", [e, h, inter])
            let gu = WeightMatrix(base: gateUp.data, dtype: gateUp.dtype, rows: e * 2 * inter, cols: h)
            let dn = WeightMatrix(base: down.data, dtype: down.dtype, rows: e * h, cols: inter)
            for j in 0..<e {
                experts.append(MLPWeights(gate: gu.rows(j * 2 * inter, count: inter),
                                          up: gu.rows(j * 2 * inter + inter, count: inter),
                                          down: dn.rows(j * h, count: h)))
            }
        } else {
            for j in 0..<e {
                experts.append(try loadMLP(p + "experts.\(j).", hidden: h, intermediate: inter, store: &store))
            }
        }
        var moe = MoEWeights(router: router, experts: experts)
        if let sharedGate = store.tensors[p + "shared_expert.gate_proj.weight"] {
            // The config may not say the shared expert's size; its tensors decide then.
            let size = config.sharedExpertIntermediateSize ?? sharedGate.shape.first ?? 0
            moe.shared = try loadMLP(p + "shared_expert.", hidden: h, intermediate: size, store: &store)
            moe.sharedGate = try store.take(p + "shared_expert_gate.weight", [1, h]).floats()
        }
        return .moe(moe)
    }
}

extension TensorInfo {
    func floats() -> [Float] {
        WeightMatrix(base: data, dtype: dtype, rows: 1, cols: elementCount).toFloatArray()
    }
}
