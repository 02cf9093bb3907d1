import ArgumentParser
import Foundation
import NekoChat
import NekoModel
import NekoRemote

extension WeightFormat: ExpressibleByArgument {}
extension KVPrecision: ExpressibleByArgument {}

/// `--model`, `--threads` and `--weights`, shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(help: "A model folder (Hugging Face layout), or a Hub id ORG/NAME[@REVISION] found in the Hugging Face cache or downloaded into it (default: $NEKOCHAT_MODEL, else the built-in demo).")
    var model: String?

    @Option(help: "Worker threads (default: the number of cores).")
    var threads: Int?

    @Option(help: "Weights: bf16 (as stored), q8 or q4 (quantised at first use and cached).")
    var weights: WeightFormat = .bf16

    @Option(name: .customLong("kv-cache"),
            help: "KV cache precision: f32, f16 or bf16 (default: f16 for chat, generate, serve and bench; f32, exact, for score, routing and ablate).")
    var kvCache: KVPrecision?

    func validate() throws {
        if let threads, !(1...256).contains(threads) { throw ValidationError("--threads must be from 1 to 256") }
    }

    var threadCount: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }

    /// The KV cache precision asked for, else this command's default.
    func kvPrecision(default value: KVPrecision) -> KVPrecision { kvCache ?? value }

    /// Loads the bundle (from `location`, else resolving `--model`) and prints the loader's notices
    /// and the first quantisation's progress to stderr.
    func loadBundle(_ location: ModelLocation? = nil) throws -> ModelBundle {
        var shown = -1
        let location = try location ?? ModelLocation.resolve(model)
        let bundle = try ModelBundle(directory: location.directory, weights: weights, weightCache: location.weightCache) { p in
            let percent = Int(p.fraction * 100)
            guard percent != shown else { return }
            shown = percent
            Output.err("\rquantising the weights to \(p.format.rawValue): \(percent)%" + (percent == 100 ? "\n" : ""))
        }
        for notice in bundle.model.notices { Output.err("note: \(notice)\n") }
        if !location.isBuiltInDemo, location.hub == nil { LocalModels.remember(bundle.directory) }
        return bundle
    }
}

/// The sampling flags; unset ones fall back to generation_config.json, then llama.cpp's defaults.
/// Their ranges are the chat's `/set` ranges (`SettingSpec`), checked in one place.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Temperature (0 = greedy).") var temperature: Float?
    @Option(name: .customLong("top-k"), help: "Top-k (0 = off).") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Top-p (1 = off).") var topP: Float?
    @Option(name: .customLong("min-p"), help: "Min-p (0 = off).") var minP: Float?
    @Option(name: .customLong("repeat-penalty"), help: "Repetition penalty over the last 64 tokens (1 = off).")
    var repeatPenalty: Float?
    @Option(help: "Random seed (default: random).") var seed: UInt64?

    /// The flags given, as (setting name, value) for `SettingSpec`.
    var given: [(String, String)] {
        var out: [(String, String)] = []
        if let temperature { out.append(("temperature", String(temperature))) }
        if let topK { out.append(("top_k", String(topK))) }
        if let topP { out.append(("top_p", String(topP))) }
        if let minP { out.append(("min_p", String(minP))) }
        if let repeatPenalty { out.append(("repeat_penalty", String(repeatPenalty))) }
        if let seed { out.append(("seed", String(seed))) }
        return out
    }

    func validate() throws {
        var s = ChatSettings()
        for (name, value) in given { try SettingSpec.apply(name, value, to: &s, asFlag: true) }
    }

    /// The settings these flags make over `generation_config.json`'s defaults.
    func settings(_ generation: GenerationConfig, maxTokens: Int? = nil) throws -> ChatSettings {
        try settings(over: ChatSettings(sampling: generation.apply(to: SamplingParameters())), maxTokens: maxTokens)
    }

    /// The settings these flags make over a server's defaults (nekochat's server says them), or
    /// over llama.cpp's.
    func settings(_ remote: RemoteBackend, maxTokens: Int? = nil) throws -> ChatSettings {
        var base = remote.serverDefaults ?? ChatSettings(sampling: GenerationConfig().apply(to: SamplingParameters()))
        base.stop = []
        return try settings(over: base, maxTokens: maxTokens)
    }

    private func settings(over base: ChatSettings, maxTokens: Int?) throws -> ChatSettings {
        var s = base
        for (name, value) in given { try SettingSpec.apply(name, value, to: &s, asFlag: true) }
        if let maxTokens { try SettingSpec.apply("max_tokens", String(maxTokens), to: &s, asFlag: true) }
        return s
    }

    func parameters(_ generation: GenerationConfig) -> SamplingParameters {
        (try? settings(generation).sampling) ?? generation.apply(to: SamplingParameters())
    }
}

