import Foundation
import NekoChat

/// The wrapped lines of finished messages, by what they depend on. A cache only: rendering
/// stays a function of the state (a class, so the pure render can fill it).
final class WrapCache: @unchecked Sendable {
    struct Key: Hashable {
        var id: Int, length: Int, width: Int, finished: Bool, flags: Int, siblings: Int
    }
    private(set) var lines: [Key: [Line]] = [:]
    func store(_ key: Key, _ value: [Line]) {
        if lines.count > 2000 { lines.removeAll() }
        lines[key] = value
    }
}

/// A line the screen shows between messages: a command's answer, an error, the welcome.
public struct Notice: Equatable, Sendable {
    public enum Kind: Sendable { case info, error }
    public var text: String
    public var kind: Kind
    /// Shown after this message (nil: at the top, before the conversation).
    public var after: Int?
}

/// Everything the chat screen shows. The conversation part is a projection: the same events
/// the chat core applies are applied here (`apply`), never edited by the UI. The rest is the
/// screen's own: the input box, notices, scrolling, the panel, the inspector.
public struct ScreenState: Sendable {
    public enum Status: Equatable, Sendable {
        case idle, prefilling(done: Int, total: Int), generating, stopped
        var label: String {
            switch self {
            case .idle: "idle"
            case let .prefilling(done, total): total > 0 ? "prefill \(done)/\(total)" : "prefill"
            case .generating: "generating"
            case .stopped: "stopped"
            }
        }
    }
    public enum Panel: Sendable, Equatable { case shown, fullScreen, hidden }

    public var backend: BackendInfo
    public private(set) var conversation: Conversation
    public private(set) var notices: [Notice] = []
    public var input = LineEditor()
    /// Lines scrolled up from the bottom of the message pane (0: follow the stream).
    public var scrollBack = 0
    public private(set) var status = Status.idle
    public private(set) var stats = GenerationStats()
    /// Whether anything has run yet (the stats bar says so instead of showing 0.0 tok/s).
    public private(set) var hasStats = false
    public private(set) var routing: LiveRouting
    public var routingScope = LiveRouting.Scope.reply
    public var panel = Panel.shown
    /// The panel's view and the MoE layer (slot) its layer views and the token colours show.
    var panelView = RoutingView.View.heat
    public var chosenSlot = 0
    /// Colour each token by its top-1 expert at the chosen layer.
    public var colourTokens = false
    /// Show numbers instead of colours (monochrome themes, NO_COLOR).
    public var monochrome = false
    /// Show replies as written instead of rendering their Markdown.
    public var rawText = false
    /// The message picked with Alt-↑ (to edit, regenerate, copy or switch versions), and the
    /// user message being edited in the input box (Enter sends it as a new branch).
    public var selected: Int?
    public var editing: Int?
    /// The conversation browser, while it is open.
    public var browser: BrowserState?
    let wrapCache = WrapCache()
    public var themeName = "dark"
    /// The routing inspector: which reply and which of its generated tokens the cursor is on.
    public var inspector: (messageID: Int, index: Int)?
    /// Where prefill started (for the ETA) and when.
    var prefillStarted: (done: Int, at: Date)?
    public var prefillETA: Double?
    /// The path (file) the chat is saved to, when known.
    public var transcriptPath: String?

    public init(backend: BackendInfo, conversation: Conversation = Conversation()) {
        self.backend = backend
        self.conversation = conversation
        routing = LiveRouting(path: conversation.path, experts: backend.experts)
        stats.contextSize = backend.contextSize
    }

    public var experts: Int { backend.experts }
    /// Experts per token of the routing shown: the most of the model's k and the chat's
    /// `/experts k` (so the inspector has room for either).
    public var expertsPerToken: Int { max(backend.expertsPerToken, conversation.settings.experts.expertsPerToken ?? 0) }

    public var isBusy: Bool { conversation.pendingReply != nil }

    /// The reply being written, or the one the inspector is on.
    public var replyID: Int? { conversation.pendingReply?.id }

    public mutating func notice(_ text: String, error: Bool = false) {
        notices.append(Notice(text: text, kind: error ? .error : .info, after: conversation.leaf))
        scrollBack = 0
    }

    /// Notices shown after message `id` (nil: at the top).
    func notices(after id: Int?) -> [Notice] { notices.filter { $0.after == id } }

    public mutating func apply(_ event: ChatEvent) {
        conversation.apply(event)
        switch event {
        case let .messageAdded(m):
            if m.isPending {
                routing.startReply(id: m.id)
                status = .prefilling(done: 0, total: 0)
                prefillStarted = nil
                prefillETA = nil
            }
            scrollBack = 0
        case let .prefillProgress(done, total):
            status = done < total ? .prefilling(done: done, total: total) : .generating
            let now = Date()
            if let start = prefillStarted, done > start.done {
                let rate = Double(done - start.done) / max(1e-6, now.timeIntervalSince(start.at))
                prefillETA = Double(total - done) / rate
            } else {
                prefillStarted = (done, now)
            }
        case .textDelta:
            status = .generating
        case let .routing(_, step):
            routing.add(step)
        case let .stats(s):
            stats = s
            if stats.contextSize == 0 { stats.contextSize = backend.contextSize }
            hasStats = true
        case let .finished(m):
            status = m.finishReason == .cancelled ? .stopped : .idle
            stats.prefillTokensPerSecond = m.prefillTokensPerSecond > 0 ? m.prefillTokensPerSecond : stats.prefillTokensPerSecond
            stats.decodeTokensPerSecond = m.decodeTokensPerSecond > 0 ? m.decodeTokensPerSecond : stats.decodeTokensPerSecond
        case let .contextTrimmed(n):
            notice("the conversation outgrew the context: the oldest \(n) message(s) are left out of the prompt (the system prompt stays)")
        case let .notice(text): notice(text)
        case let .error(text):
            notice(text, error: true)
        case .newChat, .loaded:
            notices = notices.filter { $0.after == nil }
            inspector = nil
            selected = nil
            editing = nil
            status = .idle
            stats = GenerationStats(contextSize: backend.contextSize)
            hasStats = false
            scrollBack = 0
            rebuildRouting()
        case .branchSelected, .regenerate:
            inspector = nil
            if let id = selected, !conversation.path.contains(where: { $0.id == id }) { selected = nil }
            scrollBack = 0
            rebuildRouting()
        case .systemPromptSet, .settingsChanged, .titleSet: break
        }
    }

    /// The session's routing from the messages on the path (after a load, a new chat, a branch).
    mutating func rebuildRouting() {
        routing = LiveRouting(path: conversation.path, experts: experts)
    }

    /// The MoE layers the panel and the colours can show.
    public var moeLayers: [Int] { backend.moeLayers }

    /// The replies' generated tokens with routing, for the inspector.
    func inspectable(_ id: Int) -> [RoutingStep] {
        (conversation.message(id)?.routing ?? []).filter { !$0.isPrompt }
    }

    /// Enters the inspector on the last reply that has routing; false when there is none.
    public mutating func startInspector() -> Bool {
        guard let m = conversation.path.last(where: { $0.role == .assistant && !inspectable($0.id).isEmpty }) else { return false }
        inspector = (m.id, inspectable(m.id).count - 1)
        return true
    }

    public mutating func moveInspector(_ delta: Int) {
        guard let (id, index) = inspector else { return }
        let steps = inspectable(id)
        guard !steps.isEmpty else { inspector = nil; return }
        inspector = (id, max(0, min(steps.count - 1, index + delta)))
    }
}
