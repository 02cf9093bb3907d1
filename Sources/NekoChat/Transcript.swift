import Foundation
import NekoJSON

/// Where chats are kept: `$XDG_DATA_HOME/nekochat/` (default `~/.local/share/nekochat/`), one
/// `chat-<time>.jsonl` file per chat; deleted chats move to `trash/` beside them.
public struct TranscriptStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// The store of this user (from the environment).
    public static func standard(environment: [String: String] = ProcessInfo.processInfo.environment) -> TranscriptStore {
        let base = environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.local/share")
        return TranscriptStore(directory: base + "/nekochat")
    }

    public var trash: String { directory + "/trash" }

    /// A new file name for a chat started now (never an existing file's).
    public func newPath(now: Date = Date()) -> String {
        let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "-")
        var path = "\(directory)/chat-\(stamp).jsonl"
        var n = 2
        while FileManager.default.fileExists(atPath: path) {
            path = "\(directory)/chat-\(stamp)-\(n).jsonl"
            n += 1
        }
        return path
    }

    /// The file that names the chat the user was in when the chat last closed.
    var lastFile: String { directory + "/last-chat" }

    /// Remembers `path` as the chat to `--continue` (best effort: a failure only loses the hint).
    public func rememberLast(_ path: String) {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? Transcript.writeAtomically(path + "\n", to: lastFile, overwrite: true)
    }

    /// The chat to continue: the one the user was in when the chat last closed, if it is still
    /// there, else the newest in the store.
    public func chatToContinue() -> String? {
        if let text = try? String(contentsOfFile: lastFile, encoding: .utf8) {
            let path = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !path.isEmpty, FileManager.default.fileExists(atPath: path) { return path }
        }
        return list().first
    }

    /// The chats in the store, newest first.
    public func list() -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(".jsonl") }.map { directory + "/" + $0 }.sorted(by: >)
    }
}

/// Reading transcripts: nekochat's logs (any version) and OpenAI-style JSON (`[{role,
/// content}]` or `{"messages": [...]}`), which can start a chat but is never appended to.
public enum Transcript {
    public struct Loaded: Sendable {
        public var header: TranscriptHeader?
        public var conversation: Conversation
        /// False for OpenAI-style documents: the chat then continues in a new log.
        public var isLog: Bool
        /// Lines that could not be read and were left out ("path:line: why"); the file keeps them.
        public var skipped: [String] = []

        /// What to tell the user about the skipped lines (nil when none).
        public var skippedNotice: String? {
            guard let first = skipped.first else { return nil }
            let more = skipped.count > 1 ? " (and \(skipped.count - 1) more line\(skipped.count > 2 ? "s" : ""))" : ""
            return "skipped \(first)\(more); the rest of the chat is open and the file keeps every line"
        }
    }

    public static func load(path: String, defaults: ChatSettings = ChatSettings()) throws -> Loaded {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw ChatError(userMessage(error, path: path)) }
        let bytes = [UInt8](data)
        if let whole = try? JSONValue.parse(bytes), let items = whole.array ?? whole["messages"]?.array {
            var c = Conversation(settings: defaults)
            for (i, item) in items.enumerated() {
                func fail(_ m: String) -> ChatError { ChatError("\(path): message \(i + 1): \(m)") }
                guard item.members != nil else { throw fail("expected a JSON object") }
                if let m = try TranscriptFormat.message(item, conversation: &c, fail) {
                    c.apply(m.role == .assistant ? .finished(m) : .messageAdded(m))
                }
            }
            return Loaded(header: nil, conversation: c, isLog: false)
        }
        let (header, conversation, skipped) = try TranscriptFormat.replay(bytes, path: path, defaults: defaults)
        return Loaded(header: header, conversation: conversation, isLog: true, skipped: skipped)
    }

    /// Writes `lines` to `path` atomically: a temporary file beside it, flushed, then renamed
    /// over it — a failure (a full disk) leaves an existing file as it was.
    public static func writeAtomically(_ text: String, to path: String, overwrite: Bool) throws {
        let fm = FileManager.default
        if !overwrite, fm.fileExists(atPath: path) { throw ChatError("\(path) exists (add ! to the command to overwrite it)") }
        let dir = (path as NSString).deletingLastPathComponent
        let temp = "\(dir.isEmpty ? "." : dir)/.\((path as NSString).lastPathComponent).\(getpid()).tmp"
        do {
            try fm.createDirectory(atPath: dir.isEmpty ? "." : dir, withIntermediateDirectories: true)
            guard fm.createFile(atPath: temp, contents: nil), let handle = FileHandle(forWritingAtPath: temp) else {
                throw ChatError("\(path): cannot create the file (\(String(cString: strerror(errno))))")
            }
            do {
                try handle.write(contentsOf: Data(text.utf8))
                try handle.synchronize()
                try handle.close()
            } catch {
                try? handle.close()
                throw error
            }
            guard rename(temp, path) == 0 else { throw ChatError("\(path): cannot replace the file (\(String(cString: strerror(errno))))") }
        } catch {
            try? fm.removeItem(atPath: temp)
            if let e = error as? ChatError { throw e }
            throw ChatError(userMessage(error, path: path) + "; nothing was written")
        }
    }

    /// The whole conversation as a log (header + the events that rebuild it).
    public static func log(_ c: Conversation, header: TranscriptHeader) -> String {
        ([TranscriptFormat.line(header)] + TranscriptFormat.events(rebuilding: c).compactMap(TranscriptFormat.line))
            .map { $0.serialized + "\n" }.joined()
    }
}

