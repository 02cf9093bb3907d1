import Foundation
@testable import NekoChat
import Testing

@Suite struct TranscriptTests {
    func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("tx-\(UUID().uuidString)/\(name)").path
    }

    @Test func appendOnlyLogReplays() throws {
        let path = temp("chat.jsonl")
        var reply = ChatMessage(id: 2, role: .assistant, content: "Good morrow,\n\"friend\" 😀")
        reply.completionTokens = 7
        reply.stopped = true
        do {
            let log = try Transcript(path: path, model: "/m", fingerprint: "abc")
            log.appendEvent("system", [("content", .string("Be brief."))])
            log.append(ChatMessage(id: 1, role: .user, content: "Hello"))
            log.append(reply)
            log.append(ChatMessage(id: 3, role: .user, content: "Again"))
            log.append(ChatMessage(id: 4, role: .assistant, content: "first try"))
            log.appendEvent("regen")
            log.append(ChatMessage(id: 5, role: .assistant, content: "second try"))
        }
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.first?.contains("\"type\":\"header\"") == true && lines.first?.contains("\"fingerprint\":\"abc\"") == true)
        let loaded = try Transcript.load(path: path)
        #expect(loaded.map(\.role) == [.system, .user, .assistant, .user, .assistant])
        #expect(loaded[0].content == "Be brief." && loaded[2].content == reply.content && loaded[2].stopped)
        #expect(loaded[2].completionTokens == 7 && loaded.last?.content == "second try")
        // Reopening appends without a second header.
        _ = try Transcript(path: path, model: "/m", fingerprint: "abc")
        #expect(try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\"type\":\"header\"").count == 2)
    }

    @Test func newChatEventsClearTheConversationButKeepTheSystemPrompt() throws {
        let path = temp("chat.jsonl")
        do {
            let log = try Transcript(path: path, model: "/m", fingerprint: "f")
            log.appendEvent("system", [("content", .string("S"))])
            log.append(ChatMessage(id: 1, role: .user, content: "old"))
            log.appendEvent("new")
            log.append(ChatMessage(id: 2, role: .user, content: "new"))
        }
        #expect(try Transcript.load(path: path).map(\.content) == ["S", "new"])
    }

    @Test func saveIsAtomicAndCompact() throws {
        let path = temp("saved.jsonl")
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "precious".write(toFile: path, atomically: true, encoding: .utf8)
        let messages = [ChatMessage(id: 1, role: .user, content: "a"), ChatMessage(id: 2, role: .assistant, content: "b")]
        try Transcript.save(messages, to: path, model: "/m", fingerprint: "f")
        #expect(try Transcript.load(path: path).map(\.content) == ["a", "b"])
        // A failed save (into a directory that does not exist) leaves nothing behind and throws.
        #expect(throws: TranscriptError.self) { try Transcript.save(messages, to: "/nonexistent/dir/x.jsonl", model: "", fingerprint: "") }
    }

    @Test func idsFromFilesAreRenumbered() throws {
        let path = temp("ids.json")
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try #"[{"role": "user", "content": "a", "id": 9223372036854775807}, {"role": "assistant", "content": "b", "id": 9223372036854775807}]"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Transcript.load(path: path).map(\.id) == [1, 2])
        #expect(Transcript.isSingleDocument(path: path))
    }

    @Test func openAIStyleJSONLoads() throws {
        let a = temp("a.json"), b = temp("b.json")
        try FileManager.default.createDirectory(atPath: (a as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: (b as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try #"[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]"#.write(toFile: a, atomically: true, encoding: .utf8)
        try #"{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "x"}], "model": "gpt"}"#
            .write(toFile: b, atomically: true, encoding: .utf8)
        #expect(try Transcript.load(path: a).map(\.role) == [.system, .user])
        #expect(try Transcript.load(path: b).map(\.content) == ["u", "x"])
    }

    @Test func corruptFilesAreErrorsNamingTheLine() throws {
        let path = temp("bad.jsonl")
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "{\"type\":\"header\"}\n{\"role\":\"user\",\"content\":\"ok\"}\n{broken\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try Transcript.load(path: path) } throws: { ($0 as? TranscriptError)?.line == 3 }
        try "{\"role\":\"wizard\",\"content\":\"x\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect { try Transcript.load(path: path) } throws: { ($0 as? TranscriptError)?.message.contains("role") == true }
        #expect(throws: TranscriptError.self) { try Transcript.load(path: "/nonexistent.jsonl") }
    }
}
