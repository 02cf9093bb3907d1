import Foundation
import NekoModel
import NekoJSON

/// The first line of a transcript: which format, model and backend wrote it.
public struct TranscriptHeader: Sendable, Equatable {
    public var version = TranscriptFormat.version
    public var backend = "local"
    /// The model directory (local) or server URL (remote), and its short name.
    public var model = ""
    public var modelName = ""
    public var fingerprint = ""
    public var contextSize = 0
    /// Routed experts per MoE layer (what routing analyses of the saved chat need).
    public var experts = 0
    public var time = ""
    /// The model's Hub id (`ORG/NAME`) and commit, when it came from the Hugging Face cache.
    public var hubModel: String?
    public var hubCommit: String?

    public init() {}

    public init(_ info: BackendInfo, time: String = TranscriptFormat.now()) {
        backend = info.kind
        model = info.location
        modelName = info.modelName
        fingerprint = info.fingerprint
        contextSize = info.contextSize
        experts = info.experts
        self.time = time
    }
}

/// Transcripts on disk: JSON Lines, an append-only log of the conversation's recorded events
/// (`Conversation.isRecorded`), one per line, each line written and flushed as it happens.
/// Loading replays the lines through `Conversation.apply`. This type is the one place where
/// an event becomes a line and a line an event.
///
/// Version 2 lines (`type`): `header`, `message` (a user message, or a finished reply with its
/// counts and routing), `system`, `settings`, `title`, `regen`, `select`, `trimmed`, `new`.
/// Version 1 files (nekochat 0.1: message lines without a `type`, `set` with a name and a value
/// as text, `regen` without an id, `load` with a list of messages) are read as well.
public enum TranscriptFormat {
    public static let version = 2

    public static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    // MARK: writing

    public static func line(_ h: TranscriptHeader) -> JSONValue {
        .object([("type", .string("header")), ("version", .int(h.version)), ("backend", .string(h.backend)),
                 ("model", .string(h.model)), ("model_name", .string(h.modelName)), ("fingerprint", .string(h.fingerprint)),
                 ("context", .int(h.contextSize)), ("experts", .int(h.experts)), ("time", .string(h.time))]
                + (h.hubModel.map { [("hub_model", .string($0)), ("hub_commit", .string(h.hubCommit ?? ""))] } ?? []))
    }

    /// The line of a recorded event (nil for events that are not recorded).
    public static func line(_ event: ChatEvent) -> JSONValue? {
        let time: (String, JSONValue) = ("time", .string(now()))
        switch event {
        case let .messageAdded(m) where !m.isPending: return line(m)
        case let .finished(m): return line(m)
        case let .systemPromptSet(text): return .object([("type", .string("system")), ("content", text.map { .string($0) } ?? .null), time])
        case let .settingsChanged(s): return .object([("type", .string("settings")), ("settings", s.json), time])
        case let .titleSet(t): return .object([("type", .string("title")), ("title", .string(t)), time])
        case let .regenerate(id): return .object([("type", .string("regen")), ("of", .int(id)), time])
        case let .branchSelected(leaf): return .object([("type", .string("select")), ("leaf", leaf.map { .int($0) } ?? .null), time])
        case let .contextTrimmed(n): return .object([("type", .string("trimmed")), ("dropped", .int(n)), time])
        case .newChat: return .object([("type", .string("new")), time])
        default: return nil
        }
    }

    public static func line(_ m: ChatMessage) -> JSONValue {
        var fields: [(String, JSONValue)] = [
            ("type", .string("message")), ("id", .int(m.id)), ("parent", m.parent.map { .int($0) } ?? .null),
            ("role", .string(m.role.rawValue)), ("content", .string(m.content)), ("time", .string(m.time ?? now())),
        ]
        if m.role == .assistant {
            fields += [("finish_reason", .string((m.finishReason ?? .cancelled).rawValue)),
                       ("prompt_tokens", .int(m.promptTokens)), ("completion_tokens", .int(m.completionTokens)),
                       ("prefill_tokens_per_s", .rate(m.prefillTokensPerSecond)),
                       ("tokens_per_s", .rate(m.decodeTokensPerSecond))]
            if let seed = m.seed { fields.append(("seed", .int(Int(truncatingIfNeeded: seed)))) }
            if !m.experts.isEmpty { fields.append(("experts", m.experts.json)) }
        }
        if !m.routing.isEmpty { fields.append(("routing", RoutingCodec.encode(m.routing))) }
        return .object(fields)
    }

