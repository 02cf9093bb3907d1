import ArgumentParser
import NekoChat
import NekoModel

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time prefill of N tokens and decode of M tokens (random ids, greedy, no EOS stop).")

    enum Weights: String, ExpressibleByArgument, CaseIterable { case bf16, q8 }

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens to prefill.") var promptTokens = 512
    @Option(name: .customLong("gen-tokens"), help: "Tokens to decode.") var genTokens = 128
    @Option(help: "Weights: bf16 (as stored) or q8.") var weights: Weights = .bf16
    @Option(help: "Seed for the random prompt.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON document.") var json = false

    func validate() throws {
        if promptTokens < 1 { throw ValidationError("--prompt-tokens must be at least 1") }
        if genTokens < 0 { throw ValidationError("--gen-tokens must be ≥ 0") }
    }

    func run() throws {
        if weights == .q8 { throw CLIError("--weights q8 is not implemented yet (it arrives with the speed work)") }
        let bundle = try modelOptions.loadBundle()
        let model = bundle.model
        guard promptTokens + genTokens <= model.config.maxPositionEmbeddings else {
            throw CLIError("--prompt-tokens + --gen-tokens = \(promptTokens + genTokens) exceeds the context window \(model.config.maxPositionEmbeddings)")
        }
        var rng = SeededGenerator(seed: seed)
        let prompt = (0..<promptTokens).map { _ in Int.random(in: 0..<model.config.vocabSize, using: &rng) }
        var request = GenerationRequest(promptIds: prompt)
        request.maxTokens = genTokens
        request.sampling.temperature = 0
        let generator = Generator(model: model, threads: modelOptions.threadCount)
        let result = try generator.generate(request, contextSize: promptTokens + genTokens)
        let rss = Output.peakRSS()
        if json {
            try Output.json(.object([
                ("prefill_tokens_per_s", .double(result.prefillTokensPerSecond)),
                ("decode_tokens_per_s", .double(result.decodeTokensPerSecond)),
                ("peak_rss_bytes", .int(rss)), ("weights", .string(weights.rawValue)),
                ("dtype", .string(model.dtype.rawValue)), ("threads", .int(modelOptions.threadCount)),
                ("prompt_tokens", .int(promptTokens)), ("gen_tokens", .int(result.ids.count)),
            ]))
        } else {
            Output.out("""
                prefill: \(promptTokens) tokens, \(format(result.prefillTokensPerSecond)) tok/s
                decode:  \(result.ids.count) tokens, \(format(result.decodeTokensPerSecond)) tok/s
                peak RSS: \(format(Double(rss) / 1_048_576)) MiB  (weights \(model.dtype.rawValue), \(modelOptions.threadCount) threads)

                """)
        }
    }
}