extension SettingSpec {
    /// Sets `name` from a flag's value; a bad value is a usage error naming the flag.
    static func apply(_ name: String, _ value: String, to s: inout ChatSettings, asFlag: Bool) throws {
        guard let spec = named(name) else { throw ValidationError("unknown setting \(name)") }
        do { try spec.set(&s, value) } catch {
            throw ValidationError("\(spec.flag) must be \(spec.accepts); got \(value)")
        }
    }
}

/// `--ctx-size`, `--max-tokens` and `--stop`, checked as every command checks them
/// (`ChatSettings`' limits, the `max_tokens` and `stop` settings of `/set`).
func checkLimits(ctxSize: Int?, maxTokens: Int?, stop: [String]) throws {
    let sizes = ChatSettings.contextSizes
    if let ctxSize, !sizes.contains(ctxSize) {
        throw ValidationError("--ctx-size must be from \(sizes.lowerBound) to \(sizes.upperBound)")
    }
    var s = ChatSettings()
    if let maxTokens { try SettingSpec.apply("max_tokens", String(maxTokens), to: &s, asFlag: true) }
    _ = try stopStrings(stop)
}

/// The stop strings that `--stop` flags give, read as `/set stop` reads them ("none" clears).
func stopStrings(_ flags: [String]) throws -> [String] {
    var s = ChatSettings()
    for text in flags { try SettingSpec.apply("stop", text, to: &s, asFlag: true) }
    return s.stop
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

/// Routing records as Sources/nekochat/README.md's JSON: per token, per MoE layer (Sources/NekoRouting/README.md's record: experts,
/// weights, `shared_gate` when the layer has one, `router_entropy` in bits).
func routingJSON(_ record: RoutingRecord) -> JSON {
    RoutingStep.recordJSON((0..<record.tokens).map { RoutingStep(record: record, token: $0, id: -1, text: "", isPrompt: false) })
}

/// `--server URL [--remote-model NAME] [--api-key-env VAR]`: the model runs on an
/// OpenAI-compatible server instead of here.
struct RemoteOptions: ParsableArguments {
    @Option(help: "An OpenAI-compatible server to use instead of a local model (http://host:port or …/v1).") var server: String?
    @Option(name: .customLong("remote-model"), help: "The server's model to use (default: its first).") var remoteModel: String?
    @Option(name: .customLong("api-key-env"), help: "Send `Authorization: Bearer $VAR` (the key is read from this environment variable).")
    var apiKeyEnv: String?

    func validate() throws {
        if server == nil, remoteModel != nil || apiKeyEnv != nil { throw ValidationError("--remote-model and --api-key-env need --server") }
    }

    /// The API key from the environment variable named by --api-key-env.
    func apiKey() throws -> String? {
        guard let apiKeyEnv else { return nil }
        guard let key = ProcessInfo.processInfo.environment[apiKeyEnv], !key.isEmpty else {
            throw CLIError("--api-key-env \(apiKeyEnv): the environment variable is not set (or empty)")
        }
        return key
    }
}

/// `--mask-experts`, `--force-experts`, `--experts-per-token`, `--no-shared-expert`: routing
/// interventions (Sources/NekoRouting/README.md, "Interventions"), on every command that runs
/// the model; checked against the model once it is loaded.
struct InterventionOptions: ParsableArguments {
    @Option(name: .customLong("mask-experts"), help: "Experts never chosen: LAYER:EXPERT[,EXPERT…][;LAYER:…] (a-b: a range).")
    var mask: String?
    @Option(name: .customLong("force-experts"), help: "Experts always chosen: LAYER:EXPERT[,EXPERT…][;LAYER:…].")
    var force: String?
    @Option(name: .customLong("experts-per-token"), help: "Experts chosen per token in every MoE layer (default: the model's).")
    var expertsPerToken: Int?
    @Flag(name: .customLong("no-shared-expert"), help: "Leave the shared expert out of every MoE layer.")
    var noSharedExpert = false

    func validate() throws { _ = try interventions() }

    /// The flag of each part of the interventions (errors name the flag the user typed).
    static let flags = ["mask": "--mask-experts", "force": "--force-experts", "top_k": "--experts-per-token",
                        "shared": "--no-shared-expert"]

    /// The interventions asked for (not yet checked against a model).
    func interventions() throws -> Interventions {
        do {
            return Interventions(mask: try mask.map { try Interventions.parseLayers($0, what: "--mask-experts") } ?? [:],
                                 force: try force.map { try Interventions.parseLayers($0, what: "--force-experts") } ?? [:],
                                 expertsPerToken: expertsPerToken, sharedExpert: !noSharedExpert)
        } catch let error as InterventionError {
            throw ValidationError(error.description)
        }
    }

    /// The interventions, checked against `model`: an error names the flag's layer or expert.
    func interventions(for model: LanguageModel) throws -> Interventions {
        let i = try interventions()
        do { try model.check(i) } catch let error as InterventionError { throw CLIError(error.named(Self.flags)) }
        if !i.isEmpty { Output.err("note: routing under interventions: \(i.summary)\n") }
        return i
    }
}
