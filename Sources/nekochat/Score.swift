import ArgumentParser
import Foundation
import NekoChat
import NekoModel

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-token negative log-likelihood of a text or of token ids, in one batched pass.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A UTF-8 text file to score (encoded with the tokenizer's special tokens, e.g. BOS); - reads stdin.") var file: String?
    @Option(help: "Token ids to score: 1,2,3.") var ids: String?
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var steering: InterventionOptions

    func validate() throws {
        if (file == nil) == (ids == nil) { throw ValidationError("give exactly one of --file and --ids") }
        if let ids { _ = try parseIds(ids, flag: "--ids") }
    }

    func run() throws {
        let bundle = try modelOptions.loadBundle()
        let tokens: [Int]
        if let file {
            let tokenizer = try bundle.requireTokenizer()
            let text: String
            if file == "-" {
                text = try readStandardInput()
            } else {
                guard let data = FileManager.default.contents(atPath: file) else { throw CLIError("\(file): cannot read the file") }
                guard let t = String(validating: data, as: UTF8.self) else { throw CLIError("\(file): not valid UTF-8 text") }
                text = t
            }
            tokens = tokenizer.encode(text)
        } else {
            tokens = try parseIds(ids ?? "", flag: "--ids")
        }
        let generator = Generator(model: bundle.model, threads: modelOptions.threadCount)
        generator.interventions = try steering.interventions(for: bundle.model)
        generator.kvPrecision = modelOptions.kvPrecision(default: .float32)
        let (nll, top1) = try generator.scoreWithPredictions(tokens)
        let mean = nll.isEmpty ? 0 : nll.reduce(0, +) / Double(nll.count)
        if json {
            try Output.json(.object([
                ("tokens", .int(tokens.count)), ("ids", .ints(tokens)), ("nll", .array(nll.map { .double($0) })),
                ("top1", .ints(top1)), ("kv_cache", .string(generator.kvPrecision.rawValue)),
                ("mean_nll", .double(mean)), ("perplexity", .double(exp(mean))),
            ]))
        } else {
            Output.out(String(format: "tokens: %d\nmean NLL: %.4f\nperplexity: %.3f\n", tokens.count, mean, exp(mean)))
        }
    }
}
