import ArgumentParser
import Foundation
import NekoChat
import NekoHub
import NekoJSON
import NekoRemote
import NekoTUI

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The chat UI (the default command).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Open or continue this transcript (JSON Lines, or OpenAI-style JSON to start from).") var transcript: String?
    @Flag(name: .customLong("continue"), help: "Reopen the chat you were in when you last quit (else the newest).") var continueLatest = false
    @Option(help: "Theme name (dark, light, mono) or a theme file.") var theme: String?
    @Option(help: "System prompt.") var system: String?
    @Option(name: .customLong("ctx-size"), help: "Context window (default: the model's, at most 8192).") var ctxSize: Int?
    @Option(name: .customLong("max-tokens"), help: "Longest reply, in tokens (default 512).") var maxTokens: Int?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var remote: RemoteOptions
    @OptionGroup var steering: InterventionOptions
    @Option(help: "Stop replies before this text (repeatable).") var stop: [String] = []
    /// Answers from a JSON list of texts instead of a model (demos, tests of the screen).
    @Option(name: .customLong("scripted-replies"), help: .hidden) var scriptedReplies: String?

    func validate() throws {
        try checkLimits(ctxSize: ctxSize, maxTokens: maxTokens, stop: stop)
        if transcript != nil && continueLatest { throw ValidationError("give at most one of --transcript and --continue") }
    }

    func run() throws {
        guard isatty(0) != 0, isatty(1) != 0 else {
            throw CLIError("the chat needs a terminal on stdin and stdout (for pipes and scripts use `nekochat generate`)")
        }
        let env = ProcessInfo.processInfo.environment
        let noColor = !(env["NO_COLOR"] ?? "").isEmpty
        let chosenTheme: Theme
        if let theme {
            chosenTheme = try Theme.named(theme, noColor: noColor)
        } else {
            chosenTheme = (try? Theme.named(noColor ? "mono" : "dark", noColor: noColor)) ?? .fallback
        }
        let backend: ChatBackend
        var settings: ChatSettings
        var contextNotice: String?
        var hub: HubSnapshot?
        let name: String
        if let scriptedReplies {
            let data = try Data(contentsOf: URL(fileURLWithPath: resolvePath(scriptedReplies)))
            guard let texts = try JSONValue.parse([UInt8](data)).array?.compactMap(\.string) else {
                throw CLIError("\(scriptedReplies): expected a JSON list of strings")
            }
            backend = ScriptedBackend(replies: texts, delay: 0.01)
            settings = try sampling.settings(GenerationConfig(), maxTokens: maxTokens)
            name = "scripted"
        } else if let server = remote.server {
            Output.err("connecting to \(server) …\n")
            let r = try RemoteBackend.connect(url: server, model: remote.remoteModel, apiKey: try remote.apiKey())
            backend = r
            settings = try sampling.settings(r, maxTokens: maxTokens)
            name = r.model
        } else {
            let location = try ModelLocation.resolve(modelOptions.model)
            Output.err("loading \(location.directory) …\n")
            let bundle = try modelOptions.loadBundle(location)
            settings = try sampling.settings(bundle.generationConfig, maxTokens: maxTokens)
            let context = ctxSize ?? min(bundle.model.config.maxPositionEmbeddings, 8192)
            name = location.displayName
            hub = location.hub
            backend = try LocalBackend(bundle: bundle, threads: modelOptions.threadCount, contextSize: context,
                                       modelName: name, isBuiltInDemo: location.isBuiltInDemo,
                                       kvPrecision: modelOptions.kvPrecision(default: .float16))
            contextNotice = bundle.model.contextWarning(context)
        }
        settings.stop = try stopStrings(stop)
        let experts = try steering.interventions()
        do { try backend.check(experts) } catch { throw CLIError(userMessage(error)) }
        settings.experts = experts
        let store = TranscriptStore.standard()
        var header = TranscriptHeader(backend.info)
        if let hub { header.hubModel = hub.model.repo; header.hubCommit = hub.commit }

        var conversation = Conversation(settings: settings)
        var reopened = false
        var writer = TranscriptWriter(store: store, header: header)
        var opening: String?
        let file = continueLatest ? store.chatToContinue() : transcript.map(resolvePath)
        if continueLatest && file == nil { opening = "no saved chat to continue in \(store.directory): this is a new one" }
        if let file, FileManager.default.fileExists(atPath: file) {
            let loaded = try Transcript.load(path: file, defaults: settings)
            conversation = loaded.conversation
            reopened = true
            if loaded.isLog {
                writer = TranscriptWriter(store: store, header: header, appendingTo: file)
            } else {
                // OpenAI-style JSON is read, never appended to: the chat goes on in a new log.
                writer.record(.loaded(loaded.conversation, path: file), conversation: loaded.conversation)
            }
            opening = "reopened \(loaded.conversation.path.count) messages from \(file)"
            if let warning = ChatController.modelWarning(loaded.header, backend.info) { opening! += "; " + warning }
            if let skipped = loaded.skippedNotice { opening! += "; " + skipped }
        } else if let file {
            // A mistyped name would otherwise open an empty chat without a word.
            opening = "\(file) does not exist: this is a new chat, saved there from the first message"
            writer = TranscriptWriter(store: store, header: header, appendingTo: file)
        }
        let controller = ChatController(backend: backend, conversation: conversation, transcript: writer)
        if let system { try controller.setSystem(system) }
        if reopened {
            // Flags given now win over the settings the chat was saved with.
            for (n, v) in sampling.given { try controller.set(n, v) }
            if let maxTokens { try controller.set("max_tokens", String(maxTokens)) }
            for s in stop { try controller.set("stop", s) }
            if !experts.isEmpty { try controller.setExperts(experts) }
        }

        let app = ChatApp(controller: controller, theme: chosenTheme, noColor: noColor, historyPath: store.directory + "/history")
        let routingHint = backend.info.moeLayers.isEmpty ? "" : " · the panel: which experts each MoE layer chose (Ctrl-R views, Tab scope)"
        app.notice("\(name) · /help for keys and commands · /show for the model and settings" + routingHint)
        if let opening { app.notice(opening) }
        if let contextNotice { app.notice(contextNotice, error: true) }
        if backend.info.kind == "remote" {
            app.notice("replies come from \(backend.info.location) (\(backend.info.modelName))"
                + (backend.info.reportsRouting ? "" : "; this server does not report routing, so the routing panel stays empty"))
        }
        let driver = try CursesDriver(theme: chosenTheme)
        app.run(driver)
        driver.close()
        if let path = controller.transcript?.path, FileManager.default.fileExists(atPath: path) {
            store.rememberLast(path)
            Output.err("this chat is saved in \(path)\nresume it with: \(resumeCommand(path))\n")
        }
    }

    /// The command that reopens this chat as it ran: the program as it was started (its name when
    /// the shell found it on PATH, else its full path), and the flags that chose the backend.
    func resumeCommand(_ path: String) -> String {
        var words = [invokedAs()]
        if let scriptedReplies { words += ["--scripted-replies", resolvePath(scriptedReplies)] }
        if let server = remote.server {
            words += ["--server", server]
            if let m = remote.remoteModel { words += ["--remote-model", m] }
            if let k = remote.apiKeyEnv { words += ["--api-key-env", k] }
        } else if scriptedReplies == nil {
            // A folder by its full path (the hint may be run from anywhere); a Hub id as it is.
            if let m = modelOptions.model ?? ProcessInfo.processInfo.environment["NEKOCHAT_MODEL"].flatMap({ $0.isEmpty ? nil : $0 }) {
                words += ["--model", FileManager.default.fileExists(atPath: m) ? resolvePath(m) : m]
            }
            if modelOptions.weights != .bf16 { words += ["--weights", modelOptions.weights.rawValue] }
            if let ctxSize { words += ["--ctx-size", String(ctxSize)] }
        }
        words += ["--transcript", path]
        return words.map(shellQuoted).joined(separator: " ")
    }

    /// How this program was started, as a shell would run it again from anywhere.
    func invokedAs() -> String {
        let argv0 = CommandLine.arguments.first ?? "nekochat"
        if !argv0.contains("/") { return argv0 }
        return Platform.executablePath() ?? resolvePath(argv0)
    }
}

func shellQuoted(_ s: String) -> String {
    s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+:=,@".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
