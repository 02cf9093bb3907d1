import Foundation
import NekoChat

/// A message as the screen shows it.
public struct DisplayMessage: Equatable, Sendable {
    public enum Kind: Equatable, Sendable { case user, assistant, system, notice, error }
    public var id: Int
    public var kind: Kind
    public var text: String
    public var stopped = false
    public var tokensPerSecond = 0.0
}

/// How often each expert was chosen, per MoE layer: for the last token, this reply, the session.
public struct RoutingCounts: Equatable, Sendable {
    public enum Scope: String, CaseIterable, Sendable { case last, reply, session, off }
    public var layers: [Int] = []
    public var experts = 0
    public var last: [[Double]] = []
    public var reply: [[Double]] = []
    public var session: [[Double]] = []

    public mutating func add(_ step: RoutingStep, experts e: Int) {
        if layers != step.layers || experts != e {
            layers = step.layers; experts = e
            let zero = Array(repeating: Array(repeating: 0.0, count: e), count: step.layers.count)
            last = zero; reply = zero; session = zero
        }
        for (slot, chosen) in step.experts.enumerated() {
            last[slot] = Array(repeating: 0, count: experts)
            for x in chosen where x < experts {
                last[slot][x] += 1; reply[slot][x] += 1; session[slot][x] += 1
            }
        }
    }

    public mutating func startReply() {
        reply = reply.map { $0.map { _ in 0 } }
    }

    public func counts(_ scope: Scope) -> [[Double]] {
        switch scope {
        case .last: last
        case .reply: reply
        case .session, .off: session
        }
    }
}

/// Everything the chat screen shows, updated from chat events; rendering it is a pure function.
public struct ScreenState: Sendable {
    public enum Status: Equatable, Sendable {
        case idle, prefilling(done: Int, total: Int), generating, stopped
        var label: String {
            switch self {
            case .idle: "idle"
            case let .prefilling(done, total): "prefilling \(total > 0 ? 100 * done / total : 0)%"
            case .generating: "generating"
            case .stopped: "stopped"
            }
        }
    }
    public var modelName: String
    public var experts: Int
    public var messages: [DisplayMessage] = []
    public var input = LineEditor()
    /// Lines scrolled up from the bottom of the message pane (0: follow the stream).
    public var scrollBack = 0
    public var status = Status.idle
    public var stats = GenerationStats()
    public var routing = RoutingCounts()
    public var routingScope = RoutingCounts.Scope.reply
    public var showRouting = true
    public var themeName = "dark"
    /// Routing of every generated token, per reply (for the inspector).
    public var tokenRouting: [Int: [RoutingStep]] = [:]
    /// The routing inspector: which reply and which of its tokens the cursor is on.
    public var inspector: (messageID: Int, index: Int)?

    public init(modelName: String, experts: Int, contextSize: Int) {
        self.modelName = modelName
        self.experts = experts
        stats.contextSize = contextSize
    }

    /// The conversation as shown (notices left out), for /save and /export.
    public var conversation: [ChatMessage] {
        messages.compactMap { d in
            let role: ChatMessage.Role
            switch d.kind {
            case .user: role = .user
            case .assistant: role = .assistant
            case .system: role = .system
            case .notice, .error: return nil
            }
            var m = ChatMessage(id: d.id, role: role, content: d.text)
            m.stopped = d.stopped
            m.decodeTokensPerSecond = d.tokensPerSecond
            return m
        }
    }

    /// Shows a conversation (a loaded transcript).
    public mutating func show(_ conversation: [ChatMessage]) {
        messages = conversation.map {
            DisplayMessage(id: $0.id, kind: $0.role == .user ? .user : $0.role == .assistant ? .assistant : .system,
                           text: $0.content, stopped: $0.stopped)
        }
    }

    public mutating func notice(_ text: String, error: Bool = false) {
        messages.append(DisplayMessage(id: -messages.count - 1, kind: error ? .error : .notice, text: text))
    }

    public mutating func apply(_ event: ChatEvent) {
        switch event {
        case let .messageAdded(m):
            let kind: DisplayMessage.Kind = m.role == .user ? .user : m.role == .assistant ? .assistant : .system
            messages.append(DisplayMessage(id: m.id, kind: kind, text: m.content))
            if m.role == .assistant { routing.startReply(); status = .prefilling(done: 0, total: 0) }
        case let .prefillProgress(done, total):
            status = done < total ? .prefilling(done: done, total: total) : .generating
        case let .textDelta(id, text):
            status = .generating
            if let i = messages.lastIndex(where: { $0.id == id }) { messages[i].text += text }
        case let .routing(id, step):
            routing.add(step, experts: experts)
            tokenRouting[id, default: []].append(step)
        case let .stats(s):
            stats = s
        case let .finished(m, reason):
            if let i = messages.lastIndex(where: { $0.id == m.id }) {
                messages[i].text = m.content
                messages[i].stopped = m.stopped
                messages[i].tokensPerSecond = m.decodeTokensPerSecond
            }
            status = reason == .cancelled ? .stopped : .idle
            if reason == .context { notice("the reply reached the end of the context window") }
        case let .contextTrimmed(n):
            notice("the conversation outgrew the context: the oldest \(n) message(s) are left out of the prompt (the system prompt stays)")
        case let .info(text):
            notice(text)
        case let .error(e):
            notice(e, error: true)
            status = .idle
        }
    }

    /// Enters the inspector on the last reply that has routing; false when there is none.
    public mutating func startInspector() -> Bool {
        guard let id = messages.last(where: { $0.kind == .assistant && !(tokenRouting[$0.id] ?? []).isEmpty })?.id else { return false }
        inspector = (id, (tokenRouting[id]?.count ?? 1) - 1)
        return true
    }

    public mutating func moveInspector(_ delta: Int) {
        guard let (id, index) = inspector, let steps = tokenRouting[id] else { return }
        inspector = (id, max(0, min(steps.count - 1, index + delta)))
    }

    public var isBusy: Bool {
        switch status {
        case .prefilling, .generating: true
        default: false
        }
    }
}
