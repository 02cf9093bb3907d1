import Foundation
@testable import NekoChat
import NekoModel
import Testing

/// The local engine through the backend seam: prompts, KV-cache reuse, trimming, stop, modes.
@Suite struct LocalBackendTests {
    @Test func aReplyStreamsItsTextRoutingAndStatsAndEndsWithFinished() throws {
        let backend = try ChatFixture.backend()
        let events = ChatFixture.reply(backend, [ChatFixture.user(1, "hi")], ChatFixture.settings())
        guard case let .finished(summary)? = events.last else { Issue.record("last: \(String(describing: events.last))"); return }
        #expect([.length, .eos, .stop].contains(summary.reason))
        #expect(summary.completionTokens > 1 && summary.promptTokens > 0)
        let lastPrefill = events.lastIndex { if case .prefillProgress = $0 { true } else { false } }
        let firstDelta = events.firstIndex { if case .textDelta = $0 { true } else { false } }
        #expect(lastPrefill != nil && (firstDelta == nil || lastPrefill! < firstDelta!))
        // Routing: every prompt token, then every generated token that was fed back.
        let steps = events.compactMap { if case let .routing(s) = $0 { s } else { nil } }
        #expect(steps.filter(\.isPrompt).count == summary.promptTokens)
        #expect(steps.filter { !$0.isPrompt }.count == summary.completionTokens - 1)
        let replyText = ChatFixture.text(events)
        #expect(replyText.hasPrefix(steps.filter { !$0.isPrompt }.map(\.token).joined()))
        #expect(events.contains { if case .stats = $0 { true } else { false } })
    }

    /// A reply cut by the token limit, continued, is the reply a larger limit would have written
    /// (greedy, and this tokenizer spells text back into the same ids): the prompt ends with the
    /// reply so far and no end of turn.
    @Test func aContinuedReplyIsTheLongerReply() throws {
        let backend = try ChatFixture.backend()
        let messages = [ChatFixture.user(1, "hi")]
        let whole = ChatFixture.text(ChatFixture.reply(backend, messages, ChatFixture.settings(maxTokens: 12)))
        let cutEvents = ChatFixture.reply(backend, messages, ChatFixture.settings(maxTokens: 6))
        guard case let .finished(cut)? = cutEvents.last, cut.reason == .length else { Issue.record("not cut: \(cutEvents.last!)"); return }
        let start = ChatFixture.text(cutEvents)
        let reply = ChatMessage(id: 2, parent: 1, role: .assistant, content: start)
        let prompt = try backend.prompt(messages + [reply], settings: ChatFixture.settings(), continuing: true).ids
        #expect(backend.tokenizer.decode(Array(prompt.suffix(start.count))) == start)
        var events: [BackendEvent] = []
        backend.reply(ReplyRequest(messages: messages + [reply], settings: ChatFixture.settings(maxTokens: 6), continuing: true),
                      cancel: CancellationFlag()) { events.append($0) }
        #expect(start + ChatFixture.text(events) == whole, "\(start) + \(ChatFixture.text(events)) vs \(whole)")
    }

    /// The second turn prefills only what the cache does not hold, and answers exactly as a
    /// fresh backend given the same conversation would.
    @Test func theCacheIsReusedAcrossTurns() throws {
        let backend = try ChatFixture.backend()
        let settings = ChatFixture.settings()
        var messages = [ChatFixture.user(1, "hi")]
        let first = ChatFixture.reply(backend, messages, settings)
        let firstPrompt = try backend.prompt(messages, settings: settings).ids
        messages.append(ChatMessage(id: 2, parent: 1, role: .assistant, content: ChatFixture.text(first)))
        messages.append(ChatFixture.user(3, "more", parent: 2))
        let cached = backend.cachedTokens
        let second = ChatFixture.reply(backend, messages, settings)
        let prefilled = second.compactMap { if case let .prefillProgress(_, total) = $0 { total } else { nil } }.last ?? -1
        let prompt = try backend.prompt(messages, settings: settings).ids
        let common = min(zip(cached, prompt).prefix { $0 == $1 }.count, prompt.count - 1)
        #expect(common >= firstPrompt.count, "only \(common) of \(prompt.count) tokens were reused")
        #expect(prefilled == prompt.count - common)
        let fresh = try ChatFixture.backend()
        #expect(ChatFixture.text(ChatFixture.reply(fresh, messages, settings)) == ChatFixture.text(second))
    }

    /// Keys made under other routing interventions are never reused: the turn after a change
    /// prefills everything, and answers as a fresh backend under the new interventions would;
    /// its routing records the N experts per token asked for, without the masked ones.
    @Test func changedInterventionsInvalidateTheCache() throws {
        let backend = try ChatFixture.backend()
        var steered = ChatFixture.settings()
        steered.experts = Interventions(mask: [2: [0, 1]], expertsPerToken: 3)
        let messages = [ChatFixture.user(1, "hi")]
        _ = ChatFixture.reply(backend, messages, ChatFixture.settings())
        let events = ChatFixture.reply(backend, messages, steered)
        let prompt = try backend.prompt(messages, settings: steered).ids
        let prefilled = events.compactMap { if case let .prefillProgress(_, total) = $0 { total } else { nil } }.last
        #expect(prefilled == prompt.count, "\(String(describing: prefilled)) of \(prompt.count) prompt tokens prefilled")
        let steps = events.compactMap { if case let .routing(s) = $0 { s } else { nil } }
        #expect(!steps.isEmpty)
        for step in steps {
            #expect(step.experts.allSatisfy { $0.count == 3 })
            #expect(!step.experts[0].contains(0) && !step.experts[0].contains(1))
        }
        let fresh = try ChatFixture.backend()
        #expect(ChatFixture.text(ChatFixture.reply(fresh, messages, steered)) == ChatFixture.text(events))
        // And back: the plain model's reply again.
        let plain = ChatFixture.text(ChatFixture.reply(try ChatFixture.backend(), messages, ChatFixture.settings()))
        #expect(ChatFixture.text(ChatFixture.reply(backend, messages, ChatFixture.settings())) == plain)
    }

