import Foundation
@testable import NekoChat
import NekoModel
import Testing

/// The tiny engine fixture with a character-level tokenizer (ids fit its 128-token vocabulary)
/// and ChatML-ish special tokens, so conversations can run through the real stack.
enum ChatFixture {
    static let chars = (32...126).map { String(UnicodeScalar(UInt8($0))) } + ["\n"]
    static var vocab: [String] { ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] + chars }

    static func make() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-chat-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: EngineFixtures.path("neko_mini_bf16"), toPath: dir.path)
        func q(_ s: String) -> String {
            String(String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast())
        }
        let vocabJSON = vocab.enumerated().map { "\(q($0.element)): \($0.offset)" }.joined(separator: ", ")
        let added = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"].enumerated()
            .map { #"{"id": \#($0.offset), "content": \#(q($0.element)), "special": true, "normalized": false}"# }.joined(separator: ", ")
        try """
            {"added_tokens": [\(added)], "decoder": {"type": "Fuse"},
             "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {\(vocabJSON)}, "merges": []}}
            """.write(toFile: dir.path + "/tokenizer.json", atomically: true, encoding: .utf8)
        try #"{"bos_token": "<s>", "eos_token": "</s>"}"#.write(toFile: dir.path + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        return dir.path
    }

    static func session(contextSize: Int? = nil, maxTokens: Int = 6) throws -> ChatSession {
        var p = SamplingParameters()
        p.temperature = 0
        return try ChatSession(bundle: try ModelBundle(directory: try make()), threads: 2, contextSize: contextSize,
                               sampling: p, maxTokens: maxTokens)
    }
}

@Suite struct ChatSessionTests {
    func collect(_ body: (@escaping (ChatEvent) -> Void) -> Void) -> [ChatEvent] {
        final class Box: @unchecked Sendable { var events: [ChatEvent] = [] }
        let box = Box()
        body { box.events.append($0) }
        return box.events
    }

    @Test func eventsComeInOrderAndTheTextAddsUp() throws {
        let session = try ChatFixture.session()
        let events = collect { emit in session.send("hi", emit: emit) }
        guard case let .messageAdded(user)? = events.first, user.role == .user, user.content == "hi" else {
            Issue.record("first event: \(String(describing: events.first))"); return
        }
        guard case let .messageAdded(reply) = events[1], reply.role == .assistant else { Issue.record("\(events[1])"); return }
        guard case let .finished(final, reason)? = events.last else { Issue.record("last: \(String(describing: events.last))"); return }
        #expect(final.id == reply.id && [.length, .eos, .stop].contains(reason))
        let text = events.compactMap { if case let .textDelta(id, t) = $0, id == reply.id { t } else { nil } }.joined()
        #expect(text == final.content && session.messages.last == final)
        let firstDelta = events.firstIndex { if case .textDelta = $0 { true } else { false } }
        let lastPrefill = events.lastIndex { if case .prefillProgress = $0 { true } else { false } }
        #expect(lastPrefill != nil && (firstDelta == nil || lastPrefill! < firstDelta!))
        #expect(final.completionTokens > 1, "\(final)")
        #expect(events.contains { if case .routing = $0 { true } else { false } })
    }

    /// The second turn prefills only what the cache does not hold, and answers exactly as a
    /// fresh session given the same conversation would.
    @Test func theCacheIsReusedAcrossTurns() throws {
        let session = try ChatFixture.session()
        _ = collect { session.send("hi", emit: $0) }
        let cached = session.cachedTokens
        let second = collect { session.send("more", emit: $0) }
        let prefilled = second.compactMap { if case let .prefillProgress(_, total) = $0 { total } else { nil } }.last ?? -1
        // The second turn's prompt, rebuilt independently: only what follows the common prefix
        // with the cached tokens may be prefilled.
        let before = try ChatFixture.session()
        before.load(Array(session.messages.dropLast()))
        let (prompt, _) = try before.prompt()
        let common = min(zip(cached, prompt).prefix { $0 == $1 }.count, prompt.count - 1)
        let first = try ChatFixture.session()
        first.load(Array(session.messages.prefix(1)))
        let firstPrompt = try first.prompt().ids
        #expect(common >= firstPrompt.count, "only \(common) of \(prompt.count) tokens were reused; turn 1's prompt alone is \(firstPrompt.count)")
        #expect(prefilled == prompt.count - common)

        let fresh = try ChatFixture.session()
        fresh.load(Array(session.messages.dropLast()))
        _ = collect { fresh.regenerate(emit: $0) }
        #expect(fresh.messages.last?.content == session.messages.last?.content)
    }

