import ArgumentParser
import NekoChat
import NekoJSON
import NekoModel

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Complete a prompt.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The prompt text (encoded with the tokenizer's special tokens, e.g. BOS).") var prompt: String?
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
        if chat && prompt == nil { throw ValidationError("--chat needs --prompt") }
        if maxTokens < 0 { throw ValidationError("--max-tokens must be ≥ 0") }
        if let ctxSize, ctxSize < 1 { throw ValidationError("--ctx-size must be at least 1") }
        if let promptIds { _ = try parseIds(promptIds, flag: "--prompt-ids") }
    }

    func run() throws {
        let bundle = try modelOptions.loadBundle()
        let tokenizer = bundle.tokenizer
        if prompt != nil || !stop.isEmpty { _ = try bundle.requireTokenizer() }
        var stopIds: Set<Int> = []
        let ids: [Int]
        if chat, let prompt {
            let template = try bundle.chatTemplate()
            if template.isDefault { Output.err("note: the model has no chat template; using the ChatML default\n") }
            ids = try bundle.chatPrompt([.object([("role", .string("user")), ("content", .string(prompt))])], template: template)
            stopIds = bundle.endOfTurnIds(template).subtracting(bundle.eosTokenIds)
        } else {
            ids = try prompt.map { tokenizer!.encode($0) } ?? parseIds(promptIds ?? "", flag: "--prompt-ids")
        }
        var request = GenerationRequest(promptIds: ids)
        request.stopIds = stopIds
        request.maxTokens = maxTokens
        request.sampling = sampling.parameters(bundle.generationConfig)
        request.eosIds = bundle.eosTokenIds
        request.recordRouting = routing
        let generator = Generator(model: bundle.model, threads: modelOptions.threadCount)
        var stream = tokenizer.map { TextStream(tokenizer: $0, stopStrings: stop) }
        if tokenizer == nil && !json { Output.err("note: \(bundle.directory) has no tokenizer.json: printing token ids\n") }
        let result = try generator.generate(request, contextSize: ctxSize) { id in
            // The end-of-sequence and end-of-turn tokens themselves are not part of the text.
            guard !bundle.eosTokenIds.contains(id), !stopIds.contains(id) else { return .proceed }
            guard stream != nil else {
                if !json { Output.out("\(id) ") }
                return .proceed
            }
            let text = stream!.add(id)
            if !json { Output.out(text) }
            return stream!.stopped ? .stop : .proceed
        }
        let rest = stream?.finish() ?? ""
        if !json {
            Output.out(rest + "\n")
            Output.err("finish: \(result.finishReason.rawValue), seed \(result.seed), "
                + "prefill \(format(result.prefillTokensPerSecond)) tok/s, "
                + "decode \(format(result.decodeTokensPerSecond)) tok/s\n")
            return
        }
        var fields: [(String, JSON)] = [
            ("prompt_ids", .ints(request.promptIds)), ("ids", .ints(result.ids)),
            ("text", .string(stream?.string ?? "")),
            ("finish_reason", .string(result.finishReason.rawValue)),
            ("prefill_tokens_per_s", .double(result.prefillTokensPerSecond)),
            ("decode_tokens_per_s", .double(result.decodeTokensPerSecond)),
        ]
        if let record = result.routing { fields.append(("routing", routingJSON(record))) }
        try Output.json(.object(fields))
    }
}
