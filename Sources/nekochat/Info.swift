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

    /// config.json's fields as the model read them (defaults applied, spellings resolved).
    func configJSON(_ c: ModelConfig) -> JSON {
        .object(c.fields.map { ($0.name, $0.value) })
    }
}