    /// The events that rebuild `c` from nothing: its settings, system prompt, title, every
    /// message in the order they were added, and the current path.
    public static func events(rebuilding c: Conversation) -> [ChatEvent] {
        var out: [ChatEvent] = [.settingsChanged(c.settings)]
        if let s = c.system { out.append(.systemPromptSet(s)) }
        if let t = c.title { out.append(.titleSet(t)) }
        for m in c.messages where !m.isPending { out.append(m.role == .assistant ? .finished(m) : .messageAdded(m)) }
        if c.leaf != c.messages.last(where: { !$0.isPending })?.id { out.append(.branchSelected(leaf: c.leaf)) }
        return out
    }

    // MARK: reading

    /// Replays the lines of a transcript; a bad line is an error naming the file and line.
    /// Replays a log. A line that cannot be read (mangled JSON, a bad field) is skipped and said
    /// in `skipped` ("path:line: why"), and the rest of the chat opens; the file itself is never
    /// rewritten without it. A file whose first line is unreadable is not a log: an error. A log
    /// of a newer format than this nekochat reads is refused, naming its version.
    public static func replay(_ bytes: [UInt8], path: String, defaults: ChatSettings) throws
        -> (header: TranscriptHeader?, conversation: Conversation, skipped: [String]) {
        var conversation = Conversation(settings: defaults)
        var header: TranscriptHeader?
        var skipped: [String] = []
        var lineNumber = 0, readAny = false
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        for raw in lines {
            lineNumber += 1
            if raw.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            func fail(_ message: String) -> ChatError { ChatError("\(path):\(lineNumber): \(message)") }
            do {
                let v: JSONValue
                do { v = try JSONValue.parse(Array(raw)) } catch {
                    // A last line without its newline is a write the process did not finish (killed,
                    // power lost): what came before it is the chat.
                    if lineNumber == lines.count, bytes.last != 0x0A { break }
                    throw fail("not valid JSON (\(error))")
                }
                guard v.members != nil else { throw fail("expected a JSON object") }
                try replay(line: v, header: &header, conversation: &conversation, adoptOrphans: !skipped.isEmpty, fail)
                readAny = true
            } catch let error as ChatError {
                if error.isNewerFormat || !readAny { throw error }
                skipped.append(error.description)
            }
        }
        return (header, conversation, skipped)
    }

    /// One line of a log, applied to the conversation (or read into the header).
    /// `adoptOrphans`: lines were skipped, so a message whose parent was on one of them follows
    /// the message before it instead.
    static func replay(line v: JSONValue, header: inout TranscriptHeader?, conversation: inout Conversation,
                       adoptOrphans: Bool, _ fail: (String) -> ChatError) throws {
            switch v["type"]?.string {
            case "header":
                var h = TranscriptHeader()
                h.version = v["version"]?.int ?? 1
                if h.version > version || h.version < 1 {
                    var error = fail("a transcript of format version \(h.version), which this nekochat cannot read (it reads versions 1 to \(version)); a newer nekochat wrote it?")
                    error.isNewerFormat = true
                    throw error
                }
                h.backend = v["backend"]?.string ?? "local"
                h.model = v["model"]?.string ?? ""
                h.modelName = v["model_name"]?.string ?? ""
                h.fingerprint = v["fingerprint"]?.string ?? ""
                h.contextSize = v["context"]?.int ?? v["settings"]?["context"]?.int ?? 0
                h.experts = v["experts"]?.int ?? 0
                h.time = v["time"]?.string ?? ""
                h.hubModel = v["hub_model"]?.string
                h.hubCommit = v["hub_commit"]?.string
                if header == nil { header = h }
                if h.version == 1, let s = v["settings"], s.members != nil {
                    // Version 1 kept the starting settings in the header.
                    conversation.apply(.settingsChanged(try settings(s, over: conversation.settings, fail)))
                    if let system = s["system"]?.string { conversation.apply(.systemPromptSet(system)) }
                }
            case "message", nil:
                if let m = try message(v, conversation: &conversation, adoptOrphans: adoptOrphans, fail) {
                    conversation.apply(m.role == .assistant ? .finished(m) : .messageAdded(m))
                }
            case "system":
                let text = v["content"]?.string
                conversation.apply(.systemPromptSet(text?.isEmpty == true ? nil : text))
            case "settings":
                conversation.apply(.settingsChanged(try settings(v["settings"] ?? .null, over: conversation.settings, fail)))
            case "set":   // version 1: one name and its value as text
                var s = conversation.settings
                if let name = v["name"]?.string, let spec = SettingSpec.named(name), let value = v["value"] {
                    do { try spec.set(&s, value.string ?? value.serialized) } catch { throw fail("\(error)") }
                }
                conversation.apply(.settingsChanged(s))
            case "title": conversation.apply(.titleSet(v["title"]?.string ?? ""))
            case "regen":
                let id = v["of"]?.int ?? conversation.path.last(where: { $0.role == .assistant })?.id
                if let id { conversation.apply(.regenerate(messageID: id)) }
            case "select": conversation.apply(.branchSelected(leaf: v["leaf"]?.int))
            case "trimmed": break
            case "new": conversation.apply(.newChat)
            case "load":   // version 1: the conversation replaced by a list of messages
                conversation.apply(.newChat)
                for item in v["messages"]?.array ?? [] {
                    if let m = try message(item, conversation: &conversation, fail) {
                        conversation.apply(m.role == .assistant ? .finished(m) : .messageAdded(m))
                    }
                }
            case let other?:
                throw fail("unknown line type '\(other)'")
            }
    }

