import ArgumentParser
import Foundation
import NekoChat
import NekoModel

extension WeightFormat: ExpressibleByArgument {}

/// `--model`, `--threads` and `--weights`, shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "A Hugging Face style model directory (default: $NEKOCHAT_MODEL).")
    var model: String?

    @Option(help: "Worker threads (default: the number of cores).")
    var threads: Int?

    @Option(help: "Weights: bf16 (as stored), q8 or q4 (quantised at first use and cached).")
    var weights: WeightFormat = .bf16

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    var threadCount: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }

    /// Loads the bundle (from `location`, else resolving `--model`) and prints the loader's notices
    /// and the first quantisation's progress to stderr.
    func loadBundle(_ location: ModelLocation? = nil) throws -> ModelBundle {
        var shown = -1
        let bundle = try ModelBundle(directory: try (location ?? ModelLocation.resolve(model)).directory,
                                     weights: weights) { p in
            let percent = Int(p.fraction * 100)
            guard percent != shown else { return }
            shown = percent
            Output.err("\rquantising the weights to \(p.format.rawValue): \(percent)%" + (percent == 100 ? "\n" : ""))
        }
        for notice in bundle.model.notices { Output.err("note: \(notice)\n") }
        return bundle
    }
}

/// The sampling flags; unset ones fall back to generation_config.json, then llama.cpp's defaults.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Temperature (0 = greedy).") var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Top-k (0 = off).") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Top-p (1 = off).") var topP: Float?
    @Option(name: .customLong("min-p"), help: "Min-p (0 = off).") var minP: Float?
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty over the last 64 tokens (1 = off).")
    var repeatPenalty: Float?
    @Option(help: "Random seed (default: random).") var seed: UInt64?

    func validate() throws {
        if let temperature, !(temperature >= 0) { throw ValidationError("--temperature must be ≥ 0") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if let minP, !(minP >= 0 && minP <= 1) { throw ValidationError("--min-p must be in [0, 1]") }
        if let repeatPenalty, !(repeatPenalty > 0) { throw ValidationError("--repeat-penalty must be > 0") }
    }

    func parameters(_ generation: GenerationConfig) -> SamplingParameters {
        var p = generation.apply(to: SamplingParameters())
        if let temperature { p.temperature = temperature }
        if let topK { p.topK = topK }
        if let topP { p.topP = topP }
        if let minP { p.minP = minP }
        if let repeatPenalty { p.repeatPenalty = repeatPenalty }
        p.seed = seed
        return p
    }
}

/// Parses "1,2,3" (spaces allowed) into token ids.
func parseIds(_ text: String, flag: String) throws -> [Int] {
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    var ids: [Int] = []
    for part in parts where !part.isEmpty {
        guard let id = Int(part) else { throw ValidationError("\(flag): '\(part)' is not a token id") }
        ids.append(id)
    }
    guard !ids.isEmpty else { throw ValidationError("\(flag): no token ids") }
    return ids
}

/// Routing records as CLI.md's JSON: per token, per MoE layer (ROUTING.md's record: experts,
/// weights, `shared_gate` when the layer has one, `router_entropy` in bits).
func routingJSON(_ record: RoutingRecord) -> JSON {
    .array((0..<record.tokens).map { t in
        .array(record.moeLayers.enumerated().map { slot, layer in
            let choice = record.choice(token: t, slot: slot)
            var fields: [(String, JSON)] = [("layer", .int(layer)), ("experts", .ints(choice.experts)),
                                            ("weights", .floats(choice.weights))]
            if let gate = choice.sharedGate { fields.append(("shared_gate", .float(gate))) }
            fields.append(("router_entropy", .float(choice.routerEntropy)))
            return .object(fields)
        })
    })
}