    @Test func stopKeepsThePartialReplyMarkedAsStopped() throws {
        let session = try ChatFixture.session(maxTokens: 50)
        var deltas = 0
        let events = collect { emit in
            session.send("hello") { event in
                emit(event)
                if case .textDelta = event {
                    deltas += 1
                    if deltas == 2 { session.cancel.cancel() }
                }
            }
        }
        guard case let .finished(reply, reason)? = events.last else { Issue.record("no finish"); return }
        #expect(deltas >= 2, "the reply ended before it could be stopped: \(reply.content.debugDescription)")
        #expect(reason == .cancelled && reply.stopped)
        #expect(reply.completionTokens == 2)   // stopped right after the token that made the second delta
        #expect(session.messages.last == reply)
    }

    @Test func theOldestTurnsGoWhenTheContextIsFullButNotTheSystemPrompt() throws {
        let session = try ChatFixture.session(contextSize: 160, maxTokens: 4)
        session.setSystem("sys")
        var trimmed = 0
        for i in 0..<6 {
            for event in collect({ session.send("message number \(i) with some padding text", emit: $0) }) {
                if case let .contextTrimmed(n) = event { trimmed += n }
                if case let .error(e) = event { Issue.record("\(e)") }
            }
        }
        #expect(trimmed > 0)
        let (ids, dropped) = try session.prompt()
        #expect(dropped > 0 && ids.count < 160)
        #expect(session.messages.first?.role == .system)   // kept in the conversation…
        let text = session.tokenizer.decode(ids)
        #expect(text.hasPrefix("<|im_start|>system\nsys"))   // …and in the prompt
    }

    @Test func completeModeContinuesThePlainText() throws {
        let session = try ChatFixture.session()
        session.mode = .complete
        _ = collect { session.send("Once upon", emit: $0) }
        let (ids, _) = try session.prompt()
        let text = session.tokenizer.decode(ids)
        #expect(text.hasPrefix("Once upon") && !text.contains("<|im_start|>"))
        let info = collect { session.describePrompt(emit: $0) }
        guard case let .info(description)? = info.first else { Issue.record("\(info)"); return }
        #expect(description.contains("tokens (complete mode)"))
    }

    @Test func routingStepsCarryTheirToken() throws {
        let session = try ChatFixture.session()
        let events = collect { session.send("hi", emit: $0) }
        let steps = events.compactMap { if case let .routing(_, step) = $0 { step } else { nil } }
        let reply = session.messages.last?.content ?? ""
        #expect(!steps.isEmpty && reply.hasPrefix(steps.map(\.token).joined()))
    }

    @Test func anEmptyPromptIsAnErrorNotACrash() throws {
        let session = try ChatFixture.session()
        session.mode = .complete
        let events = collect { session.send("", emit: $0) }
        #expect(events.contains { if case .error = $0 { true } else { false } })
    }

    @Test func regenerateReplacesTheLastReply() throws {
        let session = try ChatFixture.session()
        _ = collect { session.send("hi", emit: $0) }
        let count = session.messages.count
        _ = collect { session.regenerate(emit: $0) }
        #expect(session.messages.count == count && session.messages.last?.role == .assistant)
        let empty = try ChatFixture.session()
        let events = collect { empty.regenerate(emit: $0) }
        #expect(events.count == 1 && { if case .error = events[0] { true } else { false } }())
    }
}
