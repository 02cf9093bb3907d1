import Foundation
import NekoJSON

/// A conversation on disk as JSON Lines, an append-only log: a header line, one line per
/// message (`{"role", "content"}` as OpenAI and `apply_chat_template` use, plus metadata),
/// and one line per later change (`system`, `set`, `regen`, `new`); loading replays the log. Lines are
/// written and flushed as they complete, so a crash loses nothing.
public final class Transcript: @unchecked Sendable {
    public static let formatVersion = 1
    public let path: String
    private let handle: FileHandle

    /// Opens `path` for appending, writing the header when the file is new.
    public init(path: String, model: String, fingerprint: String, settings: [(String, JSONValue)] = []) throws {
        self.path = path
        let fm = FileManager.default
        try fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let isNew = !fm.fileExists(atPath: path)
        if isNew, !fm.createFile(atPath: path, contents: nil) {
            throw TranscriptError(path: path, line: 0, message: "cannot create the file")
        }
        guard let h = FileHandle(forWritingAtPath: path) else {
            throw TranscriptError(path: path, line: 0, message: "cannot open for writing")
        }
        handle = h
        handle.seekToEndOfFile()
        if isNew {
            write(.object([("type", .string("header")), ("version", .int(Self.formatVersion)), ("model", .string(model)),
                           ("fingerprint", .string(fingerprint)), ("settings", .object(settings)), ("time", .string(Self.now()))]))
        }
    }

    deinit { try? handle.close() }

    static func now() -> String { ISO8601DateFormatter().string(from: Date()) }

    public func append(_ m: ChatMessage) {
        write(Self.line(m))
    }

    public func appendEvent(_ type: String, _ fields: [(String, JSONValue)] = []) {
        write(.object([("type", .string(type)), ("time", .string(Self.now()))] + fields))
    }

    public static func line(_ m: ChatMessage) -> JSONValue {
        var fields: [(String, JSONValue)] = [("role", .string(m.role.rawValue)), ("content", .string(m.content)),
                                             ("id", .int(m.id)), ("time", .string(now()))]
        if m.role == .assistant {
            fields += [("prompt_tokens", .int(m.promptTokens)), ("completion_tokens", .int(m.completionTokens)),
                       ("tokens_per_s", .double(m.decodeTokensPerSecond.isFinite ? m.decodeTokensPerSecond : 0)),
                       ("stopped", .bool(m.stopped))]
        }
        return .object(fields)
    }

    /// The last write error (full disk, …), for the chat to report; writing goes on.
    public private(set) var lastError: String?

    private func write(_ v: JSONValue) {
        do {
            try handle.write(contentsOf: Data((v.serialized + "\n").utf8))
            try handle.synchronize()
        } catch {
            lastError = "cannot write the transcript \(path): \(error.localizedDescription)"
        }
    }

    /// Writes a compacted copy (header + the messages) to `path` atomically: a temporary file
    /// renamed over the target, so a failure never truncates an existing file.
    public static func save(_ messages: [ChatMessage], to path: String, model: String, fingerprint: String) throws {
        var text = JSONValue.object([("type", .string("header")), ("version", .int(formatVersion)), ("model", .string(model)),
                                     ("fingerprint", .string(fingerprint)), ("time", .string(now()))]).serialized + "\n"
        for m in messages { text += line(m).serialized + "\n" }
        let url = URL(fileURLWithPath: path)
        do {
            try Data(text.utf8).write(to: url, options: .atomic)
        } catch {
            throw TranscriptError(path: path, line: 0, message: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Whether `path` holds one JSON document (OpenAI-style messages) rather than a log.
    public static func isSingleDocument(path: String) -> Bool {
        guard let data = FileManager.default.contents(atPath: path),
              let whole = try? JSONValue.parse([UInt8](data)) else { return false }
        return whole.array != nil || whole["messages"] != nil
    }

    /// Replays a transcript (JSON Lines as written here), or reads OpenAI-style JSON:
    /// `[{role, content}]` or `{"messages": [...]}`.
    public static func load(path: String) throws -> [ChatMessage] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TranscriptError(path: path, line: 0, message: "cannot read the file")
        }
        let bytes = [UInt8](data)
        if let whole = try? JSONValue.parse(bytes), whole.array != nil || whole["messages"] != nil {
            return try messages(from: whole.array ?? whole["messages"]?.array ?? [], path: path)
        }
        var out: [ChatMessage] = []
        var lineNumber = 0
        for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            let v: JSONValue
            do { v = try JSONValue.parse(Array(line)) } catch {
                throw TranscriptError(path: path, line: lineNumber, message: "not valid JSON (\(error))")
            }
            switch v["type"]?.string {
            case "header", "set": continue
            case "load":
                out = try messages(from: v["messages"]?.array ?? [], path: path)
            case "new": out.removeAll { $0.role != .system }
            case "system":
                let text = v["content"]?.string ?? ""
                if let i = out.firstIndex(where: { $0.role == .system }) { out[i].content = text } else {
                    out.insert(ChatMessage(id: 0, role: .system, content: text), at: 0)
                }
            case "regen": if out.last?.role == .assistant { out.removeLast() }
            default:
                out.append(try message(v, index: out.count, path: path, line: lineNumber))
            }
        }
        return out
    }

    static func messages(from items: [JSONValue], path: String) throws -> [ChatMessage] {
        try items.enumerated().map { try message($0.element, index: $0.offset, path: path, line: $0.offset + 1) }
    }

    static func message(_ v: JSONValue, index: Int, path: String, line: Int) throws -> ChatMessage {
        guard let roleName = v["role"]?.string, let role = ChatMessage.Role(rawValue: roleName) else {
            throw TranscriptError(path: path, line: line, message: "a message needs a role: system, user or assistant")
        }
        guard let content = v["content"]?.string else {
            throw TranscriptError(path: path, line: line, message: "a message needs a string content")
        }
        // Ids are renumbered in order: a file's own ids may repeat or be anything at all.
        var m = ChatMessage(id: index + 1, role: role, content: content)
        m.stopped = v["stopped"]?.bool ?? false
        m.promptTokens = v["prompt_tokens"]?.int ?? 0
        m.completionTokens = v["completion_tokens"]?.int ?? 0
        m.decodeTokensPerSecond = v["tokens_per_s"]?.double ?? 0
        return m
    }
}

public struct TranscriptError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let line: Int
    public let message: String
    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}
