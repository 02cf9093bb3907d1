import Foundation
@testable import NekoChat
import NekoJSON
import Testing

@Suite struct TranscriptTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/transcripts")

    func header() -> TranscriptHeader {
        var h = TranscriptHeader()
        h.model = "/m"; h.modelName = "m"; h.fingerprint = "abc"; h.contextSize = 2048; h.time = "t"
        return h
    }

    func step(_ e: [[Int]], gate: [Float] = [], prompt: Bool = false) -> RoutingStep {
        RoutingStep(layers: [2, 3], experts: e, weights: e.map { $0.map { Float($0) / 7 + 0.013 } }, sharedGate: gate,
                    routerEntropy: [1.5, 2.25], tokenId: e[0][0], token: "t\(e[0][0])", isPrompt: prompt)
    }

    /// A chat through the writer: nothing on disk until the first message; then one flushed
    /// line per recorded event; loading replays them into the same conversation.
    @Test func theWriterIsASinkOfTheEventsAndLoadingReplaysThem() throws {
        let store = TranscriptStore(directory: ChatFixture.temp() + "/chats")
        let writer = TranscriptWriter(store: store, header: header())
        var c = Conversation()
        func emit(_ e: ChatEvent) { c.apply(e); writer.record(e, conversation: c) }
        emit(.systemPromptSet("Be brief."))
        var s = c.settings
        s.sampling.temperature = 0.3
        emit(.settingsChanged(s))
        #expect(writer.path == nil && store.list().isEmpty)   // nothing sent yet: no file
        emit(.messageAdded(ChatMessage(id: 1, role: .user, content: "Hello \"friend\" 😀\nline", time: "2026-01-01T00:00:00Z")))
        emit(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "", time: "t2")))
        emit(.textDelta(messageID: 2, text: "Good"))
        emit(.routing(messageID: 2, step: step([[1, 7], [3, 4]], gate: [0.25, 0.5], prompt: true)))
        emit(.routing(messageID: 2, step: step([[300, 2], [0, 1]], gate: [0.125, 1])))
        var reply = try #require(c.message(2))
        reply.content = "Good morrow"
        reply.finishReason = .cancelled
        reply.completionTokens = 7
        reply.decodeTokensPerSecond = 390.0249405348475   // written as shown: 390.0
        reply.seed = 12
        emit(.finished(reply))
        emit(.regenerate(messageID: 2))
        var second = ChatMessage(id: 3, parent: 1, role: .assistant, content: "second try", time: "t3")
        second.finishReason = .eos
        emit(.finished(second))
        emit(.titleSet("greetings"))
        let path = try #require(writer.path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(text.hasPrefix("{\"type\":\"header\",\"version\":2"))
        #expect(text.contains("\"tokens_per_s\":390.0,") && !text.contains("0.30000001"))
        let loaded = try Transcript.load(path: path)
        #expect(loaded.isLog && loaded.header?.fingerprint == "abc" && loaded.header?.contextSize == 2048)
        var shown = c.messages
        shown[1].decodeTokensPerSecond = 390
        #expect(loaded.conversation.messages == shown)
        #expect(loaded.conversation.path.map(\.id) == [1, 3] && loaded.conversation.system == "Be brief.")
        #expect(loaded.conversation.settings.sampling.temperature == 0.3 && loaded.conversation.title == "greetings")
        let routing = try #require(loaded.conversation.message(2)?.routing)
        #expect(routing == c.message(2)?.routing && routing[1].experts[0] == [300, 2] && routing[0].isPrompt)
        #expect(loaded.conversation.message(2)?.stopped == true && loaded.conversation.message(2)?.seed == 12)
    }

    @Test func newChatStartsANewFile() throws {
        let store = TranscriptStore(directory: ChatFixture.temp())
        let writer = TranscriptWriter(store: store, header: header())
        var c = Conversation()
        func emit(_ e: ChatEvent) { c.apply(e); writer.record(e, conversation: c) }
        emit(.systemPromptSet("S"))
        emit(.messageAdded(ChatMessage(id: 1, role: .user, content: "first")))
        let first = try #require(writer.path)
        emit(.newChat)
        emit(.messageAdded(ChatMessage(id: 1, role: .user, content: "second")))
        let second = try #require(writer.path)
        #expect(first != second && store.list().count == 2)
        let a = try Transcript.load(path: first).conversation, b = try Transcript.load(path: second).conversation
        #expect(a.path.map(\.content) == ["first"] && b.path.map(\.content) == ["second"])
        #expect(b.system == "S")   // the new file starts with what the chat kept
    }

    /// Files written by nekochat 0.1 (format 1) load as they were.
    @Test func version1LogsAndSavesStillLoad() throws {
        let log = try Transcript.load(path: Self.fixtures.appendingPathComponent("v1-log.jsonl").path)
        // After /new, only the last exchange is on the path; the system prompt and settings stay.
        #expect(log.conversation.path.map(\.content) == ["Good morrow.", "Not a word, my lord; but I have seen the cause of mine own\nloved wings"])
        #expect(log.conversation.system == "You are Romeo.")
        #expect(log.conversation.settings.sampling.temperature == 0.5 && log.conversation.settings.sampling.topK == 20)
        #expect(log.conversation.settings.maxTokens == 20)
        #expect(log.header?.version == 1 && log.header?.fingerprint == "27757b987f30d4a4")
        let saved = try Transcript.load(path: Self.fixtures.appendingPathComponent("v1-saved.jsonl").path).conversation
        #expect(saved.system == "You are Romeo.")
        #expect(saved.path.map(\.role) == [.user, .assistant, .user, .assistant])
        #expect(saved.path[1].content == "'Tis true, the gods keep mine eyes from me all.")
        // /regen in a version 1 log: the first reply stays as the sibling of the second.
        let lines = try String(contentsOfFile: Self.fixtures.appendingPathComponent("v1-log.jsonl").path, encoding: .utf8)
        let beforeNew = lines.components(separatedBy: "\n{\"type\":\"new\"")[0]
        let (_, early, _) = try TranscriptFormat.replay(Array(beforeNew.utf8), path: "x", defaults: ChatSettings())
        #expect(early.path.map(\.content).prefix(2) == ["What light through yonder window breaks?", "'Tis true, the gods keep mine eyes from me all."])
        #expect(early.children(of: early.path[0].id).count == 2)
    }

    /// Found by the transcript-grammar fuzzer: a message id of Int.max overflowed the next id.
    @Test func absurdMessageIdsAreRenumbered() throws {
        let text = """
            {"type":"message","id":\(Int.max),"parent":null,"role":"user","content":"a"}
            {"type":"message","id":-3,"parent":1,"role":"assistant","content":"b"}
            {"type":"message","id":\(1 << 41),"parent":2,"role":"user","content":"c"}

            """
        let (_, c, _) = try TranscriptFormat.replay(Array(text.utf8), path: "x", defaults: ChatSettings())
        #expect(c.path.map(\.content) == ["a", "b", "c"])
        #expect(c.path.map(\.id) == [1, 2, 3])
        #expect(c.nextID == 4)
    }

    @Test func openAIStyleJSONLoadsAndIsNotALog() throws {
        let path = ChatFixture.temp() + "/chat.json"
        try #"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try Transcript.load(path: path)
        #expect(!loaded.isLog && loaded.conversation.system == "S" && loaded.conversation.path.map(\.content) == ["hi", "yo"])
    }

    /// One mangled line in the middle of a long chat: the rest opens, the line is named, and the
    /// file still holds it afterwards (the chat is appended to, never rewritten without it).
    @Test func aMangledLineIsSkippedNamingItAndTheRestOpens() throws {
        let dir = ChatFixture.temp()
        let path = dir + "/bad.jsonl"
        var lines = ["{\"type\":\"header\",\"version\":2}"]
        for i in 1...18 {
            let role = i % 2 == 1 ? "user" : "assistant"
            lines.append("{\"type\":\"message\",\"id\":\(i),\"parent\":\(i == 1 ? "null" : String(i - 1)),\"role\":\"\(role)\",\"content\":\"m\(i)\"}")
        }
        lines[8] = "{\"type\":\"message\",\"id\":8,\"par"   // message 8, cut in the middle of the file
        let text = lines.joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let loaded = try Transcript.load(path: path)
        #expect(loaded.conversation.path.map(\.content) == (1...18).filter { $0 != 8 }.map { "m\($0)" })
        #expect(loaded.skipped.count == 1 && loaded.skipped[0].hasPrefix("\(path):9: not valid JSON"), "\(loaded.skipped)")
        #expect(loaded.skippedNotice?.contains("the file keeps every line") == true)
        // Going on with the chat appends; the mangled line stays in the file.
        let writer = TranscriptWriter(store: TranscriptStore(directory: dir), header: TranscriptHeader(), appendingTo: path)
        var c = loaded.conversation
        let m = ChatMessage(id: c.nextID, parent: c.leaf, role: .user, content: "more")
        c.apply(.messageAdded(m))
        writer.record(.messageAdded(m), conversation: c)
        writer.close()
        let after = try String(contentsOfFile: path, encoding: .utf8)
        #expect(after.hasPrefix(text) && after.contains("\"content\":\"more\""))
        #expect(try Transcript.load(path: path).conversation.path.last?.content == "more")
    }

    @Test func anUnreadableFileIsAnErrorNamingTheLine() throws {
        let path = ChatFixture.temp() + "/bad.jsonl"
        try "{not json\n{\"role\":\"user\",\"content\":\"ok\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try Transcript.load(path: path); Issue.record("a file with no readable first line loaded") } catch {
            #expect("\(error)".hasPrefix("\(path):1: "))
        }
        try "{\"type\":\"message\",\"id\":2,\"parent\":9,\"role\":\"user\",\"content\":\"x\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try Transcript.load(path: path); Issue.record("a dangling parent loaded") } catch { #expect("\(error)".contains(":1: ")) }
        #expect(throws: ChatError.self) { try Transcript.load(path: ChatFixture.temp() + "/missing.jsonl") }
        do { _ = try Transcript.load(path: "/nonexistent/x.jsonl") } catch { #expect(!"\(error)".contains("NSCocoaErrorDomain") && "\(error)".contains("no such file")) }
    }

    /// A log from a newer nekochat is refused, naming its version (never read as an empty chat).
    @Test func aNewerFormatIsRefusedNamingItsVersion() throws {
        let path = ChatFixture.temp() + "/new.jsonl"
        try "{\"type\":\"header\",\"version\":99}\n{\"type\":\"message\",\"id\":1,\"role\":\"user\",\"content\":\"hi\"}\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        do { _ = try Transcript.load(path: path); Issue.record("a version 99 log loaded") } catch {
            #expect("\(error)".contains("version 99") && "\(error)".contains("\(path):1:"), "\(error)")
        }
    }

    @Test func savingIsAtomicAndNeverOverwritesUnasked() throws {
        let dir = ChatFixture.temp()
        let path = dir + "/saved.jsonl"
        try Transcript.writeAtomically("one\n", to: path, overwrite: false)
        #expect(throws: ChatError.self) { try Transcript.writeAtomically("two\n", to: path, overwrite: false) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "one\n")
        try Transcript.writeAtomically("two\n", to: path, overwrite: true)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "two\n")
        // A folder that cannot be written: an error, the old file untouched, no temporary left.
        #expect(throws: ChatError.self) { try Transcript.writeAtomically("x", to: "/proc/nekochat-test/x.jsonl", overwrite: true) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["saved.jsonl"])
    }

    @Test func routingIsStoredCompactlyAndExactly() throws {
        let steps = [step([[1, 7], [3, 4]], gate: [0.25, 0.5], prompt: true), step([[6, 2], [0, 1]], gate: [Float.pi, -0])]
        let json = RoutingCodec.encode(steps)
        #expect(json["expert_bytes"]?.int == 1 && json["prompt"]?.int == 1)
        #expect(try RoutingCodec.decode(try JSONValue.parse(json.serialized)) == steps)
        #expect(throws: RoutingCodec.FormatError.self) {
            try RoutingCodec.decode(try JSONValue.parse(#"{"layers":[2],"k":2,"count":3,"experts":"AAA=","weights":"AAAA"}"#))
        }
    }
}

/// `--continue` reopens the chat the user was in when they quit, not the newest file.
@Suite struct ContinueTests {
    @Test func continueFollowsTheLastChatNotTheNewestFile() throws {
        let store = TranscriptStore(directory: ChatFixture.temp())
        let older = store.directory + "/chat-2026-01-01T00-00-00Z.jsonl", newer = store.directory + "/chat-2026-06-01T00-00-00Z.jsonl"
        for f in [older, newer] { try "{\"type\":\"header\",\"version\":2}\n".write(toFile: f, atomically: true, encoding: .utf8) }
        #expect(store.chatToContinue() == newer)
        store.rememberLast(older)
        #expect(store.chatToContinue() == older)
        #expect(store.list().count == 2)   // the hint is not a chat
        try FileManager.default.removeItem(atPath: older)
        #expect(store.chatToContinue() == newer)
    }
}