    @Test func aBadInterventionIsTheReplysError() throws {
        let backend = try ChatFixture.backend()
        var settings = ChatFixture.settings()
        settings.experts = Interventions(force: [3: [1, 2, 3]])
        let summary = ChatFixture.summary(ChatFixture.reply(backend, [ChatFixture.user(1, "hi")], settings))
        #expect(summary?.reason == .error)
        #expect(summary?.error?.contains("layer 3: 3 experts forced, more than the 2 chosen per token") == true, "\(String(describing: summary?.error))")
        #expect(throws: InterventionError.self) { try backend.check(settings.experts) }
    }

    @Test func stopKeepsThePartialReplyAndItsCount() throws {
        let backend = try ChatFixture.backend()
        let cancel = CancellationFlag()
        var deltas = 0
        let events = ChatFixture.reply(backend, [ChatFixture.user(1, "hello")], ChatFixture.settings(maxTokens: 50), cancel: cancel) {
            if case .textDelta = $0 { deltas += 1; if deltas == 2 { cancel.cancel() } }
        }
        let s = try #require(ChatFixture.summary(events))
        #expect(deltas >= 2 && s.reason == .cancelled)
        #expect(s.completionTokens == 2)   // stopped right after the token that made the second delta
    }

    @Test func theOldestTurnsGoWhenTheContextIsFullButNotTheSystemPrompt() throws {
        let backend = try ChatFixture.backend(contextSize: 160)
        let settings = ChatFixture.settings(maxTokens: 4)
        var messages = [ChatMessage(id: 0, role: .system, content: "sys")]
        var trimmed = 0
        for i in 0..<6 {
            messages.append(ChatFixture.user(2 * i + 1, "message number \(i) with some padding text"))
            let events = ChatFixture.reply(backend, messages, settings)
            for case let .contextTrimmed(n) in events { trimmed += n }
            let s = try #require(ChatFixture.summary(events))
            #expect(s.error == nil, "\(s.error ?? "")")
            messages.append(ChatMessage(id: 2 * i + 2, role: .assistant, content: ChatFixture.text(events)))
        }
        #expect(trimmed > 0)
        let (ids, dropped) = try backend.prompt(messages, settings: settings)
        #expect(dropped > 0 && ids.count < 160)
        #expect(backend.tokenizer.decode(ids).hasPrefix("<|im_start|>system\nsys"))
    }

    @Test func aMessageTooLongForTheContextIsRefusedByCheck() throws {
        let backend = try ChatFixture.backend(contextSize: 64)
        let long = String(repeating: "a", count: 200)
        #expect(throws: ChatError.self) { try backend.check([ChatFixture.user(1, long)], settings: ChatFixture.settings()) }
        try backend.check([ChatFixture.user(1, "short")], settings: ChatFixture.settings())
    }

    @Test func completeModeContinuesThePlainTextAndStopsOnControlTokens() throws {
        let backend = try ChatFixture.backend()
        var settings = ChatFixture.settings()
        settings.mode = .complete
        let messages = [ChatFixture.user(1, "Once upon")]
        let text = backend.tokenizer.decode(try backend.prompt(messages, settings: settings).ids)
        #expect(text.hasPrefix("Once upon") && !text.contains("<|im_start|>"))
        let description = try #require(try backend.describePrompt(messages, settings: settings))
        #expect(description.contains("tokens (complete mode)"))
        let events = ChatFixture.reply(backend, messages, settings)
        #expect(!ChatFixture.text(events).contains("<"))
    }

    @Test func specialTokensNeverReachTheText() throws {
        // Greedy decoding of this fixture produces special tokens often; whatever it produces,
        // the text holds none of them, in both modes.
        let backend = try ChatFixture.backend()
        for mode in ChatMode.allCases {
            var settings = ChatFixture.settings(maxTokens: 40)
            settings.mode = mode
            settings.sampling.temperature = 1.5
            settings.sampling.seed = 7
            let text = ChatFixture.text(ChatFixture.reply(backend, [ChatFixture.user(1, "tell me")], settings))
            for special in ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<unk>"] { #expect(!text.contains(special), "\(mode): \(text)") }
        }
    }

    @Test func anEmptyPromptIsAnErrorNotACrash() throws {
        let backend = try ChatFixture.backend()
        var settings = ChatFixture.settings()
        settings.mode = .complete
        let events = ChatFixture.reply(backend, [ChatFixture.user(1, "")], settings)
        let s = try #require(ChatFixture.summary(events))
        #expect(s.reason == .error && s.error != nil)
    }
}
