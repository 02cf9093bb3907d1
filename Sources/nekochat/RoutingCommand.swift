import ArgumentParser
import Foundation
import NekoChat
import NekoJSON
import NekoModel
import NekoRouting

/// `nekochat routing`: the analyses (the default subcommand) and `ablate`.
struct RoutingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routing",
        abstract: "Expert-routing analyses of texts, ids or a saved chat (load, balance, co-activation, flows, specialisation, hot set); `routing ablate` masks each expert in turn.",
        subcommands: [RoutingAnalyze.self, RoutingAblate.self], defaultSubcommand: RoutingAnalyze.self)
}

/// `nekochat routing [analyze]`: Sources/NekoRouting/README.md's analyses of a model's routing over texts or ids, or of a
/// saved chat's recorded routing; as a summary, JSON, CSV rows or SVG figures.
struct RoutingAnalyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analyze",
        abstract: "Expert-routing analyses of texts, ids or a saved chat (the default of `nekochat routing`).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A text file to route (repeatable: each file is a sequence, e.g. one domain).") var file: [String] = []
    @Option(help: "Token ids to route: 1,2,3 (repeatable: each is a sequence).") var ids: [String] = []
    @Option(help: "A saved chat whose recorded routing to analyse (no model is run).") var transcript: String?
    @Option(name: .customLong("min-count"), help: "Occurrences a token id needs to count in `specialisation`.") var minCount = 10
    @Flag(help: "Print the analyses as one JSON document.") var json = false
    @Option(help: "Write one row per (token, layer, rank) to this CSV file.") var csv: String?
    @Option(help: "Write the figures as SVG files into this folder.") var svg: String?
    @OptionGroup var steering: InterventionOptions

    func validate() throws {
        let sources = (file.isEmpty ? 0 : 1) + (ids.isEmpty ? 0 : 1) + (transcript == nil ? 0 : 1)
        if sources != 1 { throw ValidationError("give --file, --ids or --transcript (one kind)") }
        if transcript != nil && modelOptions.model != nil { throw ValidationError("--transcript reads recorded routing: --model is not used") }
        if !(1...1_000_000).contains(minCount) { throw ValidationError("--min-count must be from 1 to 1000000") }
        for i in ids { _ = try parseIds(i, flag: "--ids") }
    }

    func run() throws {
        let trace = try transcript.map(traceOfTranscript) ?? traceOfModel()
        let report = RoutingAnalysis.analyze(trace, minCount: minCount)
        if let csv {
            try Transcript.writeAtomically(RoutingCSV.write(trace), to: resolvePath(csv), overwrite: true)
            Output.err("wrote \(trace.count * trace.moeLayers.count * trace.topK) rows to \(csv)\n")
        }
        if let svg {
            let dir = resolvePath(svg)
            for (name, text) in RoutingSVG.figures(report) {
                try Transcript.writeAtomically(text, to: dir + "/" + name, overwrite: true)
            }
            Output.err("wrote \(RoutingSVG.figures(report).count) figures to \(dir)\n")
        }
        if json {
            try Output.json(report.json)
        } else if csv == nil && svg == nil {
            Output.out(summary(report))
        }
    }

    func traceOfTranscript(_ path: String) throws -> RoutingTrace {
        let loaded = try Transcript.load(path: resolvePath(path))
        if let skipped = loaded.skippedNotice { Output.err("warning: \(skipped)\n") }
        // The header says how many experts there are; an older one, at least as many as were used.
        let used = loaded.conversation.messages.flatMap(\.routing).flatMap { $0.experts.flatMap { $0 } }.max().map { $0 + 1 } ?? 1
        let experts = max(used, loaded.header?.experts ?? 0)
        guard let trace = try RoutingTrace.of(loaded.conversation.routingSequences, experts: experts) else {
            throw CLIError("\(path): routing was not recorded in this chat (saved before nekochat recorded routing, or by a server without it)")
        }
        return trace
    }

    func traceOfModel() throws -> RoutingTrace {
        let bundle = try modelOptions.loadBundle()
        let model = bundle.model, config = model.config
        guard !config.moeLayers.isEmpty else { throw CLIError("\(bundle.directory): the model has no MoE layers: there is no routing") }
        let sequences = try readSequences(files: file, ids: ids, bundle: bundle)
        let generator = Generator(model: model, threads: modelOptions.threadCount)
        generator.interventions = try steering.interventions(for: model)
        var steps: [(name: String, steps: [RoutingStep])] = []
        for (name, tokens) in sequences {
            guard !tokens.isEmpty else { steps.append((name, [])); continue }
            guard tokens.count <= config.maxPositionEmbeddings else {
                throw CLIError("\(name): \(tokens.count) tokens, longer than the context window of \(config.maxPositionEmbeddings)")
            }
            try model.check(tokens: tokens)
            let record = model.makeRoutingRecord(generator.interventions)
            _ = try generator.prefill(tokens, cache: try model.makeCache(capacity: tokens.count, precision: modelOptions.kvPrecision(default: .float32)),
                                     routing: record)
            steps.append((name, tokens.indices.map { RoutingStep(record: record, token: $0, id: tokens[$0], text: "", isPrompt: true) }))
        }
        guard let trace = try RoutingTrace.of(steps, experts: config.numExperts) else { throw CLIError("no tokens to route") }
        return trace
    }

    /// A terminal-sized summary: per layer the balance and repetition figures.
    func summary(_ r: RoutingReport) -> String {
        func f(_ v: Double?, _ digits: Int = 3) -> String { v.map { String(format: "%.\(digits)f", $0) } ?? "–" }
        var out = "\(r.tokens) tokens, \(r.experts) experts, top-\(r.topK)\n"
        out += "layer  entropy  maxvio   jain  rep1 (rand)  repk (rand)   spec  gate  H_router\n"
        let top1 = RoutingAnalysis.randomRepeatTop1(experts: r.experts), topk = RoutingAnalysis.randomRepeatTopK(experts: r.experts, topK: r.topK)
        for l in r.layers {
            out += String(format: "L%-4d  ", l.layer) + f(l.entropyBits).padding(toLength: 7, withPad: " ", startingAt: 0)
                + "  " + f(l.maxViolation).padding(toLength: 6, withPad: " ", startingAt: 0) + "  " + f(l.jain)
                + "  " + f(l.repeatTop1) + " (" + f(top1) + ")  " + f(l.repeatTopK) + " (" + f(topk) + ")  "
                + f(l.specialisation) + "  " + f(l.sharedGateMean, 2) + "  " + f(l.routerEntropyMean, 2) + "\n"
        }
        let hot = r.hotSet
        out += "hot set: \(hot.cover50), \(hot.cover90) and \(hot.cover99) of the \(hot.slots) (layer, expert) slots take 50, 90 and 99 % of the routed tokens\n"
        return out
    }
}

