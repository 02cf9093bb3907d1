import Foundation
import NekoModel
import NekoJSON

/// Why generation ended (Sources/nekochat/README.md's `finish_reason`).
public enum FinishReason: String, Sendable {
    case eos, stop, length, context, cancelled
    /// The backend failed (a network error, a model error): the reply holds what came before.
    case error
}

/// One message of a conversation, as OpenAI and `apply_chat_template` use them, plus metadata.
/// Messages form a tree: editing a message or regenerating a reply adds a sibling, and the
/// conversation shows one path through it.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable { case system, user, assistant }
    public var id: Int
    /// The message this one answers or follows (nil for the first message of a path).
    public var parent: Int?
    public var role: Role
    public var content: String
    /// When it was written (ISO 8601), kept as it was through saves and loads.
    public var time: String?
    /// Replies: why the reply ended; nil while it is being written.
    public var finishReason: FinishReason?
    public var promptTokens = 0
    public var completionTokens = 0
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0
    /// The sampler's seed for this reply (drawn at random when the settings give none).
    public var seed: UInt64?
    /// Routing of the tokens this reply's turn put through the model (prompt part, then reply).
    public var routing: [RoutingStep] = []
    /// Replies: the routing interventions it was written under (empty: none).
    public var experts = Interventions.none

    public init(id: Int, parent: Int? = nil, role: Role, content: String, time: String? = nil) {
        self.id = id
        self.parent = parent
        self.role = role
        self.content = content
        self.time = time
    }

    /// True when generation was stopped by the user before the reply ended.
    public var stopped: Bool { finishReason == .cancelled }
    /// A reply still being written.
    public var isPending: Bool { role == .assistant && finishReason == nil }

    /// `{"role", "content"}` as chat templates and OpenAI read them.
    public var templateJSON: JSONValue { .object([("role", .string(role.rawValue)), ("content", .string(content))]) }
}

/// The experts one token went through, per MoE layer (Sources/NekoRouting/README.md's routing record).
public struct RoutingStep: Sendable, Equatable {
    public var layers: [Int]
    public var experts: [[Int]]
    public var weights: [[Float]]
    /// σ(h · shared_expert_gate) per layer; empty when the model has no gate.
    public var sharedGate: [Float] = []
    /// The router's entropy over all experts per layer, in bits; empty when not recorded.
    public var routerEntropy: [Float] = []
    /// The token id that went through the experts, and its text (for the inspector).
    public var tokenId: Int
    public var token: String
    /// A prompt token (prefilled) rather than a generated one.
    public var isPrompt = false

    public init(layers: [Int], experts: [[Int]], weights: [[Float]], sharedGate: [Float] = [],
                routerEntropy: [Float] = [], tokenId: Int = -1, token: String = "", isPrompt: Bool = false) {
        self.layers = layers
        self.experts = experts
        self.weights = weights
        self.sharedGate = sharedGate
        self.routerEntropy = routerEntropy
        self.tokenId = tokenId
        self.token = token
        self.isPrompt = isPrompt
    }
}

/// Live figures for the stats bar.
public struct GenerationStats: Sendable, Equatable {
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0
    /// Tokens in the context window now, and its size.
    public var contextUsed = 0
    public var contextSize = 0

    public init(prefillTokensPerSecond: Double = 0, decodeTokensPerSecond: Double = 0, contextUsed: Int = 0, contextSize: Int = 0) {
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.decodeTokensPerSecond = decodeTokensPerSecond
        self.contextUsed = contextUsed
        self.contextSize = contextSize
    }
}

/// Everything that happens in a chat, in order. The conversation changes only through
/// `Conversation.apply`; the transcript writes the changes that last (`isRecorded`) and loading
/// replays them; the screen's state is built from the same stream.
public enum ChatEvent: Sendable, Equatable {
    // Changes of the conversation.
    /// A user message (complete), or a reply that starts (empty, `finishReason` nil).
    case messageAdded(ChatMessage)
    case textDelta(messageID: Int, text: String)
    case routing(messageID: Int, step: RoutingStep)
    /// A reply ended: the whole message, with its finish reason, counts and routing.
    case finished(ChatMessage)
    /// The system prompt set (nil: cleared).
    case systemPromptSet(String?)
    case settingsChanged(ChatSettings)
    case titleSet(String)
    /// The reply `messageID` is replaced by a new one; it is kept as a sibling.
    case regenerate(messageID: Int)
    /// The path now ends at this message (a sibling chosen, an edit started); nil: the root.
    case branchSelected(leaf: Int?)
    /// The oldest turns no longer fit the context window and were left out of the prompt.
    case contextTrimmed(droppedMessages: Int)
    /// Start over (the system prompt and settings stay).
    case newChat
    /// The conversation was replaced by one read from a file.
    case loaded(Conversation, path: String)

