import Foundation
import NekoModel
import NekoJSON
import NekoRouting

/// The chat core: owns the conversation, turns commands into events, runs replies on the
/// backend's model thread and turns what the backend reports into events too. Every event is
/// applied to the conversation (`Conversation.apply`), recorded by the transcript writer and
/// handed out by `poll()` for the screen, in one order. Used from one thread (the UI's).
public final class ChatController {
    public private(set) var conversation: Conversation
    public let backend: ChatBackend
    public let transcript: TranscriptWriter?
    private let worker = ModelThread(name: "nekochat-model")
    private let channel: EventChannel<BackendEvent>
    private let cancel = CancellationFlag()
    /// The reply being written.
    public private(set) var replyID: Int?
    private var outbox: [ChatEvent] = []
    private var reportedWriteError: String?

    public init(backend: ChatBackend, conversation: Conversation = Conversation(), transcript: TranscriptWriter?,
                channelCapacity: Int = 256) {
        self.backend = backend
        self.conversation = conversation
        self.transcript = transcript
        channel = EventChannel(capacity: channelCapacity)
    }

    deinit {
        cancel.cancel()
        worker.shutdown()
    }

    public var isBusy: Bool { replyID != nil || comparing }
    /// `/experts compare` is running (on the model thread, as a reply does).
    private var comparing = false

    /// Readable when the backend has reported something (poll it with the terminal's input).
    public var wakeDescriptor: Int32 { channel.wakeDescriptor }

    /// Applies, records and queues one event.
    func emit(_ event: ChatEvent) {
        conversation.apply(event)
        transcript?.record(event, conversation: conversation)
        outbox.append(event)
        if let e = transcript?.lastError, e != reportedWriteError {
            reportedWriteError = e
            outbox.append(.error(e))
        } else if transcript?.lastError == nil {
            reportedWriteError = nil
        }
    }

    /// Everything that happened since the last call: events of commands and of the reply in
    /// progress, already applied to `conversation`.
    public func poll() -> [ChatEvent] {
        for event in channel.drain() { handle(event) }
        defer { outbox.removeAll() }
        return outbox
    }

    /// Waits for the backend to report (at most `timeout` seconds), then polls.
    public func poll(waiting timeout: Double) -> [ChatEvent] {
        if outbox.isEmpty, isBusy { _ = channel.wait(timeout: timeout) }
        return poll()
    }

    /// Polls until the reply in progress has ended (or `timeout` passes: then it is stopped).
    public func finish(timeout: Double = 60) -> [ChatEvent] {
        var all = poll()
        let deadline = Date().addingTimeInterval(timeout)
        while isBusy {
            if Date() > deadline { stop() }
            all += poll(waiting: 0.05)
        }
        return all
    }

    private func handle(_ event: BackendEvent) {
        if comparing {
            switch event {
            case let .prefillProgress(done, total): emit(.prefillProgress(done: done, total: total))
            case let .comparison(text): emit(.notice(text))
            case let .finished(summary):
                comparing = false
                if let error = summary.error { emit(.error(error)) }
            default: break
            }
            return
        }
        guard let id = replyID else { return }
        switch event {
        case let .prefillProgress(done, total): emit(.prefillProgress(done: done, total: total))
        case let .textDelta(text): emit(.textDelta(messageID: id, text: text))
        case let .routing(step): emit(.routing(messageID: id, step: step))
        case let .stats(s): emit(.stats(s))
        case let .contextTrimmed(n): emit(.contextTrimmed(droppedMessages: n))
        case .comparison: break
        case let .finished(summary):
            guard var m = conversation.message(id) else { replyID = nil; return }
            m.finishReason = summary.reason
            m.promptTokens = summary.promptTokens
            m.completionTokens = summary.completionTokens
            // Rates as shown and saved (one decimal), so a reloaded chat is the same chat.
            m.prefillTokensPerSecond = (summary.prefillTokensPerSecond * 10).rounded() / 10
            m.decodeTokensPerSecond = (summary.decodeTokensPerSecond * 10).rounded() / 10
            m.seed = summary.seed
            if let base = continuedFrom { m.completionTokens += base.completionTokens }
            continuedFrom = nil
            replyID = nil
            emit(.finished(m))
            if let error = summary.error { emit(.error(error)) }
            if summary.reason == .context { emit(.notice("the reply reached the end of the context window")) }
            if summary.reason == .length {
                emit(.notice("the reply was cut at the token limit (max_tokens \(conversation.settings.maxTokens)): /continue goes on with it"))
            }
        }
    }

