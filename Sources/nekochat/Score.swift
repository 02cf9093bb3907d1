import ArgumentParser
import Foundation
import NekoChat
import NekoModel

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-token negative log-likelihood of a text or of token ids, in one batched pass.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A text file to score (needs the model's tokenizer).") var file: String?
    @Option(help: "Token ids to score: 1,2,3.") var ids: String?
    @Flag(help: "Print one JSON document.") var json = false

    func validate() throws {
        if (file == nil) == (ids == nil) { throw ValidationError("give exactly one of --file and --ids") }
        if let ids { _ = try parseIds(ids, flag: "--ids") }
    }

    func run() throws {
        if file != nil { throw CLIError("--file needs the tokenizer, which this build does not have yet; use --ids") }
        let tokens = try parseIds(ids ?? "", flag: "--ids")
        let bundle = try modelOptions.loadBundle()
        let generator = Generator(model: bundle.model, threads: modelOptions.threadCount)
        let nll = try generator.score(tokens)
        let mean = nll.isEmpty ? 0 : nll.reduce(0, +) / Double(nll.count)
        if json {
            try Output.json(.object([
                ("tokens", .int(tokens.count)), ("nll", .array(nll.map { .double($0) })),
                ("mean_nll", .double(mean)), ("perplexity", .double(exp(mean))),
            ]))
        } else {
            Output.out("tokens: \(tokens.count)\nmean NLL: \(mean)\nperplexity: \(exp(mean))\n")
        }
    }
}
