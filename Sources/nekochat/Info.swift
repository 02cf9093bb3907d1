import ArgumentParser
import Foundation
import NekoChat
import NekoModel

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Summarise a model: where it was loaded from, its config and size.")

    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Print one JSON document.") var json = false

    func run() throws {
        let location = try ModelLocation.resolve(modelOptions.model)
        let bundle = try modelOptions.loadBundle(location)
        let model = bundle.model, c = model.config
        let path = URL(fileURLWithPath: bundle.directory).standardizedFileURL.path
        let source = location.source
        let moe = c.moeLayers, dense = (0..<c.numHiddenLayers).filter { c.isDense(layer: $0) }
        if json {
            try Output.json(.object([
                ("path", .string(path)), ("source", .string(source)),
                ("parameters", .int(model.parameterCount)),
                ("active_parameters", .int(model.activeParameterCount)),
                ("bytes_on_disk", .int(model.bytesOnDisk)), ("dtype", .string(model.dtype.rawValue)),
                ("files", .array(model.files.map { .string(URL(fileURLWithPath: $0.path).lastPathComponent) })),
                ("tied_lm_head", .bool(model.hasTiedHead)),
                ("dense_layers", .ints(dense)), ("moe_layers", .ints(moe)),
                ("eos_token_ids", .ints(bundle.eosTokenIds.sorted())),
                ("config", configJSON(c)),
            ]))
            return
        }
        let millions = { (n: Int) in String(format: "%.1fM", Double(n) / 1e6) }
        Output.out("""
            model:       \(path) (from \(source))
            parameters:  \(model.parameterCount) (\(millions(model.parameterCount))), \
            active per token \(model.activeParameterCount) (\(millions(model.activeParameterCount)))
            on disk:     \(model.bytesOnDisk) bytes in \(model.files.count) file(s), \(model.dtype.rawValue)
            layers:      \(c.numHiddenLayers) (dense \(dense), MoE \(moe.count))
            hidden:      \(c.hiddenSize), heads \(c.numAttentionHeads) q / \(c.numKeyValueHeads) kv × \(c.headDim)
            experts:     \(c.numExperts), top-\(c.numExpertsPerTok), norm_topk_prob \(c.normTopkProb)
            vocab:       \(c.vocabSize), context \(c.maxPositionEmbeddings), rope θ \(c.ropeTheta)
            lm head:     \(model.hasTiedHead ? "tied to the embedding" : "separate")
            eos ids:     \(bundle.eosTokenIds.sorted())

            """)
    }

    func configJSON(_ c: ModelConfig) -> JSON {
        var fields: [(String, JSON)] = [
            ("hidden_size", .int(c.hiddenSize)), ("num_hidden_layers", .int(c.numHiddenLayers)),
            ("num_attention_heads", .int(c.numAttentionHeads)), ("num_key_value_heads", .int(c.numKeyValueHeads)),
            ("head_dim", .int(c.headDim)),
        ]
        if let v = c.intermediateSize { fields.append(("intermediate_size", .int(v))) }
        if let v = c.moeIntermediateSize { fields.append(("moe_intermediate_size", .int(v))) }
        if let v = c.sharedExpertIntermediateSize { fields.append(("shared_expert_intermediate_size", .int(v))) }
        fields += [
            ("num_experts", .int(c.numExperts)), ("num_experts_per_tok", .int(c.numExpertsPerTok)),
            ("norm_topk_prob", .bool(c.normTopkProb)), ("mlp_only_layers", .ints(c.mlpOnlyLayers)),
            ("first_k_dense_replace", .int(c.firstKDenseReplace)), ("decoder_sparse_step", .int(c.decoderSparseStep)),
            ("rms_norm_eps", .double(c.rmsNormEps)), ("rope_theta", .double(c.ropeTheta)),
            ("max_position_embeddings", .int(c.maxPositionEmbeddings)), ("vocab_size", .int(c.vocabSize)),
            ("tie_word_embeddings", c.tieWordEmbeddings.map { .bool($0) } ?? .null),
            ("attention_bias", .bool(c.attentionBias)),
            ("bos_token_id", c.bosTokenId.map { .int($0) } ?? .null), ("eos_token_id", .ints(c.eosTokenIds)),
        ]
        return .object(fields)
    }
}