    // MARK: - commands

    func requireIdle() throws {
        if isBusy { throw ChatError("still answering: press Esc to stop it first") }
    }

    /// Adds a user message and starts the reply. A message the context cannot hold, or one sent
    /// while a reply runs, is refused before anything is stored.
    public func send(_ text: String) throws {
        try requireIdle()
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ChatError("the message is empty") }
        var m = ChatMessage(id: conversation.nextID, parent: conversation.leaf, role: .user, content: text,
                            time: TranscriptFormat.now())
        m.id = conversation.nextID
        try backend.check(conversation.prompt + [m], settings: conversation.settings)
        emit(.messageAdded(m))
        startReply()
    }

    /// Writes a new reply to the last user message of the path; the old reply (if any) stays
    /// as a sibling. `replyID`: another reply on the path to redo instead.
    public func regenerate(_ replyID: Int? = nil) throws {
        try requireIdle()
        let target = replyID.flatMap(conversation.message) ?? conversation.path.last
        guard let target else { throw ChatError("nothing to regenerate: send a message first") }
        if target.role == .assistant {
            emit(.regenerate(messageID: target.id))
        } else if target.role != .user {
            throw ChatError("nothing to regenerate")
        }
        guard conversation.path.last?.role == .user else { throw ChatError("nothing to regenerate: the chat has no message to answer") }
        startReply()
    }

    /// Replaces user message `id` by `text` as a new branch (the old one stays a sibling) and
    /// answers it.
    public func edit(_ id: Int, to text: String) throws {
        try requireIdle()
        guard let old = conversation.message(id), old.role == .user else { throw ChatError("only your own messages can be edited") }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ChatError("the message is empty") }
        let m = ChatMessage(id: conversation.nextID, parent: old.parent, role: .user, content: text, time: TranscriptFormat.now())
        var prompt = conversation.prompt
        if let i = prompt.firstIndex(where: { $0.id == id }) { prompt = Array(prompt[..<i]) }
        try backend.check(prompt + [m], settings: conversation.settings)
        emit(.branchSelected(leaf: old.parent))
        emit(.messageAdded(m))
        startReply()
    }

    /// Shows the sibling `offset` steps from message `id` (‹ ›), and the latest path below it.
    public func selectSibling(of id: Int, offset: Int) throws {
        try requireIdle()
        guard let m = conversation.message(id) else { return }
        let siblings = conversation.children(of: m.parent)
        guard let i = siblings.firstIndex(where: { $0.id == id }), siblings.count > 1 else {
            throw ChatError("this message has no other versions")
        }
        let next = siblings[(i + offset % siblings.count + siblings.count) % siblings.count]
        emit(.branchSelected(leaf: conversation.lastDescendant(of: next.id)))
    }

    /// Goes on with the last reply (cut by the token limit, or stopped) where it ended. The result
    /// is a new version of that reply (the cut one stays a sibling, as with /regen), whose text
    /// is the old one and what follows.
    public func continueReply() throws {
        try requireIdle()
        guard let last = conversation.path.last, last.role == .assistant else {
            throw ChatError("nothing to continue: the chat does not end with a reply")
        }
        guard last.finishReason != .eos, last.finishReason != .stop else {
            throw ChatError("the last reply ended by itself (\(last.finishReason?.rawValue ?? "?")); /regen writes it again")
        }
        guard !last.content.isEmpty else { throw ChatError("the last reply is empty: /regen writes it again") }
        var prompt = conversation.prompt
        prompt.removeLast()
        let start = ChatMessage(id: 0, parent: last.parent, role: .assistant, content: last.content)
        try backend.check(prompt + [start], settings: conversation.settings)
        emit(.regenerate(messageID: last.id))
        continuedFrom = last
        startReply(from: last.content)
    }

    /// The reply being continued (its text starts the new one; counts add up at the end).
    private var continuedFrom: ChatMessage?

    private func startReply(from start: String = "") {
        let id = conversation.nextID
        let count = conversation.messages.filter { $0.role == .assistant }.count
        var settings = conversation.settings
        // A fixed seed gives each reply its own stream (seed + replies so far), so /regen makes
        // a new reply and the recorded seed reproduces each one.
        if let seed = settings.sampling.seed { settings.sampling.seed = (seed &+ UInt64(count)) & SettingSpec.maxSeed }
        var reply = ChatMessage(id: id, parent: conversation.leaf, role: .assistant, content: start, time: TranscriptFormat.now())
        reply.experts = settings.experts
        let continuing = !start.isEmpty
        if !continuing { continuedFrom = nil }
        let request = ReplyRequest(messages: conversation.prompt + (continuing ? [reply] : []), settings: settings, continuing: continuing)
        emit(.messageAdded(reply))
        replyID = id
        cancel.reset()
        let backend = backend, channel = channel, cancel = cancel
        worker.submit { backend.reply(request, cancel: cancel) { channel.send($0) } }
    }

    /// Stops the reply in progress within one token; the partial reply is kept, marked stopped.
    public func stop() { if isBusy { cancel.cancel() } }

    /// Starts over; the system prompt and the settings stay. The transcript continues in a new file.
    public func newChat() throws {
        try requireIdle()
        emit(.newChat)
    }

    public func setSystem(_ text: String?) throws {
        try requireIdle()
        let t = text?.trimmingCharacters(in: .whitespacesAndNewlines)
        emit(.systemPromptSet(t?.isEmpty == true ? nil : t))
    }

    public func setTitle(_ text: String) {
        emit(.titleSet(text))
    }

    /// `/set NAME VALUE`: returns the line confirming it.
    @discardableResult
    public func set(_ name: String, _ value: String) throws -> String {
        guard let spec = SettingSpec.named(name) else {
            throw ChatError("unknown setting '\(name)'; settings: \(SettingSpec.all.map(\.name).joined(separator: ", "))")
        }
        var s = conversation.settings
        try spec.set(&s, value)
        if s != conversation.settings { emit(.settingsChanged(s)) }
        return "\(spec.name) = \(spec.display(s))"
    }

    /// `/experts [mask L:E… | force L:E… | k N | shared on|off | reset] …`: changes the routing
    /// interventions (several may follow each other: `/experts mask 3:5 k 2`), checked against
    /// the backend before they apply; alone, says what is in force. Returns the line to show.
    @discardableResult
    public func experts(_ arg: String) throws -> String {
        let usage = "/experts mask L:E[,E…][;L:E…] | force L:E… | k N|default | shared on|off | reset | compare (mask none / force none clear)"
        var words = arg.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)[...]
        let current = conversation.settings.experts
        guard !words.isEmpty else {
            return current.isEmpty ? "experts: routing as the model does (\(usage))" : "experts: \(current.summary) (/experts reset undoes)"
        }
        var e = current
        while let word = words.popFirst() {
            switch word {
            case "compare":
                guard words.isEmpty else { throw ChatError("/experts compare takes nothing after it") }
                return try compareExperts()
            case "reset", "off", "none": e = .none
            case "mask", "force":
                guard let spec = words.popFirst() else { throw ChatError("/experts \(word) needs LAYER:EXPERT[,EXPERT…]; \(usage)") }
                if spec == "none" {
                    if word == "mask" { e.mask = [:] } else { e.force = [:] }
                    continue
                }
                let table: [Int: [Int]]
                do { table = try Interventions.parseLayers(spec, what: word) } catch { throw ChatError("\(error)") }
                for (layer, experts) in table {
                    if word == "mask" {
                        e.mask[layer] = Array(Set(e.mask[layer, default: []] + experts)).sorted()
                    } else {
                        e.force[layer] = Array(Set(e.force[layer, default: []] + experts)).sorted()
                    }
                }
            case "k", "top_k", "experts-per-token":
                guard let value = words.popFirst() else { throw ChatError("/experts k needs a number of experts per token, or default") }
                if value == "default" { e.expertsPerToken = nil; continue }
                guard let n = Int(value) else { throw ChatError("/experts k: '\(value)' is not a number") }
                e.expertsPerToken = n
            case "shared":
                switch words.popFirst() {
                case "on": e.sharedExpert = true
                case "off": e.sharedExpert = false
                default: throw ChatError("/experts shared takes on or off")
                }
            default:
                throw ChatError("/experts: unknown '\(word)'; \(usage)")
            }
        }
        e = Interventions(mask: e.mask, force: e.force, expertsPerToken: e.expertsPerToken, sharedExpert: e.sharedExpert)
        try setExperts(e)
        return e.isEmpty ? "experts: routing as the model does, from the next reply"
            : "experts: \(e.summary), from the next reply (/experts reset undoes)"
    }

    /// `/experts compare`: the last reply written again from one seed with and without the
    /// interventions in force, side by side, with the KL divergence of the next-token
    /// distributions and top-1 agreement along the first (runs on the model thread; the result
    /// comes as a notice). Returns the line to show now.
    public func compareExperts() throws -> String {
        try requireIdle()
        let experts = conversation.settings.experts
        guard !experts.isEmpty else { throw ChatError("/experts compare needs interventions in force (/experts mask …, force …, k N, shared off)") }
        // The prompt of the last reply: the path up to its user message (or the whole path
        // when it ends with a user message).
        var path = conversation.path
        let last = path.last(where: { $0.role == .assistant })
        if path.last?.role == .assistant { path.removeLast() }
        guard path.last?.role == .user else { throw ChatError("/experts compare needs a message to answer: send one first") }
        var settings = conversation.settings
        // One seed for both: the last reply's, else the settings', else a new one.
        settings.sampling.seed = last?.seed ?? settings.sampling.seed ?? UInt64.random(in: 0...SettingSpec.maxSeed)
        let request = ReplyRequest(messages: (conversation.system.map { [ChatMessage(id: 0, role: .system, content: $0)] } ?? []) + path,
                                   settings: settings)
        comparing = true
        cancel.reset()
        let backend = backend, channel = channel, cancel = cancel
        worker.submit { backend.compare(request, cancel: cancel) { channel.send($0) } }
        return "comparing the reply with and without \(experts.summary) (seed \(settings.sampling.seed!)) …"
    }

    /// Replies from now on are made under `experts`, once the backend has checked them.
    public func setExperts(_ experts: Interventions) throws {
        do { try backend.check(experts) } catch let error as InterventionError { throw ChatError("\(error)") }
        var s = conversation.settings
        s.experts = experts
        if s != conversation.settings { emit(.settingsChanged(s)) }
    }

    public func describePrompt() throws -> String {
        try backend.describePrompt(conversation.prompt, settings: conversation.settings)
            ?? "this backend does not show the prompt's tokens"
    }

    // MARK: - files

    /// Opens a saved chat (any transcript version, or OpenAI-style JSON) in place of this one;
    /// a log is then appended to, as `--transcript` does. Returns a line describing what was
    /// loaded and how it differs from the backend now in use.
    @discardableResult
    public func load(_ path: String) throws -> String {
        try requireIdle()
        let file = resolvePath(path)
        let loaded = try Transcript.load(path: file, defaults: conversation.settings)
        emit(.loaded(loaded.conversation, path: file))
        var line = "loaded \(loaded.conversation.path.count) messages from \(file)"
        if let warning = Self.modelWarning(loaded.header, backend.info) { line += "; " + warning }
        if let skipped = loaded.skippedNotice { line += "; " + skipped }
        return line
    }

    /// What changed since a chat was saved: another model, another context size.
    public static func modelWarning(_ header: TranscriptHeader?, _ now: BackendInfo) -> String? {
        guard let h = header, !h.fingerprint.isEmpty else { return nil }
        var parts: [String] = []
        if h.fingerprint != now.fingerprint {
            let was = h.modelName.isEmpty ? h.model : h.modelName
            parts.append("it was made with another model (\(was), fingerprint \(h.fingerprint)); replies now come from \(now.modelName)")
        }
        if h.contextSize > 0, h.contextSize != now.contextSize {
            parts.append("the context is \(now.contextSize) tokens (it was \(h.contextSize)), so what is trimmed differs")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// Writes the whole chat (every branch, with its timestamps, counts and settings) to `path`.
    public func save(to path: String, overwrite: Bool = false) throws -> String {
        // Mid-reply the copy would end on a message that is not written yet.
        try requireIdle()
        let file = try writableTarget(path)
        var header = transcript?.header ?? TranscriptHeader(backend.info)
        header.time = TranscriptFormat.now()
        try Transcript.writeAtomically(Transcript.log(conversation, header: header), to: file, overwrite: overwrite)
        return "saved \(conversation.messages.filter { !$0.isPending }.count) messages to \(file)"
    }

    /// `path` as the user typed it, resolved, unless it is the chat's own log: a file renamed
    /// over the log (by /save!, /export!, /routing export!) would cut the log's writer off from it.
    private func writableTarget(_ path: String) throws -> String {
        let file = resolvePath(path)
        if let own = transcript?.path,
           (own as NSString).resolvingSymlinksInPath == (file as NSString).resolvingSymlinksInPath {
            throw ChatError("\(file) is this chat's own log (it saves itself there as it goes); choose another file")
        }
        return file
    }

    /// Writes the current path as Markdown to `path`.
    public func export(to path: String, overwrite: Bool = false) throws -> String {
        let file = try writableTarget(path)
        try Transcript.writeAtomically(Self.markdown(conversation), to: file, overwrite: overwrite)
        return "exported \(conversation.path.count) messages to \(file)"
    }

    /// The chat's routing (every reply's tokens) as CSV rows (`.csv`) or Sources/NekoRouting/README.md's analysis
    /// (`.json`), like `nekochat routing --transcript`.
    public func exportRouting(to path: String, overwrite: Bool = false) throws -> String {
        let file = try writableTarget(path)
        guard let trace = try RoutingTrace.of(conversation.routingSequences, experts: max(1, backend.info.experts)) else {
            throw ChatError("there is no routing in this chat yet")
        }
        if file.hasSuffix(".csv") {
            try Transcript.writeAtomically(RoutingCSV.write(trace), to: file, overwrite: overwrite)
            return "wrote \(trace.count) tokens × \(trace.moeLayers.count) layers × \(trace.topK) experts to \(file)"
        }
        guard file.hasSuffix(".json") else { throw ChatError("/routing export writes FILE.csv or FILE.json") }
        try Transcript.writeAtomically(RoutingAnalysis.analyze(trace).json.serialized + "\n", to: file, overwrite: overwrite)
        return "wrote the routing analysis of \(trace.count) tokens to \(file)"
    }

    public static func markdown(_ c: Conversation) -> String {
        var parts: [String] = []
        if let t = c.title { parts.append("# \(t)\n") }
        if let s = c.system { parts.append("**system**\n\n\(s)\n") }
        for m in c.path { parts.append("**\(m.role == .user ? "you" : m.role.rawValue)**\n\n\(m.content)\n") }
        return parts.joined(separator: "\n")
    }
}
