import Foundation
import NekoModel

/// What the chat knows about where replies come from: the local engine, or an
/// OpenAI-compatible server. The conversation, the screen and the transcript know only this.
public protocol ChatBackend: AnyObject, Sendable {
    var info: BackendInfo { get }
    /// Writes the reply to `request.messages` (system prompt first, the last one the user's),
    /// on the calling thread (the chat's model thread), reporting as it goes. Returns when the
    /// reply has ended; the last event is always `.finished`. Stops within one token when
    /// `cancel` is set.
    func reply(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void)
    /// Throws when `messages` cannot be answered at all (the prompt alone overflows the
    /// context): checked before a message is stored, so nothing needs undoing. Must be safe to
    /// call from another thread while a reply runs.
    func check(_ messages: [ChatMessage], settings: ChatSettings) throws
    /// The prompt as the model would see it, token by token (`/tokens`); nil when the backend
    /// cannot tell (a remote server).
    func describePrompt(_ messages: [ChatMessage], settings: ChatSettings) throws -> String?
    /// Throws, saying why, unless replies can be made under `experts` (`/experts`): the model
    /// has those layers and experts, or the server is one that takes interventions.
    func check(_ experts: Interventions) throws
    /// `/experts compare`: the reply to `request.messages` written twice from one seed, under
    /// `request.settings.experts` and without them, with how far apart the two models' next-token
    /// distributions are along the first reply (teacher-forced). Reports `.comparison`, then
    /// `.finished`.
    func compare(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void)
}

/// The routing interventions a reply is made under (NekoModel's value), named here for the
/// front ends that never run a model (the remote backend, the screen).
public typealias RoutingInterventions = Interventions

extension ChatBackend {
    public func check(_ experts: Interventions) throws {
        if !experts.isEmpty { throw ChatError("this backend cannot change how experts are routed") }
    }

    public func compare(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void) {
        var summary = ReplySummary(reason: .error)
        summary.error = "this backend cannot compare routing: it runs no model here"
        emit(.finished(summary))
    }
}

/// A backend as the screen and the transcript describe it.
public struct BackendInfo: Sendable, Equatable {
    /// "local" or "remote".
    public var kind: String
    /// The model's short name (the stats bar) and where it lives (a directory or a URL + name).
    public var modelName: String
    public var location: String
    /// Tells transcripts apart by model: a hash of config.json and the weight files (local),
    /// or the server URL and model name (remote).
    public var fingerprint: String
    public var contextSize: Int
    /// Routed experts per MoE layer, their count per token, and the MoE layers (empty: unknown).
    public var experts: Int
    public var expertsPerToken: Int
    public var moeLayers: [Int]
    /// Whether replies carry routing (false for servers without nekochat's extension).
    public var reportsRouting: Bool
    /// Whether the model was shipped inside nekochat (the Shakespeare demo).
    public var isBuiltInDemo = false
    /// How the local KV cache stores keys and values ("f16", "f32", "bf16"); nil for a server.
    public var kvCache: String?

    public init(kind: String, modelName: String, location: String, fingerprint: String, contextSize: Int,
                experts: Int, expertsPerToken: Int, moeLayers: [Int], reportsRouting: Bool, isBuiltInDemo: Bool = false) {
        self.kind = kind
        self.modelName = modelName
        self.location = location
        self.fingerprint = fingerprint
        self.contextSize = contextSize
        self.experts = experts
        self.expertsPerToken = expertsPerToken
        self.moeLayers = moeLayers
        self.reportsRouting = reportsRouting
        self.isBuiltInDemo = isBuiltInDemo
    }
}

public struct ReplyRequest: Sendable {
    /// System prompt first, then the path; the reply continues after the last.
    public var messages: [ChatMessage]
    public var settings: ChatSettings
    /// The last message is a reply to go on with (a reply cut by the token limit, or stopped):
    /// its text is the start of this one, rendered without an end of turn.
    public var continuing = false

    public init(messages: [ChatMessage], settings: ChatSettings, continuing: Bool = false) {
        self.messages = messages
        self.settings = settings
        self.continuing = continuing
    }
}

/// How a reply ended, with its counts.
public struct ReplySummary: Sendable, Equatable {
    public var reason: FinishReason
    public var promptTokens = 0
    public var completionTokens = 0
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0
    public var seed: UInt64?
    /// What went wrong, when `reason` is `.error`.
    public var error: String?

    public init(reason: FinishReason) { self.reason = reason }
}

/// What a backend reports while it writes a reply, in order; `.finished` comes last.
public enum BackendEvent: Sendable, Equatable {
    case prefillProgress(done: Int, total: Int)
    case textDelta(String)
    case routing(RoutingStep)
    case stats(GenerationStats)
    case contextTrimmed(droppedMessages: Int)
    /// The lines `/experts compare` shows (sent before its `.finished`).
    case comparison(String)
    case finished(ReplySummary)
}
