import ArgumentParser
import Foundation
import NekoChat
import NekoJSON
import NekoModel
import NekoRemote

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Complete a prompt.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The prompt text (encoded with the tokenizer's special tokens, e.g. BOS); - reads stdin.") var prompt: String?
    @Option(name: .customLong("prompt-ids"), help: "The prompt as token ids: 1,2,3.") var promptIds: String?
    @Flag(help: "Treat the prompt as a user message and apply the chat template.") var chat = false
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate at most.") var maxTokens = 512
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Option(name: .customLong("ctx-size"), help: "Context window (default: the model's).") var ctxSize: Int?
    @Flag(help: "Include the routing record in the JSON output.") var routing = false
    @Flag(help: "Print one JSON document instead of streaming text.") var json = false
    @OptionGroup var remote: RemoteOptions
    @OptionGroup var steering: InterventionOptions

    func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
        if chat && prompt == nil { throw ValidationError("--chat needs --prompt") }
        // 0 is allowed here: the prompt's logits and routing only.
        if maxTokens < 0 { throw ValidationError("--max-tokens must be from 0 (the prompt only) to 1000000; got \(maxTokens)") }
        try checkLimits(ctxSize: ctxSize, maxTokens: maxTokens == 0 ? nil : maxTokens, stop: stop)
        if let promptIds { _ = try parseIds(promptIds, flag: "--prompt-ids") }
    }

    func run() throws {
        if let server = remote.server { return try runRemote(server) }
        let bundle = try modelOptions.loadBundle()
        let tokenizer = bundle.tokenizer
        let stop = try stopStrings(self.stop)
        if prompt != nil || !stop.isEmpty { _ = try bundle.requireTokenizer() }
        let text = try prompt.map { $0 == "-" ? try readStandardInput() : $0 }
        var rules = bundle.stopRules(chat: false, template: nil, stopStrings: stop, maxTokens: maxTokens)
        let ids: [Int]
        if chat, let text {
            let template = try bundle.chatTemplate()
            if template.isDefault { Output.err("note: the model has no chat template; using the ChatML default\n") }
            ids = try bundle.chatPrompt([.object([("role", .string("user")), ("content", .string(text))])], template: template)
            rules = bundle.stopRules(chat: true, template: template, stopStrings: stop, maxTokens: maxTokens)
        } else {
            ids = try text.map { tokenizer!.encode($0) } ?? parseIds(promptIds ?? "", flag: "--prompt-ids")
        }
        let parameters = try sampling.settings(bundle.generationConfig).sampling
        var sequence = DecodeSequence(prompt: ids, sampling: parameters, rules: rules, tokenizer: tokenizer)
        let generator = Generator(model: bundle.model, threads: modelOptions.threadCount)
        generator.interventions = try steering.interventions(for: bundle.model)
        let cache = try bundle.model.makeCache(capacity: ctxSize, precision: modelOptions.kvPrecision(default: .float16))
        if let warning = bundle.model.contextWarning(cache.capacity) { Output.err("warning: \(warning)\n") }
        let record = routing ? bundle.model.makeRoutingRecord(generator.interventions) : nil
        if tokenizer == nil && !json { Output.err("note: \(bundle.directory) has no tokenizer.json: printing token ids\n") }
        let outcome = try generator.decode(ids, cache: cache, sequence: &sequence, routing: record) { event in
            guard !json, case let .token(id, text) = event else { return }
            if tokenizer == nil {
                if id >= 0, !bundle.eosTokenIds.contains(id) { Output.out("\(id) ") }
            } else {
                Output.out(text)
            }
        }
        let reason = sequence.finishReason ?? .length
        if !json {
            Output.out("\n")
            var summary = "finish: \(reason.rawValue)"
            if parameters.temperature > 0 { summary += ", seed \(sequence.sampler.seed)" }
            Output.err(summary + ", prefill \(format(outcome.prefillTokensPerSecond)) tok/s, "
                + "decode \(format(outcome.decodeTokensPerSecond)) tok/s\n")
            return
        }
        var fields: [(key: String, value: JSON)] = [
            ("prompt_ids", .ints(ids)), ("ids", .ints(sequence.generated)),
            ("text", .string(sequence.text)),
            ("finish_reason", .string(reason.rawValue)),
            ("prefill_tokens_per_s", .double(outcome.prefillTokensPerSecond)),
            ("decode_tokens_per_s", .double(outcome.decodeTokensPerSecond)),
        ]
        if parameters.temperature > 0 { fields.append(("seed", .int(Int(truncatingIfNeeded: sequence.sampler.seed)))) }
        if !generator.interventions.isEmpty { fields.append(("experts", generator.interventions.json)) }
        if let record { fields.append(("routing", routingJSON(record))) }
        try Output.json(.object(fields))
    }
}

extension Generate {
    /// The same command against a server: the fields it can give (no prompt ids; routing only
    /// from a server with nekochat's extension).
    func runRemote(_ server: String) throws {
        guard let text = try prompt.map({ $0 == "-" ? try readStandardInput() : $0 }) else {
            throw ValidationError("--server needs --prompt (servers take text)")
        }
        let backend = try RemoteBackend.connect(url: server, model: remote.remoteModel, apiKey: try remote.apiKey())
        var settings = try sampling.settings(backend, maxTokens: maxTokens)
        settings.stop = try stopStrings(stop)
        settings.mode = chat ? .chat : .complete
        settings.experts = try steering.interventions()
        try backend.check(settings.experts)
        var out = "", steps: [RoutingStep] = [], summary = ReplySummary(reason: .error)
        backend.reply(ReplyRequest(messages: [ChatMessage(id: 1, role: .user, content: text)], settings: settings), cancel: CancellationFlag()) { e in
            switch e {
            case let .textDelta(t): out += t; if !json { Output.out(t) }
            case let .routing(s): steps.append(s)
            case let .finished(s): summary = s
            default: break
            }
        }
        if let error = summary.error { throw CLIError(error) }
        if !json {
            Output.out("\n")
            Output.err("finish: \(summary.reason.rawValue), decode \(format(summary.decodeTokensPerSecond)) tok/s (measured here)\n")
            return
        }
        var fields: [(key: String, value: JSON)] = [("text", .string(out)), ("finish_reason", .string(summary.reason.rawValue))]
        if summary.prefillTokensPerSecond > 0 { fields.append(("prefill_tokens_per_s", .double(summary.prefillTokensPerSecond))) }
        fields.append(("decode_tokens_per_s", .double(summary.decodeTokensPerSecond)))
        if summary.promptTokens > 0 { fields.append(("prompt_tokens", .int(summary.promptTokens))) }
        fields.append(("completion_tokens", .int(summary.completionTokens)))
        if routing, !steps.isEmpty {
            fields.append(("routing", RoutingStep.recordJSON(steps)))
        }
        try Output.json(.object(fields))
    }
}

/// All of standard input as UTF-8 text (`--prompt -`, `--file -`).
func readStandardInput() throws -> String {
    let data: Data
    do { data = try FileHandle.standardInput.readToEnd() ?? Data() } catch { throw CLIError("standard input: \(userMessage(error))") }
    guard let text = String(validating: data, as: UTF8.self) else { throw CLIError("standard input: not valid UTF-8 text") }
    return text
}