    // Progress, for the screen only.
    case prefillProgress(done: Int, total: Int)
    case stats(GenerationStats)
    /// A one-line answer to a command, or information the user asked for.
    case notice(String)
    case error(String)
}

/// A conversation: a tree of messages with one current path, the system prompt and the
/// settings. A value; it changes only by `apply(_:)`.
public struct Conversation: Sendable, Equatable {
    /// Every message ever added, by id, in the order they were added.
    public private(set) var messages: [ChatMessage] = []
    private var index: [Int: Int] = [:]
    /// The last message of the current path (nil: the path is empty).
    public private(set) var leaf: Int?
    public private(set) var system: String?
    public private(set) var settings: ChatSettings
    public private(set) var title: String?
    public private(set) var nextID = 1

    public init(settings: ChatSettings = ChatSettings(), system: String? = nil) {
        self.settings = settings
        self.system = system
    }

    public func message(_ id: Int) -> ChatMessage? { index[id].map { messages[$0] } }

    /// The current path, first message first (the system prompt is not part of it).
    public var path: [ChatMessage] {
        var out: [ChatMessage] = []
        var id = leaf
        while let i = id, let m = message(i) {
            out.append(m)
            id = m.parent
        }
        return out.reversed()
    }

    /// What a model is asked to continue: the system prompt, then the path (without replies
    /// that failed before writing anything).
    public var prompt: [ChatMessage] {
        (system.map { [ChatMessage(id: 0, role: .system, content: $0)] } ?? [])
            + path.filter { !($0.finishReason == .error && $0.content.isEmpty) }
    }

    /// Messages whose parent is `id` (nil: first messages), in the order they were added.
    public func children(of id: Int?) -> [ChatMessage] { messages.filter { $0.parent == id } }

    /// Which of its siblings `id` is (0-based) and how many there are.
    public func siblingPosition(of id: Int) -> (index: Int, count: Int) {
        guard let m = message(id) else { return (0, 1) }
        let siblings = children(of: m.parent)
        return (siblings.firstIndex { $0.id == id } ?? 0, siblings.count)
    }

    /// The reply being written, if any.
    public var pendingReply: ChatMessage? { messages.last(where: \.isPending) }

    /// The deepest last-added descendant of `id` (where a branch's path ends).
    public func lastDescendant(of id: Int) -> Int {
        var current = id
        while let child = children(of: current).last { current = child.id }
        return current
    }

    public var isEmpty: Bool { messages.isEmpty }

    /// The id the next message will get.
    public mutating func takeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    /// Applies one event; progress events leave the conversation as it is.
    public mutating func apply(_ event: ChatEvent) {
        switch event {
        case let .messageAdded(m):
            guard index[m.id] == nil else { return }
            index[m.id] = messages.count
            messages.append(m)
            leaf = m.id
            nextID = max(nextID, m.id + 1)
        case let .textDelta(id, text):
            if let i = index[id] { messages[i].content += text }
        case let .routing(id, step):
            if let i = index[id] { messages[i].routing.append(step) }
        case let .finished(m):
            if let i = index[m.id] {
                messages[i] = m
            } else {
                apply(.messageAdded(m))
            }
        case let .systemPromptSet(text): system = text
        case let .settingsChanged(s): settings = s
        case let .titleSet(t): title = t
        case let .regenerate(id): if let m = message(id) { leaf = m.parent }
        case let .branchSelected(id): leaf = id.flatMap { index[$0] != nil ? $0 : nil }
        case .newChat:
            let keep = (system, settings)
            self = Conversation(settings: keep.1, system: keep.0)
        case let .loaded(c, _): self = c
        case .contextTrimmed, .prefillProgress, .stats, .notice, .error: break
        }
    }

    /// Whether the transcript keeps this event (the others are progress, or are written later
    /// as part of a finished message).
    public static func isRecorded(_ event: ChatEvent) -> Bool {
        switch event {
        case let .messageAdded(m): !m.isPending
        case .finished, .systemPromptSet, .settingsChanged, .titleSet, .regenerate, .branchSelected, .contextTrimmed, .newChat: true
        case .textDelta, .routing, .loaded, .prefillProgress, .stats, .notice, .error: false
        }
    }
}
