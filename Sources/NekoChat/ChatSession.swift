import Foundation
import NekoJSON
import NekoModel
import NekoTemplate
import NekoTokenizer

/// One message of a conversation, as OpenAI and `apply_chat_template` use them, plus metadata.
public struct ChatMessage: Sendable, Equatable {
    public enum Role: String, Sendable { case system, user, assistant }
    public var id: Int
    public var role: Role
    public var content: String
    /// True when generation was stopped before the reply ended.
    public var stopped = false
    public var promptTokens = 0
    public var completionTokens = 0
    public var decodeTokensPerSecond = 0.0

    public init(id: Int, role: Role, content: String) {
        self.id = id
        self.role = role
        self.content = content
    }

    var json: JSONValue { .object([("role", .string(role.rawValue)), ("content", .string(content))]) }
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

/// The experts one token went through, per MoE layer.
public struct RoutingStep: Sendable, Equatable {
    public var layers: [Int]
    public var experts: [[Int]]
    public var weights: [[Float]]
    /// The token that went through the experts, as its own text (for the routing inspector).
    public var token: String

    public init(layers: [Int], experts: [[Int]], weights: [[Float]], token: String = "") {
        self.layers = layers
        self.experts = experts
        self.weights = weights
        self.token = token
    }
}

/// What the session reports while it works, in order.
public enum ChatEvent: Sendable, Equatable {
    case messageAdded(ChatMessage)
    case prefillProgress(done: Int, total: Int)
    case textDelta(messageID: Int, text: String)
    case routing(messageID: Int, step: RoutingStep)
    case stats(GenerationStats)
    case finished(ChatMessage, FinishReason)
    /// The oldest turns no longer fit the context window and were left out of the prompt.
    case contextTrimmed(droppedMessages: Int)
    /// Information the user asked for (e.g. the prompt's tokens).
    case info(String)
    case error(String)
}

/// Chat renders the conversation with the template; complete continues the plain text of
/// the messages, as a base model is often used.
public enum ChatMode: String, Sendable { case chat, complete }

/// A conversation with one model: renders it with the chat template, reuses the KV cache
/// across turns (only new tokens are prefilled), streams the reply, and trims the oldest turns
/// (never the system prompt) when the context fills up. Synchronous: the chat runs it on a
/// thread of its own and stops it through `cancel` between tokens and prefill chunks.
public final class ChatSession: @unchecked Sendable {
    public let bundle: ModelBundle
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public var sampling: SamplingParameters
    public var maxTokens: Int
    public var mode = ChatMode.chat
    public private(set) var messages: [ChatMessage] = []
    public let cancel = CancellationFlag()

    let generator: Generator
    let cache: KVCache
    /// The tokens whose keys and values the cache holds, in order.
    private(set) var cachedTokens: [Int] = []
    let stopIds: Set<Int>
    private var nextID = 1
    /// One random stream per session (re-seeded when the settings change), so /regen with a
    /// fixed seed gives a new reply rather than the same one.
    private var sampler: Sampler?

    public init(bundle: ModelBundle, threads: Int, contextSize: Int? = nil,
                sampling: SamplingParameters? = nil, maxTokens: Int = 512) throws {
        self.bundle = bundle
        tokenizer = try bundle.requireTokenizer()
        template = try bundle.chatTemplate()
        self.sampling = sampling ?? bundle.generationConfig.apply(to: SamplingParameters())
        self.maxTokens = maxTokens
        generator = Generator(model: bundle.model, threads: threads)
        cache = try bundle.model.makeCache(capacity: contextSize)
        stopIds = bundle.eosTokenIds.union(bundle.endOfTurnIds(template))
    }

    public var contextSize: Int { cache.capacity }

    /// Sets (or replaces) the system prompt.
    public func setSystem(_ text: String) {
        if let i = messages.firstIndex(where: { $0.role == .system }) {
            messages[i].content = text
        } else {
            messages.insert(ChatMessage(id: takeID(), role: .system, content: text), at: 0)
        }
    }

    /// Forgets the conversation (keeps the system prompt).
    public func reset() {
        messages.removeAll { $0.role != .system }
    }

    /// Replaces the conversation (a loaded transcript); the cache is rebuilt on the next turn.
    public func load(_ loaded: [ChatMessage]) {
        messages = loaded
        nextID = (loaded.map(\.id).max() ?? 0) + 1
    }

    private func takeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    /// Adds a user message and generates the reply. `resetStop: false` keeps a stop that was
    /// requested before the command ran (the chat clears the flag when it sends the command).
    public func send(_ text: String, resetStop: Bool = true, emit: (ChatEvent) -> Void) {
        if resetStop { cancel.reset() }
        let message = ChatMessage(id: takeID(), role: .user, content: text)
        messages.append(message)
        emit(.messageAdded(message))
        reply(emit: emit)
    }

    /// The prompt of the conversation as it stands, token by token (`/tokens`).
    public func describePrompt(emit: (ChatEvent) -> Void) {
        do {
            let (ids, _) = try prompt()
            let text = ids.map { "\($0):\(tokenizer.decode([$0]).debugDescription)" }.joined(separator: " ")
            emit(.info("the prompt is \(ids.count) tokens (\(mode.rawValue) mode):\n\(text)"))
        } catch {
            emit(.error("\(error)"))
        }
    }

