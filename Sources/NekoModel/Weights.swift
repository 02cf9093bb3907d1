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
    var oBias: [Float]?                   // (hidden)
    /// QK-norm weights, as the family's rule says: (headDim) per head, or (heads·headDim) and
    /// (kvHeads·headDim) over the whole projections; nil without QK-norm.
    var qNorm: [Float]?, kNorm: [Float]?
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
    /// Builds the weights from the tensors, with the names of `config`'s family and every shape
    /// checked against `config`. Optional parts (NekoMind's QK-norm and shared expert) follow the
    /// tensors present; every tensor left over is an error.
    static func load(config: ModelConfig, store: inout TensorStore,
                     notices: inout [String]) throws -> ModelWeights {
        let names = ModelFamily.of(config).tensors
        let h = config.hiddenSize, hd = config.headDim
        let qDim = config.numAttentionHeads * hd, kvDim = config.numKeyValueHeads * hd
        let embed = try store.matrix(names.embed, rows: config.vocabSize, cols: h)
        var layers: [LayerWeights] = []
        for i in 0..<config.numHiddenLayers {
            func name(_ n: String) -> String { n.tensor(layer: i) }
            var attention = AttentionWeights(
                q: try store.matrix(name(names.q) + ".weight", rows: qDim, cols: h),
                k: try store.matrix(name(names.k) + ".weight", rows: kvDim, cols: h),
                v: try store.matrix(name(names.v) + ".weight", rows: kvDim, cols: h),
                o: try store.matrix(name(names.o) + ".weight", rows: h, cols: qDim))
            if config.attentionBias {
                attention.qBias = try store.vector(name(names.q) + ".bias", count: qDim)
                attention.kBias = try store.vector(name(names.k) + ".bias", count: kvDim)
                attention.vBias = try store.vector(name(names.v) + ".bias", count: kvDim)
            }
            if config.outputBias { attention.oBias = try store.vector(name(names.o) + ".bias", count: h) }
            let qNorm = name(names.qNorm), kNorm = name(names.kNorm)
            switch config.qkNorm {
            case .none:
                break
            case .perHeadWhenPresent where !store.has(qNorm) && !store.has(kNorm):
                break
            case .perHead, .perHeadWhenPresent:
                attention.qNorm = try store.vector(qNorm, count: hd)
                attention.kNorm = try store.vector(kNorm, count: hd)
            case .wholeProjection:
                attention.qNorm = try store.vector(qNorm, count: qDim)
                attention.kNorm = try store.vector(kNorm, count: kvDim)
            }
            let feedForward = try loadFeedForward(layer: i, config: config, names: names, store: &store)
            layers.append(LayerWeights(
                inputNorm: try store.vector(name(names.inputNorm), count: h),
                postAttentionNorm: try store.vector(name(names.postAttentionNorm), count: h),
                attention: attention, feedForward: feedForward))
        }
        let norm = try store.vector(names.finalNorm, count: h)
        let hasHead = store.has(names.lmHead)
        let tied: Bool
        switch (config.tieWordEmbeddings, hasHead) {
        case (true?, true):
            store.ignore(names.lmHead)
            notices.append("\(names.lmHead) is ignored: config.json sets tie_word_embeddings")
            tied = true
        case (true?, false), (nil, false): tied = true
        case (false?, _), (nil, true): tied = false
        }
        let lmHead = tied ? embed : try store.matrix(names.lmHead, rows: config.vocabSize, cols: h)
        if let extra = store.unused.first {
            throw ModelError.unexpectedTensor(file: extra.file, tensor: extra.name)
        }
        return ModelWeights(embed: embed, layers: layers, norm: norm, lmHead: lmHead, tied: tied)
    }

    static func loadMLP(_ names: MLPNames, layer: Int, expert: Int? = nil, hidden: Int, intermediate: Int,
                        store: inout TensorStore) throws -> MLPWeights {
        MLPWeights(gate: try store.matrix(names.gate.tensor(layer: layer, expert: expert), rows: intermediate, cols: hidden),
                   up: try store.matrix(names.up.tensor(layer: layer, expert: expert), rows: intermediate, cols: hidden),
                   down: try store.matrix(names.down.tensor(layer: layer, expert: expert), rows: hidden, cols: intermediate))
    }

    static func loadFeedForward(layer i: Int, config: ModelConfig, names: TensorLayout,
                                store: inout TensorStore) throws -> FeedForward {
        let h = config.hiddenSize
        let routerName = names.router.tensor(layer: i)
        let filesSayMoE = store.has(routerName)
        if config.isDense(layer: i) {
            if filesSayMoE {
                throw ModelError.tensor(file: store.tensors[routerName]!.file, tensor: routerName,
                    message: "layer \(i) has an MoE router, but config.json makes layer \(i) dense"
                        + " (mlp_only_layers, first_k_dense_replace, decoder_sparse_step, num_experts)")
            }
            return .dense(try loadMLP(names.dense, layer: i, hidden: h, intermediate: config.intermediateSize ?? 0, store: &store))
        }
        guard filesSayMoE else {
            if let dense = store.tensors[names.dense.gate.tensor(layer: i)] {
                throw ModelError.tensor(file: dense.file, tensor: dense.name,
                    message: "layer \(i) has a dense MLP, but config.json makes layer \(i) MoE")
            }
            throw ModelError.missingTensor(directory: store.directory, tensor: routerName,
                                           expectedShape: [config.numExperts, h])
        }
        let e = config.numExperts, inter = config.moeIntermediateSize ?? 0
        let router = try store.matrix(routerName, rows: e, cols: h)
        // The first layout whose first tensor the files hold; the last one otherwise (its error names it).
        let layout = names.experts.first { layout in
            switch layout {
            case let .separate(m): store.has(m.gate.tensor(layer: i, expert: 0))
            case let .fused(gateUp, _): store.has(gateUp.tensor(layer: i))
            }
        } ?? names.experts.last!
        var experts: [MLPWeights] = []
        switch layout {
        case let .separate(m):
            for j in 0..<e {
                experts.append(try loadMLP(m, layer: i, expert: j, hidden: h, intermediate: inter, store: &store))
            }
        case let .fused(gateUpName, downName):
            // Each expert's gate rows first, then its up rows (transformers' fused layout).
            let gateUp = try store.take(gateUpName.tensor(layer: i), [e, 2 * inter, h])
            let down = try store.take(downName.tensor(layer: i), [e, h, inter])
            let gu = WeightMatrix(base: gateUp.data, dtype: gateUp.dtype, rows: e * 2 * inter, cols: h)
            let dn = WeightMatrix(base: down.data, dtype: down.dtype, rows: e * h, cols: inter)
            for j in 0..<e {
                experts.append(MLPWeights(gate: gu.rows(j * 2 * inter, count: inter),
                                          up: gu.rows(j * 2 * inter + inter, count: inter),
                                          down: dn.rows(j * h, count: h)))
            }
        }
        var moe = MoEWeights(router: router, experts: experts)
        let sharedGateName = names.sharedExpert.gate.tensor(layer: i)
        let hasShared: Bool
        switch config.sharedExpert {
        case .none: hasShared = false
        case .gatedWhenPresent: hasShared = store.has(sharedGateName)
        case .gated, .ungated: hasShared = true
        }
        if hasShared {
            // The config may not say the shared expert's size; its tensors decide then.
            let size = config.sharedExpertIntermediateSize ?? store.tensors[sharedGateName]?.shape.first ?? 0
            moe.shared = try loadMLP(names.sharedExpert, layer: i, hidden: h, intermediate: size, store: &store)
            if config.sharedExpert != .ungated {
                moe.sharedGate = try store.take(names.sharedExpertGate.tensor(layer: i), [1, h]).floats()
            }
        }
        return .moe(moe)
    }
}

extension TensorInfo {
    func floats() -> [Float] {
        WeightMatrix(base: data, dtype: dtype, rows: 1, cols: elementCount).toFloatArray()
    }
}