/// Reads `--file`s (each a sequence, encoded as `score --file` encodes) and `--ids` lists.
func readSequences(files: [String], ids: [String], bundle: ModelBundle) throws -> [(name: String, ids: [Int])] {
    var sequences: [(name: String, ids: [Int])] = []
    for (i, list) in ids.enumerated() { sequences.append(("ids \(i + 1)", try parseIds(list, flag: "--ids"))) }
    for f in files {
        let tokenizer = try bundle.requireTokenizer()
        guard let data = FileManager.default.contents(atPath: resolvePath(f)) else { throw CLIError("\(f): cannot read the file") }
        guard let text = String(validating: data, as: UTF8.self) else { throw CLIError("\(f): not valid UTF-8 text") }
        sequences.append(((f as NSString).lastPathComponent, tokenizer.encode(text)))
    }
    return sequences
}

/// `nekochat routing ablate`: every (MoE layer, expert) masked in turn over texts, with the
/// change in mean NLL, the expert's share and REAP's saliency; per layer, no shared expert.
struct RoutingAblate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ablate",
        abstract: "Mask each expert in turn (and each layer's shared expert): the change in mean NLL over texts, with share and REAP saliency.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A text file (repeatable: their predictions are pooled).") var file: [String] = []
    @Option(help: "Token ids: 1,2,3 (repeatable).") var ids: [String] = []
    @Option(help: "MoE layers to ablate: 2,3 or 2-5 (default: all).") var layers: String?
    @Flag(help: "Print one JSON document.") var json = false
    @Option(help: "Write one row per (layer, expert) to this CSV file.") var csv: String?

    func validate() throws {
        if file.isEmpty && ids.isEmpty { throw ValidationError("give --file or --ids") }
        for i in ids { _ = try parseIds(i, flag: "--ids") }
        if let layers { _ = try layerList(layers) }
    }

    func layerList(_ text: String) throws -> [Int] {
        do {
            return try Interventions.parseLayers("0:" + text, what: "--layers")[0] ?? []
        } catch {
            throw ValidationError("--layers: '\(text)' is not a list of layers such as 2,3 or 2-5")
        }
    }

    func run() throws {
        let bundle = try modelOptions.loadBundle()
        let sequences = try readSequences(files: file, ids: ids, bundle: bundle)
        let context = ForwardContext(threads: modelOptions.threadCount)
        let start = DispatchTime.now()
        var shown = DispatchTime.now()
        let report: AblationReport
        do {
            report = try Ablation.run(model: bundle.model, sequences: sequences.map(\.ids), layers: try layers.map(layerList),
                                      context: context, kvPrecision: modelOptions.kvPrecision(default: .float32)) { done, total in
                guard seconds(since: shown) > 0.25 || done == total else { return }
                shown = DispatchTime.now()
                let elapsed = seconds(since: start)
                let left = elapsed / Double(done) * Double(total - done)
                Output.err(String(format: "\rablating: %d%%, %.0f s left   ", done * 100 / max(1, total), left) + (done == total ? "\n" : ""))
            }
        } catch let error as ChatError {
            throw CLIError(error.description)
        }
        Output.err(String(format: "ablated %d experts over %d tokens in %.1f s\n", report.rows.count, report.tokens, seconds(since: start)))
        if let csv { try Transcript.writeAtomically(report.csv, to: resolvePath(csv), overwrite: true) }
        if json {
            try Output.json(report.json)
        } else if csv == nil {
            Output.out(summary(report))
        }
    }

    /// The experts whose masking hurts most and least, and the shared experts.
    func summary(_ r: AblationReport) -> String {
        var out = String(format: "%d tokens, baseline mean NLL %.4f\n", r.tokens, r.baselineMeanNLL)
        let sorted = r.rows.sorted { $0.delta > $1.delta }
        out += "masking hurts most:\n"
        for row in sorted.prefix(10) {
            out += String(format: "  L%-3d e%-4d ΔNLL %+.4f  share %.3f  saliency %.4f\n", row.layer, row.expert, row.delta, row.share, row.saliency)
        }
        out += "masking helps most:\n"
        for row in sorted.suffix(3).reversed() {
            out += String(format: "  L%-3d e%-4d ΔNLL %+.4f  share %.3f  saliency %.4f\n", row.layer, row.expert, row.delta, row.share, row.saliency)
        }
        for s in r.shared { out += String(format: "no shared expert at L%d: ΔNLL %+.4f\n", s.layer, s.delta) }
        return out
    }
}