    static func settings(_ json: JSONValue, over base: ChatSettings, _ fail: (String) -> ChatError) throws -> ChatSettings {
        do { return try ChatSettings(json: json, defaults: base) } catch { throw fail("\(error)") }
    }

    /// A message line. Lines without an id or parent (version 1, OpenAI-style lists) follow the
    /// current path. A system message sets the system prompt instead (nil is returned).
    static func message(_ v: JSONValue, conversation: inout Conversation, adoptOrphans: Bool = false,
                        _ fail: (String) -> ChatError) throws -> ChatMessage? {
        guard let roleName = v["role"]?.string, let role = ChatMessage.Role(rawValue: roleName) else {
            throw fail("a message needs a role: system, user or assistant")
        }
        guard let content = v["content"]?.string else { throw fail("a message needs a string content") }
        var id = v["id"]?.int ?? conversation.nextID
        // Ids are renumbered when missing, taken, or outside 1 … 2⁴⁰ (a corrupt id such as
        // Int.max would otherwise overflow the next id).
        if v["type"]?.string != "message" || !(1...(1 << 40)).contains(id) || conversation.message(id) != nil {
            id = conversation.nextID
        }
        let parent: Int?
        if v["type"]?.string == "message", v["parent"] != nil {
            if let p = v["parent"]?.int, conversation.message(p) == nil {
                guard adoptOrphans else { throw fail("message \(id) answers message \(p), which comes nowhere before it") }
                parent = conversation.leaf
            } else {
                parent = v["parent"]?.int
            }
        } else {
            parent = conversation.leaf
        }
        if role == .system {
            // A system message is the system prompt, not a turn.
            conversation.apply(.systemPromptSet(content.isEmpty ? nil : content))
            return nil
        }
        var m = ChatMessage(id: id, parent: parent, role: role, content: content, time: v["time"]?.string)
        if role == .assistant {
            m.finishReason = v["finish_reason"]?.string.flatMap(FinishReason.init(rawValue:))
                ?? ((v["stopped"]?.bool ?? false) ? .cancelled : .eos)
            m.promptTokens = v["prompt_tokens"]?.int ?? 0
            m.completionTokens = v["completion_tokens"]?.int ?? 0
            m.prefillTokensPerSecond = v["prefill_tokens_per_s"]?.double ?? 0
            m.decodeTokensPerSecond = v["tokens_per_s"]?.double ?? 0
            m.seed = v["seed"]?.int.flatMap { $0 >= 0 ? UInt64($0) : nil }
            if let e = v["experts"] {
                do { m.experts = try Interventions(json: e) } catch { throw fail("experts: \(error)") }
            }
        }
        if let r = v["routing"] {
            do { m.routing = try RoutingCodec.decode(r) } catch { throw fail("routing: \(error)") }
        }
        return m
    }
}

extension JSONValue {
    /// A Float as it was written: its shortest decimal digits, so 0.8 stays 0.8 in files.
    public static func float(_ f: Float) -> JSONValue {
        f.isFinite ? .double(Double(String(f)) ?? Double(f)) : .null
    }

    /// A rate (tokens per second) with one decimal, as shown.
    static func rate(_ d: Double) -> JSONValue {
        d.isFinite ? .double((d * 10).rounded() / 10) : .double(0)
    }
}