    /// Replaces the last reply with a new one.
    public func regenerate(resetStop: Bool = true, emit: (ChatEvent) -> Void) {
        if resetStop { cancel.reset() }
        if messages.last?.role == .assistant { messages.removeLast() }
        guard messages.last?.role == .user else {
            emit(.error("nothing to regenerate: the conversation has no user message to answer"))
            return
        }
        reply(emit: emit)
    }

    /// The prompt for the conversation as it stands, dropping the oldest turns while it does not
    /// leave room for the reply. Returns the ids and how many messages were left out.
    func prompt() throws -> (ids: [Int], dropped: Int) {
        let system = messages.filter { $0.role == .system }
        var rest = messages.filter { $0.role != .system }
        var dropped = 0
        while true {
            let ids: [Int]
            if mode == .complete {
                // The messages as one running text, with the tokenizer's own special tokens (BOS).
                ids = tokenizer.encode((system + rest).map(\.content).joined())
            } else {
                let text = try template.render(messages: (system + rest).map(\.json), addGenerationPrompt: true)
                ids = tokenizer.encode(text, addSpecialTokens: false)
            }
            let room = min(maxTokens, max(1, cache.capacity / 4))
            if ids.count + room <= cache.capacity || rest.count <= 1 {
                guard ids.count < cache.capacity else {
                    throw ModelError.input("the message needs \(ids.count) tokens, more than the context size \(cache.capacity)")
                }
                return (ids, dropped)
            }
            // Drop the oldest turn: a user message and the reply that follows it.
            rest.removeFirst()
            dropped += 1
            if rest.first?.role == .assistant { rest.removeFirst(); dropped += 1 }
        }
    }

    private func reply(emit: (ChatEvent) -> Void) {
        let ids: [Int], dropped: Int
        do {
            (ids, dropped) = try prompt()
        } catch {
            emit(.error("\(error)"))
            return
        }
        if dropped > 0 { emit(.contextTrimmed(droppedMessages: dropped)) }
        guard !ids.isEmpty else {
            emit(.error("the prompt is empty: there is nothing for the model to continue"))
            return
        }

        // Reuse the cache up to the longest common prefix; prefill at least one token.
        var common = zip(cachedTokens, ids).prefix { $0 == $1 }.count
        common = min(common, ids.count - 1)
        cache.truncate(to: common)
        cachedTokens = Array(cachedTokens.prefix(common))

        var reply = ChatMessage(id: takeID(), role: .assistant, content: "")
        reply.promptTokens = ids.count
        messages.append(reply)
        emit(.messageAdded(reply))
        var stats = GenerationStats(contextUsed: cache.length, contextSize: cache.capacity)
        let routing = bundle.model.makeRoutingRecord()
        if sampler == nil || sampler!.parameters != sampling { sampler = Sampler(sampling) }
        var stream = TextStream(tokenizer: tokenizer)
        var history = ids
        var reason = FinishReason.length
        var failed = false

        do {
            // Prefill the new part in chunks, reporting progress; stop is honoured between chunks.
            let fresh = Array(ids[common...])
            let prefillStart = DispatchTime.now()
            var done = 0
            let prefilled = try generator.prefill(fresh, cache: cache, routing: nil, cancel: cancel) { n in
                cachedTokens += fresh[done..<n]
                done = n
                emit(.prefillProgress(done: n, total: fresh.count))
            }
            stats.prefillTokensPerSecond = Double(done) / seconds(since: prefillStart)
            stats.contextUsed = cache.length
            emit(.stats(stats))

            if var logits = prefilled, !cancel.isCancelled {
                let decodeStart = DispatchTime.now()
                var generated = 0, decoded = 0
                while true {
                    let token = sampler!.sample(logits: logits, history: history)
                    history.append(token)
                    generated += 1
                    if bundle.eosTokenIds.contains(token) { reason = .eos; break }
                    if stopIds.contains(token) { reason = .stop; break }
                    let delta = stream.add(token)
                    if !delta.isEmpty { emit(.textDelta(messageID: reply.id, text: delta)) }
                    if generated >= maxTokens { reason = .length; break }
                    if cancel.isCancelled { reason = .cancelled; break }
                    if cache.length >= cache.capacity { reason = .context; break }
                    let before = routing.tokens
                    logits = try bundle.model.forward([token], cache: cache, routing: routing, context: generator.context)
                    cachedTokens.append(token)
                    decoded += 1
                    if routing.tokens > before {
                        var s = step(routing, token: routing.tokens - 1)
                        s.token = tokenizer.decode([token])
                        emit(.routing(messageID: reply.id, step: s))
                    }
                    stats.decodeTokensPerSecond = Double(decoded) / seconds(since: decodeStart)
                    stats.contextUsed = cache.length
                    emit(.stats(stats))
                }
                reply.completionTokens = generated
                reply.decodeTokensPerSecond = stats.decodeTokensPerSecond
            } else {
                reason = .cancelled
            }
        } catch {
            emit(.error("\(error)"))
            reason = .cancelled
            failed = true
        }
        let rest = stream.finish()
        if !rest.isEmpty { emit(.textDelta(messageID: reply.id, text: rest)) }
        reply.content = stream.string
        reply.stopped = reason == .cancelled && !failed
        messages[messages.count - 1] = reply
        emit(.finished(reply, reason))
    }

    func step(_ record: RoutingRecord, token: Int) -> RoutingStep {
        var step = RoutingStep(layers: record.moeLayers, experts: [], weights: [])
        for slot in record.moeLayers.indices {
            let choice = record.choice(token: token, slot: slot)
            step.experts.append(choice.experts)
            step.weights.append(choice.weights)
        }
        return step
    }
}
