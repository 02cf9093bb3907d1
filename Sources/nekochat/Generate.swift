import ArgumentParser
import NekoChat
import NekoModel

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Complete a prompt.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The prompt text (needs the model's tokenizer).") var prompt: String?
    @Option(name: .customLong("prompt-ids"), help: "The prompt as token ids: 1,2,3.") var promptIds: String?
    @Flag(help: "Treat the prompt as a user message and apply the chat template.") var chat = false
    @Option(name: .customLong("max-tokens"), help: "Tokens to generate at most.") var maxTokens = 512
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Stop when the text contains this string (repeatable).") var stop: [String] = []
    @Option(name: .customLong("ctx-size"), help: "Context window (default: the model's).") var ctxSize: Int?
    @Flag(help: "Include the routing record in the JSON output.") var routing = false
    @Flag(help: "Print one JSON document instead of streaming text.") var json = false

    func validate() throws {
        if (prompt == nil) == (promptIds == nil) { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0") }
        if let ctxSize, ctxSize < 1 { throw ValidationError("--ctx-size must be at least 1") }
        if let promptIds { _ = try parseIds(promptIds, flag: "--prompt-ids") }
    }

    func run() throws {
        if prompt != nil || chat || !stop.isEmpty {
            throw CLIError("--prompt, --chat and --stop need the tokenizer, which this build does not have yet; use --prompt-ids")
        }
        let bundle = try modelOptions.loadBundle()
        var request = GenerationRequest(promptIds: try parseIds(promptIds ?? "", flag: "--prompt-ids"))
        request.maxTokens = maxTokens
        request.sampling = sampling.parameters(bundle.generationConfig)
        request.eosIds = bundle.eosTokenIds
        request.recordRouting = routing
        let generator = Generator(model: bundle.model, threads: modelOptions.threadCount)
        if !json { Output.err("note: no tokenizer yet: printing token ids\n") }
        let result = try generator.generate(request, contextSize: ctxSize) { id in
            if !json { Output.out("\(id) ") }
        }
        if !json {
            Output.out("\n")
            Output.err("finish: \(result.finishReason.rawValue), seed \(result.seed), "
                + "prefill \(format(result.prefillTokensPerSecond)) tok/s, "
                + "decode \(format(result.decodeTokensPerSecond)) tok/s\n")
            return
        }
        var fields: [(String, JSON)] = [
            ("prompt_ids", .ints(request.promptIds)), ("ids", .ints(result.ids)), ("text", .string("")),
            ("finish_reason", .string(result.finishReason.rawValue)),
            ("prefill_tokens_per_s", .double(result.prefillTokensPerSecond)),
            ("decode_tokens_per_s", .double(result.decodeTokensPerSecond)),
        ]
        if let record = result.routing { fields.append(("routing", routingJSON(record))) }
        try Output.json(.object(fields))
    }
}
