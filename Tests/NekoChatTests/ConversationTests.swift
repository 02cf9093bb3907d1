import Foundation
@testable import NekoChat
import NekoJSON
import Testing

/// The conversation as a value changed only by events: a tree of messages with one path.
@Suite struct ConversationTests {
    func reply(_ id: Int, parent: Int, _ text: String, _ reason: FinishReason = .eos) -> ChatMessage {
        var m = ChatMessage(id: id, parent: parent, role: .assistant, content: text)
        m.finishReason = reason
        return m
    }

    /// user 1 → reply 2; regenerate → reply 3 (sibling of 2); edit 1 → user 4 → reply 5.
    func tree() -> Conversation {
        var c = Conversation()
        c.apply(.systemPromptSet("be brief"))
        c.apply(.messageAdded(ChatMessage(id: 1, role: .user, content: "hi")))
        c.apply(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "")))
        c.apply(.textDelta(messageID: 2, text: "hel"))
        c.apply(.textDelta(messageID: 2, text: "lo"))
        c.apply(.finished(reply(2, parent: 1, "hello")))
        c.apply(.regenerate(messageID: 2))
        c.apply(.finished(reply(3, parent: 1, "hey")))
        c.apply(.branchSelected(leaf: nil))
        c.apply(.messageAdded(ChatMessage(id: 4, role: .user, content: "hi there")))
        c.apply(.finished(reply(5, parent: 4, "yes?")))
        return c
    }

    @Test func deltasBuildTheReplyAndFinishedReplacesIt() {
        var c = Conversation()
        c.apply(.messageAdded(ChatMessage(id: 1, role: .user, content: "hi")))
        c.apply(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "")))
        #expect(c.pendingReply?.id == 2)
        c.apply(.textDelta(messageID: 2, text: "a"))
        c.apply(.routing(messageID: 2, step: RoutingStep(layers: [2], experts: [[1, 0]], weights: [[0.6, 0.4]])))
        #expect(c.message(2)?.content == "a" && c.message(2)?.routing.count == 1)
        c.apply(.finished(reply(2, parent: 1, "ab", .cancelled)))
        #expect(c.pendingReply == nil && c.message(2)?.stopped == true && c.message(2)?.content == "ab")
    }

    @Test func regenerateAndEditKeepTheOldPathsAsSiblings() {
        let c = tree()
        #expect(c.path.map(\.id) == [4, 5])
        #expect(c.children(of: nil).map(\.id) == [1, 4])
        #expect(c.children(of: 1).map(\.id) == [2, 3])
        #expect(c.siblingPosition(of: 3) == (1, 2) && c.siblingPosition(of: 4) == (1, 2))
        #expect(c.lastDescendant(of: 1) == 3)
        #expect(c.prompt.map(\.role) == [.system, .user, .assistant] && c.prompt[0].content == "be brief")
        var d = c
        d.apply(.branchSelected(leaf: 2))
        #expect(d.path.map(\.content) == ["hi", "hello"])
        d.apply(.branchSelected(leaf: 99))   // unknown: the root
        #expect(d.path.isEmpty)
    }

    @Test func newChatKeepsTheSystemPromptAndSettings() {
        var c = tree()
        var s = ChatSettings()
        s.maxTokens = 9
        c.apply(.settingsChanged(s))
        c.apply(.newChat)
        #expect(c.messages.isEmpty && c.system == "be brief" && c.settings.maxTokens == 9 && c.nextID == 1)
    }

    @Test func onlyLastingChangesAreRecorded() {
        #expect(Conversation.isRecorded(.messageAdded(ChatMessage(id: 1, role: .user, content: "x"))))
        #expect(!Conversation.isRecorded(.messageAdded(ChatMessage(id: 2, role: .assistant, content: ""))))
        #expect(!Conversation.isRecorded(.textDelta(messageID: 2, text: "x")))
        #expect(!Conversation.isRecorded(.stats(GenerationStats())))
        #expect(Conversation.isRecorded(.finished(reply(2, parent: 1, "x"))))
        #expect(Conversation.isRecorded(.branchSelected(leaf: 1)))
    }

    /// Replaying the recorded events rebuilds the same conversation (what loading relies on).
    @Test func theEventsThatRebuildAConversationRebuildIt() {
        let c = tree()
        var d = Conversation()
        for e in TranscriptFormat.events(rebuilding: c) { d.apply(e) }
        #expect(d.path == c.path && d.messages == c.messages && d.system == c.system && d.leaf == c.leaf)
    }
}

@Suite struct SettingsTests {
    @Test func everySettingParsesItsRangeAndRefusesTheRest() throws {
        var s = ChatSettings()
        for (name, good, bad) in [("temperature", "0.5", "-1"), ("top_k", "0", "1.5"), ("top_p", "1", "0"), ("min_p", "0", "2"),
                                  ("repeat_penalty", "1.1", "0"), ("max_tokens", "1", "0"), ("seed", "random", "-3"),
                                  ("mode", "complete", "poem")] {
            let spec = try #require(SettingSpec.named(name))
            try spec.set(&s, good)
            #expect(throws: ChatError.self) { try spec.set(&s, bad) }
            do { try spec.set(&s, bad) } catch {
                #expect("\(error)".contains(name) && "\(error)".contains(spec.accepts), "\(error)")
            }
        }
        #expect(s.mode == .complete && s.sampling.seed == nil && s.maxTokens == 1)
        #expect(SettingSpec.named("top-p")?.name == "top_p")
        #expect(SettingSpec.named("nonsense") == nil)
    }

    @Test func numbersAreWrittenAsTheyWereSetAndReadBack() throws {
        var s = ChatSettings()
        try SettingSpec.named("temperature")!.set(&s, "0.8")
        try SettingSpec.named("seed")!.set(&s, "42")
        try SettingSpec.named("stop")!.set(&s, "END")
        let text = s.json.serialized
        #expect(text.contains("\"temperature\":0.8,") && text.contains("\"seed\":42") && text.contains("\"stop\":[\"END\"]"))
        #expect(!text.contains("0.800000"))
        let back = try ChatSettings(json: try JSONValue.parse(text))
        #expect(back == s)
    }
}
