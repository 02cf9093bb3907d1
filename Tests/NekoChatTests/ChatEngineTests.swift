import Foundation
@testable import NekoChat
import Testing

/// The generation actor as the UI uses it: commands in, events out through the bounded queue.
@Suite(.serialized) struct ChatEngineTests {
    /// Drains the engine's queue until `done` says so. The engine blocks while its queue is full,
    /// so draining never stops before the reply ends: past 60 s the reply is stopped (and the test
    /// fails), and draining goes on until it has.
    /// It sleeps with `Task.sleep`, so it never holds one of the cooperative pool's two threads
    /// that the engine's own tasks need.
    func events(of engine: ChatEngine, until done: ([ChatEvent]) -> Bool) async -> [ChatEvent] {
        var all: [ChatEvent] = []
        let deadline = Date().addingTimeInterval(60)
        var stopped = false
        while !done(all) {
            all += engine.events.drain()
            if !stopped, Date() > deadline {
                Issue.record("no end after 60 s; stopping the reply")
                engine.stop()
                stopped = true
            }
            if stopped, Self.finished(all) != nil { break }
            try? await Task.sleep(nanoseconds: 2_000_000)
        }
        return all
    }

    static func finished(_ events: [ChatEvent]) -> (ChatMessage, FinishReason)? {
        for case let .finished(m, r) in events { return (m, r) }
        return nil
    }

    @Test func commandsRunInOrderWithBackPressure() async throws {
        let session = try ChatFixture.session(maxTokens: 5)
        let engine = ChatEngine(session: session, queueCapacity: 4)
        await engine.handle(.setSystem("be brief"))
        let sent = Task { await engine.handle(.send("hi")) }
        // A queue of 4 fills long before the reply ends: the actor waits for us (back-pressure).
        let all = await events(of: engine) { Self.finished($0) != nil }
        await sent.value
        guard case let .messageAdded(user)? = all.first else { Issue.record("\(all)"); return }
        #expect(user.content == "hi")
        #expect(Self.finished(all) != nil)
        #expect(session.messages.map(\.role) == [.system, .user, .assistant] && session.messages[0].content == "be brief")
    }

    @Test func stopTakesEffectWithinOneToken() async throws {
        let engine = ChatEngine(session: try ChatFixture.session(maxTokens: 200), queueCapacity: 8)
        let sent = Task { await engine.handle(.send("hello")) }
        var deltas = 0
        let all = await events(of: engine) { events in
            let n = events.filter { if case .textDelta = $0 { true } else { false } }.count
            if n >= 2, deltas == 0 { deltas = n; engine.stop() }
            return Self.finished(events) != nil
        }
        await sent.value
        let (reply, reason) = try #require(Self.finished(all))
        #expect(reason == .cancelled && reply.stopped)
        // The queue is drained while stopping, so a few tokens may already be in flight.
        #expect(reply.completionTokens < 20, "\(reply.completionTokens) tokens after stop")
    }
}
