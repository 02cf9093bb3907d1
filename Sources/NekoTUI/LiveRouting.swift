import Foundation
import NekoChat
import NekoRouting

/// The routing figures the panel shows, kept up to date token by token: a trace of the
/// current path's routing (every token each turn put through the model) and Sources/NekoRouting/README.md's
/// accumulators for the session and for the reply's generated tokens.
public struct LiveRouting: Sendable {
    public enum Scope: String, CaseIterable, Sendable { case last, reply, session }

    public private(set) var trace: RoutingTrace?
    private var session: RoutingStats?
    private var reply: RoutingStats?
    /// The trace index where the current reply's generated tokens start, and its last token.
    private var replyStart = 0
    private var lastGenerated: Int?
    let experts: Int
    /// Steps that could not be added (a malformed record), for the panel to say so.
    public private(set) var rejected = 0

    init(experts: Int) { self.experts = experts }

    /// The name of the sequence the next tokens go to (one per reply, as a saved chat has them).
    private var sequenceName = "message 1"

    /// A reply starts: "this reply" counts from here, and its tokens are a sequence of their own
    /// (pairs never cross replies), so the live figures equal those of the saved chat.
    mutating func startReply(id: Int) {
        sequenceName = "message \(id)"
        trace?.beginSequence(named: sequenceName)
        replyStart = trace?.count ?? 0
        reply = trace.map { RoutingStats(for: $0) }
        lastGenerated = nil
    }

    mutating func add(_ step: RoutingStep) {
        // Interventions may change a reply's shape (experts per token, the shared expert's gate):
        // the figures then start over from this step, since no trace mixes shapes.
        if let trace, !fits(step, trace) {
            self.trace = nil
            session = nil
            reply = nil
        }
        if trace == nil {
            guard let t = try? RoutingTrace.of([(sequenceName, [step])], experts: max(experts, 1)) else { rejected += 1; return }
            trace = t
            session = RoutingStats(for: t)
            reply = RoutingStats(for: t)
            replyStart = 0
        } else {
            do { try trace!.append(tokenID: max(0, step.tokenId), layers: recordsFitting(step)) } catch { rejected += 1; return }
        }
        let t = trace!.count - 1
        session!.add(trace!, token: t)
        if !step.isPrompt {
            reply!.add(trace!, token: t)
            lastGenerated = t
        }
    }

    private func fits(_ step: RoutingStep, _ trace: RoutingTrace) -> Bool {
        guard step.layers == trace.moeLayers, step.experts.allSatisfy({ $0.count == trace.topK }) else { return false }
        return step.layers.indices.allSatisfy { slot in
            let gated = slot < step.sharedGate.count && !step.sharedGate[slot].isNaN
            return gated == trace.hasSharedGate[slot]
        }
    }

    /// The step's records as the trace expects them (the optional fields it declared).
    private func recordsFitting(_ step: RoutingStep) -> [LayerRouting] {
        guard let trace else { return step.layerRecords }
        return step.layerRecords.enumerated().map { slot, r in
            var r = r
            if slot < trace.hasSharedGate.count, !trace.hasSharedGate[slot] { r.sharedGate = nil }
            if !trace.hasRouterEntropy { r.routerEntropy = nil }
            return r
        }
    }

    /// Rebuilt from a conversation's path (after a load, a new chat, a branch switch).
    init(path: [ChatMessage], experts: Int) {
        self.init(experts: experts)
        for m in path where m.role == .assistant {
            startReply(id: m.id)
            for step in m.routing { add(step) }
        }
    }

    /// The accumulator of a scope (nil before any routing).
    func stats(_ scope: Scope) -> RoutingStats? {
        guard let trace else { return nil }
        switch scope {
        case .session: return session
        case .reply: return reply
        case .last:
            guard let t = lastGenerated ?? (trace.count > 0 ? trace.count - 1 : nil) else { return nil }
            var s = RoutingStats(for: trace)
            s.add(trace, token: t)
            return s
        }
    }

    public var moeLayers: [Int] { trace?.moeLayers ?? [] }
}
