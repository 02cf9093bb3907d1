import ArgumentParser
import Foundation
import NekoChat
import NekoJSON
import NekoTUI

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The chat UI (the default command).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Open or continue this transcript (JSON Lines, or OpenAI-style JSON to start from).") var transcript: String?
    @Option(help: "Theme name (dark, light, mono) or a theme file.") var theme: String?
    @Option(help: "System prompt.") var system: String?
    @Option(name: .customLong("ctx-size"), help: "Context window (default: the model's, at most 8192).") var ctxSize: Int?
    @Option(name: .customLong("max-tokens"), help: "Longest reply, in tokens.") var maxTokens = 512
    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        if let ctxSize, ctxSize < 16 { throw ValidationError("--ctx-size must be at least 16") }
        if maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
    }

    func run() throws {
        guard isatty(0) != 0, isatty(1) != 0 else {
            throw CLIError("the chat needs a terminal on stdin and stdout (for pipes and scripts use `nekochat generate`)")
        }
        let noColor = !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let chosenTheme: Theme
        if let theme {
            chosenTheme = try Theme.named(theme, noColor: noColor)
        } else {
            chosenTheme = (try? Theme.named(noColor ? "mono" : "dark", noColor: noColor)) ?? .fallback
        }
        let location = try ModelLocation.resolve(modelOptions.model)
        let bundle = try modelOptions.loadBundle(location)
        let parameters = sampling.parameters(bundle.generationConfig)
        let context = ctxSize ?? min(bundle.model.config.maxPositionEmbeddings, 8192)
        let session = try ChatSession(bundle: bundle, threads: modelOptions.threadCount, contextSize: context,
                                      sampling: parameters, maxTokens: maxTokens)
        let fingerprint = Self.fingerprint(bundle)
        let settings: [(String, JSONValue)] = [
            ("temperature", .double(Double(parameters.temperature))), ("top_k", .int(parameters.topK)),
            ("top_p", .double(Double(parameters.topP))), ("min_p", .double(Double(parameters.minP))),
            ("repeat_penalty", .double(Double(parameters.repeatPenalty))), ("max_tokens", .int(maxTokens)),
            ("context", .int(context)), ("system", system.map { .string($0) } ?? .null),
        ]
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "-")
        let autosave = "\(base)/nekochat/chat-\(stamp).jsonl"
        var log: Transcript
        if let transcript, FileManager.default.fileExists(atPath: transcript), Transcript.isSingleDocument(path: transcript) {
            // OpenAI-style JSON is read, never appended to: the conversation continues in a new log.
            let loaded = try Transcript.load(path: transcript)
            session.load(loaded)
            log = try Transcript(path: autosave, model: bundle.directory, fingerprint: fingerprint, settings: settings)
            for m in loaded { log.append(m) }
        } else if let transcript {
            if FileManager.default.fileExists(atPath: transcript) {
                session.load(try Transcript.load(path: transcript))
            }
            log = try Transcript(path: transcript, model: bundle.directory, fingerprint: fingerprint, settings: settings)
        } else {
            log = try Transcript(path: autosave, model: bundle.directory, fingerprint: fingerprint, settings: settings)
        }
        if let system {
            session.setSystem(system)
            log.appendEvent("system", [("content", .string(system))])
        }
        let name = location.source == "built-in demo model" ? "NekoMind demo" : URL(fileURLWithPath: bundle.directory).lastPathComponent
        var state = ScreenState(modelName: name,
                                experts: bundle.model.config.numExperts, contextSize: session.contextSize)
        state.themeName = chosenTheme.name
        state.show(session.messages)
        let engine = ChatEngine(session: session)
        let app = ChatApp(engine: engine, state: state, theme: chosenTheme, noColor: noColor, sampling: parameters,
                          maxTokens: maxTokens, transcript: log, modelPath: bundle.directory, fingerprint: fingerprint)
        try app.run()
    }

    /// FNV-1a over config.json and the weight files' names and sizes: tells transcripts apart by model.
    static func fingerprint(_ bundle: ModelBundle) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 } }
        mix(FileManager.default.contents(atPath: bundle.directory + "/config.json") ?? Data())
        for f in bundle.model.files { mix(Array("\(URL(fileURLWithPath: f.path).lastPathComponent):\(f.byteCount)".utf8)) }
        return String(hash, radix: 16)
    }
}
