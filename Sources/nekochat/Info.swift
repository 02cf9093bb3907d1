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
                ("hub_model", location.hub.map { .string($0.model.repo) } ?? .null),
                ("hub_commit", location.hub.map { .string($0.commit) } ?? .null),
                ("family", .string(c.family)), ("model_type", c.modelType.map { .string($0) } ?? .null),
                ("router", .string(c.router.rawValue)),
                ("qk_norm", .string(model.hasQKNorm ? (c.qkNorm == .wholeProjection ? "whole projection" : "per head") : "none")),
                ("shared_expert", .string(model.sharedExpert)),
                ("sliding_window", c.slidingWindow.map { .int($0) } ?? .null), ("sliding_layers", .ints(c.slidingWindow == nil ? [] : c.slidingLayers)),
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
        var attention = model.hasQKNorm ? "QK-norm " + (c.qkNorm == .wholeProjection ? "over the whole projection" : "per head") : "no QK-norm"
        if c.attentionBias { attention += c.outputBias ? ", q/k/v/o biases" : ", q/k/v biases" }
        if let clip = c.clipQKV { attention += ", q/k/v clipped to ±\(clip)" }
        if let scale = c.attentionScale { attention += ", scale \(scale)" }
        if let window = c.slidingWindow {
            let layers = c.slidingLayers.count == c.numHiddenLayers ? "every layer" : "layers \(c.slidingLayers)"
            attention += ", sliding window \(window) on \(layers)"
        }
        var scaling: [String] = []
        if c.embeddingMultiplier != 1 { scaling.append("embedding ×\(c.embeddingMultiplier)") }
        if c.residualMultiplier != 1 { scaling.append("residual ×\(c.residualMultiplier)") }
        if c.logitsScaling != 1 { scaling.append("logits ÷\(c.logitsScaling)") }
        Output.out("""
            model:       \(path) (from \(source)\(location.hub.map { ": \($0.model.repo) at commit \($0.commit)" } ?? ""))
            family:      \(c.family)\(c.modelType.map { " (model_type \($0))" } ?? " (config.json names no model_type)")
            parameters:  \(model.parameterCount) (\(millions(model.parameterCount))), \
            active per token \(model.activeParameterCount) (\(millions(model.activeParameterCount)))
            on disk:     \(model.bytesOnDisk) bytes in \(model.files.count) file(s), \(model.dtype.rawValue)
            layers:      \(c.numHiddenLayers) (dense \(dense), MoE \(moe.count))
            hidden:      \(c.hiddenSize), heads \(c.numAttentionHeads) q / \(c.numKeyValueHeads) kv × \(c.headDim)
            experts:     \(c.numExperts), top-\(c.numExpertsPerTok), \(c.router.rawValue)\(c.router == .softmaxThenTopK ? ", norm_topk_prob \(c.normTopkProb)" : ""); shared expert: \(model.sharedExpert)
            attention:   \(attention)\(scaling.isEmpty ? "" : "\nscaling:     " + scaling.joined(separator: ", "))
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
