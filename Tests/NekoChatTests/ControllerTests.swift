import Foundation
@testable import NekoChat
import NekoModel
import Testing

/// The chat core with a scripted backend and with the real model: commands in, events out,
/// every event applied to the conversation and the transcript in one order.
@Suite struct ControllerTests {
    func controller(_ replies: [String] = ["Good morrow, friend."], delay: Double = 0, contextSize: Int = 4096,
                    store: TranscriptStore? = nil) -> (ChatController, ScriptedBackend) {
        let backend = ScriptedBackend(replies: replies, delay: delay, contextSize: contextSize)
        let s = store ?? TranscriptStore(directory: ChatFixture.temp())
        return (ChatController(backend: backend, transcript: TranscriptWriter(store: s, header: TranscriptHeader(backend.info))), backend)
    }

    @Test func sendRunsAReplyWhoseEventsBuildTheConversation() throws {
        let (c, backend) = controller()
        try c.send("hi")
        #expect(c.isBusy)
        let events = c.finish()
        guard case let .messageAdded(user)? = events.first, user.role == .user else { Issue.record("\(events)"); return }
        guard case let .messageAdded(pending) = events[1], pending.isPending else { Issue.record("\(events[1])"); return }
        #expect(events.contains { if case let .finished(m) = $0 { m.id == pending.id && m.finishReason == .eos } else { false } })
        #expect(c.conversation.path.map(\.content) == ["hi", "Good morrow, friend."])
        #expect(c.conversation.message(pending.id)?.routing.count == 3)
        // A projection fed the same events equals the core's conversation.
        var projection = Conversation()
        for e in events { projection.apply(e) }
        #expect(projection == c.conversation)
        #expect(backend.requests.first?.messages.map(\.content) == ["hi"])
        let log = try Transcript.load(path: try #require(c.transcript?.path)).conversation
        #expect(log.path.map(\.content) == c.conversation.path.map(\.content))
    }

    @Test func aMessageTheContextCannotHoldIsRefusedBeforeItIsStored() throws {
        let (c, _) = controller(contextSize: 50)
        #expect(throws: ChatError.self) { try c.send(String(repeating: "x", count: 100)) }
        #expect(c.conversation.isEmpty && !c.isBusy && c.poll().isEmpty && c.transcript?.path == nil)
        #expect(throws: ChatError.self) { try c.send("   ") }
    }

    @Test func stopKeepsThePartialReplyAndBusyCommandsAreRefused() throws {
        let (c, _) = controller([String(repeating: "word ", count: 200)], delay: 0.01)
        try c.send("go")
        #expect(throws: ChatError.self) { try c.send("again") }
        #expect(throws: ChatError.self) { try c.regenerate() }
        while !c.poll(waiting: 1).contains(where: { if case .textDelta = $0 { true } else { false } }) {}
        c.stop()
        _ = c.finish()
        let reply = try #require(c.conversation.path.last)
        #expect(reply.stopped && !reply.content.isEmpty && reply.content.count < 1000)
    }

    @Test func regenerateEditAndSiblingsMakeBranches() throws {
        let (c, backend) = controller(["one", "two", "three", "four"])
        try c.send("q")
        _ = c.finish()
        try c.regenerate()
        _ = c.finish()
        let q = c.conversation.path[0].id
        #expect(c.conversation.children(of: q).map(\.content) == ["one", "two"] && c.conversation.path.last?.content == "two")
        try c.selectSibling(of: try #require(c.conversation.path.last?.id), offset: -1)
        _ = c.poll()
        #expect(c.conversation.path.map(\.content) == ["q", "one"])
        try c.edit(q, to: "q2")
        _ = c.finish()
        #expect(c.conversation.path.map(\.content) == ["q2", "three"])
        #expect(c.conversation.children(of: nil).count == 2)
        // The backend saw only the edited path.
        #expect(backend.requests.last?.messages.map(\.content) == ["q2"])
        #expect(throws: ChatError.self) { try c.edit(try #require(c.conversation.path.last?.id), to: "not mine") }
        // The whole tree survives a save and a load.
        let file = ChatFixture.temp() + "/tree.jsonl"
        _ = try c.save(to: file)
        let loaded = try Transcript.load(path: file).conversation
        #expect(loaded.messages.map(\.content) == c.conversation.messages.map(\.content) && loaded.path == c.conversation.path)
    }

    /// /save! onto the chat's own log would rename a copy over the file the log writes to, and
    /// everything after it would go to a deleted file: refused, and the log goes on.
    @Test func savingOverItsOwnLogIsRefused() throws {
        let backend = ScriptedBackend(replies: ["a", "b"], contextSize: 4096)
        let store = TranscriptStore(directory: ChatFixture.temp())
        let c = ChatController(backend: backend, transcript: TranscriptWriter(store: store, header: TranscriptHeader(backend.info)))
        try c.send("x")
        _ = c.finish()
        let own = try #require(c.transcript?.path)
        #expect(throws: ChatError.self) { try c.save(to: own, overwrite: true) }
        #expect(throws: ChatError.self) { try c.export(to: own, overwrite: true) }
        try c.send("y")
        _ = c.finish()
        #expect(try Transcript.load(path: own).conversation.path.map(\.content) == ["x", "a", "y", "b"])
    }

    /// The log's folder cannot be made (a file stands in its way): the messages wait, and land
    /// in order, every parent before its reply, once it can (they were dropped, and the log then
    /// named parents it did not hold and would not load).
    @Test func aLogThatCannotBeOpenedCatchesUp() throws {
        let root = ChatFixture.temp()
        let blocker = root + "/chats"
        #expect(FileManager.default.createFile(atPath: blocker, contents: Data("not a folder".utf8)))
        let backend = ScriptedBackend(replies: ["first", "second"], contextSize: 4096)
        let c = ChatController(backend: backend, transcript: TranscriptWriter(store: TranscriptStore(directory: blocker + "/inner"),
                                                                              header: TranscriptHeader(backend.info)))
        try c.send("one")
        let errors = c.finish().compactMap { if case let .error(e) = $0 { e } else { nil } }
        #expect(errors.contains { $0.contains("cannot save the chat") } && errors.allSatisfy { !$0.contains("Error Domain") }, "\(errors)")
        try FileManager.default.removeItem(atPath: blocker)
        try c.send("two")
        _ = c.finish()
        let log = try Transcript.load(path: try #require(c.transcript?.path)).conversation
        #expect(log.path.map(\.content) == ["one", "first", "two", "second"])
    }

    @Test func aFixedSeedGivesEachReplyItsOwnRecordedSeed() throws {
        let (c, backend) = controller(["a", "b"])
        try c.set("seed", "10")
        try c.send("x")
        _ = c.finish()
        try c.regenerate()
        _ = c.finish()
        #expect(backend.requests.map(\.settings.sampling.seed) == [10, 11])
    }

    @Test func settingsAnswerAndRefuseBadValues() throws {
        let (c, _) = controller()
        #expect(try c.set("temperature", "0.25") == "temperature = 0.25")
        #expect(c.conversation.settings.sampling.temperature == 0.25)
        #expect(throws: ChatError.self) { try c.set("temperature", "hot") }
        #expect(throws: ChatError.self) { try c.set("warmth", "1") }
        #expect(c.poll().filter { if case .settingsChanged = $0 { true } else { false } }.count == 1)
    }

    @Test func loadingWarnsWhenTheModelDiffers() throws {
        let (c, _) = controller()
        try c.send("hi")
        _ = c.finish()
        let file = ChatFixture.temp() + "/a.jsonl"
        _ = try c.save(to: file)
        let other = ScriptedBackend(replies: ["x"], contextSize: 1024)
        let d = ChatController(backend: other, transcript: nil)
        var h = TranscriptHeader(c.backend.info)
        h.fingerprint = "elsewhere"
        #expect(ChatController.modelWarning(h, other.info)?.contains("another model") == true)
        let line = try d.load(file)
        #expect(line.contains("loaded 2 messages") && line.contains("context is 1024 tokens (it was 4096)"))
        #expect(d.conversation.path.map(\.content) == ["hi", "Good morrow, friend."])
    }

    @Test func theLocalEngineAnswersThroughTheController() throws {
        let backend = try ChatFixture.backend()
        let c = ChatController(backend: backend, conversation: Conversation(settings: ChatFixture.settings()), transcript: nil)
        try c.send("hi")
        let events = c.finish()
        let reply = try #require(c.conversation.path.last)
        #expect(reply.role == .assistant && reply.finishReason != nil && reply.completionTokens > 0 && reply.promptTokens > 0)
        #expect(events.contains { if case .stats = $0 { true } else { false } })
        #expect(reply.routing.filter(\.isPrompt).count == reply.promptTokens)
        #expect(try c.describePrompt().contains("tokens (chat mode)"))
    }

    /// `/experts`: changes add up, bad ones are refused naming the layer, replies record what
    /// they were made under, and a saved chat reopens with the same interventions (settings
    /// and each reply's own).
    @Test func expertsCommandsSteerRepliesAndAreSaved() throws {
        let backend = try ChatFixture.backend()
        let store = TranscriptStore(directory: ChatFixture.temp())
        let c = ChatController(backend: backend, conversation: Conversation(settings: ChatFixture.settings()),
                               transcript: TranscriptWriter(store: store, header: TranscriptHeader(backend.info)))
        #expect(try c.experts("").hasPrefix("experts: routing as the model does"))
        #expect(try c.experts("mask 2:0,1") == "experts: mask 2:0,1, from the next reply (/experts reset undoes)")
        try c.experts("mask 3:4 k 3 shared off")
        #expect(c.conversation.settings.experts == Interventions(mask: [2: [0, 1], 3: [4]], expertsPerToken: 3, sharedExpert: false))
        for (bad, message) in [("mask 0:1", "mask: layer 0 is dense"), ("force 3:4", "layer 3: expert 4 is both masked and forced"),
                               ("k 9", "top_k: experts per token must be from 1 to 8"), ("shared maybe", "on or off"),
                               ("mask", "needs LAYER:EXPERT"), ("frobnicate", "unknown 'frobnicate'")] {
            let error = #expect(throws: ChatError.self) { try c.experts(bad) }
            #expect(error?.description.contains(message) == true, "\(bad): \(error?.description ?? "")")
        }
        #expect(c.conversation.settings.experts.expertsPerToken == 3, "a refused change leaves the settings as they were")
        try c.send("hi")
        _ = c.finish()
        let reply = try #require(c.conversation.path.last)
        #expect(reply.experts == c.conversation.settings.experts)
        #expect(reply.routing.allSatisfy { $0.experts.allSatisfy { $0.count == 3 } && $0.sharedGate.isEmpty })
        #expect(reply.routing.allSatisfy { !$0.experts[0].contains(0) && !$0.experts[0].contains(1) && !$0.experts[1].contains(4) })
        let loaded = try Transcript.load(path: try #require(c.transcript?.path)).conversation
        #expect(loaded.settings.experts == c.conversation.settings.experts)
        #expect(loaded.path.last?.experts == reply.experts)
        #expect(loaded.path.last?.routing == reply.routing)
        try c.experts("reset")
        #expect(c.conversation.settings.experts.isEmpty)
        #expect(try Transcript.load(path: try #require(c.transcript?.path)).conversation.settings.experts.isEmpty)
    }

    /// `/experts compare`: both replies from one seed, the first being what a reply under the
    /// interventions writes, the second what the plain model writes, and the teacher-forced
    /// figures; the chat's conversation and cache are left as they were.
    @Test func compareWritesBothRepliesFromOneSeed() throws {
        let backend = try ChatFixture.backend()
        var settings = ChatFixture.settings(maxTokens: 8)
        settings.sampling.temperature = 0.9
        settings.sampling.seed = 7
        let c = ChatController(backend: backend, conversation: Conversation(settings: settings), transcript: nil)
        #expect(throws: ChatError.self) { try c.experts("compare") }   // nothing in force
        try c.send("hi")
        _ = c.finish()
        try c.experts("mask 2:0-3;3:0-3 k 1")
        let before = c.conversation
        #expect(try c.experts("compare").hasPrefix("comparing the reply with and without mask 2:0,1,2,3;3:0,1,2,3"))
        #expect(c.isBusy)
        let events = c.finish()
        let notice = try #require(events.compactMap { if case let .notice(n) = $0 { n } else { nil } }.first, "\(events)")
        #expect(c.conversation == before)
        let lines = notice.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(notice)")
        #expect(lines[0] == "experts compare, seed 7:")
        // The same replies as ordinary replies under each routing with that seed.
        func reply(_ experts: Interventions) -> String {
            var s = settings
            s.experts = experts
            return ChatFixture.text(ChatFixture.reply(try! ChatFixture.backend(), c.conversation.prompt.filter { $0.role != .assistant }, s))
        }
        #expect(lines[1].contains("\"\(reply(c.conversation.settings.experts).replacingOccurrences(of: "\n", with: " ⏎ "))\""), "\(lines[1])")
        #expect(lines[2].contains("\"\(reply(.none).replacingOccurrences(of: "\n", with: " ⏎ "))\""), "\(lines[2])")
        #expect(lines[3].contains("KL(with ‖ without) mean") && lines[3].contains("top-1 agreement"), "\(lines[3])")
        #expect(reply(c.conversation.settings.experts) != reply(.none), "the interventions must change the reply for this test to see them")
    }

    @Test func klDivergenceIsZeroForTheSameDistributionAndPositiveOtherwise() {
        let p: [Float] = [1, 2, 3, 0.5], q: [Float] = [3, 2, 1, 0.5]
        #expect(abs(LocalBackend.klDivergence(p[...], p[...])) < 1e-12)
        // By hand: softmax p = e^x / Σ; KL = Σ p (log p − log q).
        let sp = p.map { exp(Double($0)) }, sq = q.map { exp(Double($0)) }
        let zp = sp.reduce(0, +), zq = sq.reduce(0, +)
        let want = zip(sp, sq).reduce(0.0) { $0 + $1.0 / zp * (log($1.0 / zp) - log($1.1 / zq)) }
        #expect(abs(LocalBackend.klDivergence(p[...], q[...]) - want) < 1e-6)
    }

    @Test func aBackendThatCannotSteerRefusesExperts() throws {
        let (c, _) = controller()
        let error = #expect(throws: ChatError.self) { try c.experts("mask 2:1") }
        #expect(error?.description == "this backend cannot change how experts are routed")
        #expect(try c.experts("reset").hasPrefix("experts: routing as the model does"))
    }
}

@Suite struct EventChannelTests {
    @Test func sendBlocksWhenFullAndTheWakeDescriptorSignals() throws {
        let channel = EventChannel<Int>(capacity: 2)
        let done = DispatchSemaphore(value: 0)
        let sender = Thread {
            for i in 0..<5 { channel.send(i) }
            done.signal()
        }
        sender.start()
        #expect(channel.wait(timeout: 5))
        var fds = [pollfd(fd: channel.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 1000) == 1)
        // Two fit; the sender waits for us (back-pressure).
        #expect(done.wait(timeout: .now() + 0.2) == .timedOut)
        var got: [Int] = []
        while got.count < 5 {
            _ = channel.wait(timeout: 1)
            got += channel.drain()
        }
        #expect(got == [0, 1, 2, 3, 4] && done.wait(timeout: .now() + 5) == .success)
    }
}
