import Foundation
import NekoJSON

/// A saved chat as the conversation browser lists it.
public struct ChatSummary: Sendable, Equatable {
    public var path: String
    /// `/title`, else the first user message (one line).
    public var title: String
    public var modelName: String
    /// When the chat started (the header's time, else the file's date).
    public var date: Date
    public var messages: Int
    /// Every message's text, for search.
    public var text: String

    /// Where `query` (case-insensitive) occurs: a short excerpt around it, or nil.
    public func match(_ query: String) -> String? {
        guard !query.isEmpty else { return "" }
        if title.range(of: query, options: .caseInsensitive) != nil { return "" }
        guard let r = text.range(of: query, options: .caseInsensitive) else { return nil }
        let start = text.index(r.lowerBound, offsetBy: -24, limitedBy: text.startIndex) ?? text.startIndex
        let end = text.index(r.upperBound, offsetBy: 40, limitedBy: text.endIndex) ?? text.endIndex
        return (start > text.startIndex ? "…" : "") + text[start..<end].replacingOccurrences(of: "\n", with: " ")
            + (end < text.endIndex ? "…" : "")
    }
}

/// The saved chats of a store: listing, renaming, deleting to the trash and back.
public enum ChatLibrary {
    /// The chats, newest first. A file that cannot be read is listed with its error as title.
    public static func summaries(_ store: TranscriptStore) -> [ChatSummary] {
        store.list().map { summary(path: $0) }.sorted { $0.date > $1.date }
    }

    public static func summary(path: String) -> ChatSummary {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let fileDate = attributes?[.modificationDate] as? Date ?? Date(timeIntervalSince1970: 0)
        guard let loaded = try? Transcript.load(path: path) else {
            return ChatSummary(path: path, title: "(unreadable: \((path as NSString).lastPathComponent))", modelName: "",
                               date: fileDate, messages: 0, text: "")
        }
        let c = loaded.conversation
        let first = c.messages.first { $0.role == .user }?.content ?? "(empty)"
        let title = c.title ?? first.split(separator: "\n").first.map(String.init) ?? first
        let date = loaded.header.flatMap { ISO8601DateFormatter().date(from: $0.time) } ?? fileDate
        return ChatSummary(path: path, title: String(title.prefix(200)), modelName: loaded.header?.modelName ?? "",
                           date: date, messages: c.messages.count, text: c.messages.map(\.content).joined(separator: "\n"))
    }

    /// Names a saved chat: a `title` line appended to its log (the file stays append-only).
    public static func rename(_ path: String, to title: String) throws {
        guard let line = TranscriptFormat.line(.titleSet(title)) else { return }
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw ChatError("\(path): cannot open it to rename the chat") }
        defer { try? handle.close() }
        do {
            let end = try handle.seekToEnd()
            // A log that does not end with a newline (a crash mid-line) gets one first.
            var text = line.serialized + "\n"
            if end > 0 {
                try handle.seek(toOffset: end - 1)
                if try handle.read(upToCount: 1) != Data([0x0A]) { text = "\n" + text }
                try handle.seekToEnd()
            }
            try handle.write(contentsOf: Data(text.utf8))
            try handle.synchronize()
        } catch {
            throw ChatError(userMessage(error, path: path))
        }
    }

    /// Moves a chat to the store's trash; returns where it went (for `restore`).
    @discardableResult
    public static func trash(_ path: String, store: TranscriptStore) throws -> String {
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: store.trash, withIntermediateDirectories: true)
            var target = store.trash + "/" + (path as NSString).lastPathComponent
            var n = 2
            while fm.fileExists(atPath: target) {
                target = store.trash + "/" + ((path as NSString).lastPathComponent as NSString).deletingPathExtension + "-\(n).jsonl"
                n += 1
            }
            try fm.moveItem(atPath: path, toPath: target)
            return target
        } catch {
            throw ChatError(userMessage(error, path: path))
        }
    }

    /// Puts a trashed chat back where it was.
    public static func restore(_ trashed: String, to path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { throw ChatError("\(path) exists again: the trashed copy stays in \(trashed)") }
        do { try FileManager.default.moveItem(atPath: trashed, toPath: path) } catch { throw ChatError(userMessage(error, path: trashed)) }
    }
}
