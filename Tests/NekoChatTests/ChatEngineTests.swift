import Foundation
@testable import NekoChat
import Testing

/// The generation actor as the UI uses it: commands in, events out through the bounded queue.
@Suite struct ChatEngineTests {
    /// Drains the engine's queue until `done` says so (or 20 s pass).
    func events(of engine: ChatEngine, until done: ([ChatEvent]) -> Bool) -> [ChatEvent] {
        var all: [ChatEvent] = []
        let deadline = Date().addingTimeInterval(20)
        while !done(all), Date() < deadline {
            all += engine.events.drain()
            Thread.sleep(forTimeInterval: 0.002)
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
        let all = events(of: engine) { Self.finished($0) != nil }
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
        let all = events(of: engine) { events in
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