/// Writes a chat's recorded events as they happen, one flushed line each: the transcript is a
/// sink of the conversation's events. The file is created with the first message (a chat
/// where nothing was sent leaves no file); `.newChat` starts a new file.
public final class TranscriptWriter {
    public private(set) var path: String?
    public let store: TranscriptStore
    public var header: TranscriptHeader
    private var handle: FileHandle?
    /// Lines waiting for the file (settings, system prompt before the first message).
    private var waiting: [JSONValue] = []
    /// The last write error (a full disk, …), until the next successful write.
    public private(set) var lastError: String?
    /// Appending to an existing log: no header is written.
    private var appending = false

    /// A writer for a new chat (its file made in `store` when the first message comes), or
    /// appending to the log at `path`.
    public init(store: TranscriptStore, header: TranscriptHeader, appendingTo path: String? = nil) {
        self.store = store
        self.header = header
        self.path = path
        appending = path != nil
    }

    deinit { try? handle?.close() }

    /// Records `event`; `conversation` is the conversation after it.
    public func record(_ event: ChatEvent, conversation: Conversation) {
        switch event {
        case .newChat:
            close()
            path = nil
            appending = false
            waiting = TranscriptFormat.events(rebuilding: conversation).compactMap(TranscriptFormat.line)
            return
        case let .loaded(c, loadedPath):
            close()
            if loadedPath.hasSuffix(".jsonl") || (try? Transcript.load(path: loadedPath).isLog) == true {
                path = loadedPath
                appending = true
                waiting = []
            } else {
                path = nil
                appending = false
                waiting = TranscriptFormat.events(rebuilding: c).compactMap(TranscriptFormat.line)
            }
            return
        default: break
        }
        guard Conversation.isRecorded(event), let line = TranscriptFormat.line(event) else { return }
        let isMessage: Bool
        switch event {
        case .messageAdded, .finished: isMessage = true
        default: isMessage = false
        }
        if handle == nil && !isMessage && !appending {
            waiting.append(line)
            return
        }
        write(line)
    }

    private func open() -> Bool {
        if handle != nil { return true }
        let fm = FileManager.default
        let target = path ?? store.newPath()
        do {
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        } catch {
            lastError = "cannot save the chat: \(userMessage(error, path: (target as NSString).deletingLastPathComponent))"
            return false
        }
        let isNew = !fm.fileExists(atPath: target)
        if isNew, !fm.createFile(atPath: target, contents: nil) {
            lastError = "cannot save the chat: \(target): \(String(cString: strerror(errno)))"
            return false
        }
        guard let h = FileHandle(forWritingAtPath: target) else {
            lastError = "cannot save the chat: \(target): cannot open it for writing"
            return false
        }
        let end = (try? h.seekToEnd()) ?? 0
        // A log whose last line was cut off (the process was killed mid-write) goes on after its
        // last whole line (found however long the cut line is: a routing line can pass 1 MB).
        if end > 0, let r = FileHandle(forReadingAtPath: target) {
            try? r.seek(toOffset: end - 1)
            if let last = try? r.read(upToCount: 1), last.first != 0x0A {
                // nil: a read failed, so nothing is cut (a log is never shortened on a guess).
                var keep: UInt64? = nil, pos = end
                while pos > 0 {
                    let n = min(pos, 1 << 20)
                    guard (try? r.seek(toOffset: pos - n)) != nil, let bytes = try? r.read(upToCount: Int(n)),
                          bytes.count == Int(n) else { break }
                    if let i = bytes.lastIndex(of: 0x0A) { keep = pos - n + UInt64(i - bytes.startIndex) + 1; break }
                    pos -= n
                    if pos == 0 { keep = 0 }   // one cut line and nothing before it
                }
                if let keep {
                    try? h.truncate(atOffset: keep)
                    _ = try? h.seekToEnd()
                }
            }
            try? r.close()
        }
        handle = h
        path = target
        if isNew { waiting.insert(TranscriptFormat.line(header), at: 0) }
        return true
    }

    private func write(_ line: JSONValue) {
        // The file cannot be opened yet (no space, no folder): keep the line for the next write,
        // so no message goes missing and every later line's parent is in the file.
        guard open(), let handle else { waiting.append(line); return }
        let lines = waiting + [line]
        let offset = (try? handle.offset()) ?? 0
        do {
            try handle.write(contentsOf: Data(lines.map { $0.serialized + "\n" }.joined().utf8))
            try handle.synchronize()
            waiting = []
            lastError = nil
        } catch {
            // A partial line would corrupt the log: cut it off, and keep the lines for the next
            // write (space may come back).
            try? handle.truncate(atOffset: offset)
            waiting = lines
            lastError = "cannot save the chat to \(path ?? "?"): \(userMessage(error)); the chat goes on and is saved when there is room"
        }
    }

    /// Closes the file (the next message opens it again, or a new one after `.newChat`).
    public func close() {
        try? handle?.close()
        handle = nil
    }
}
