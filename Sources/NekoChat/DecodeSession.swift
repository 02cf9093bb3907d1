import Foundation
import NekoModel
import NekoTemplate
import NekoTokenizer

/// One sequence being generated, from its prompt to its end: the KV cache it fills, its decode
/// sequence (sampler, stop rules, text), its routing record, and where its prefill has got. The
/// chat (`Generator.decode`, used by `LocalBackend` and `generate`), `bench` and `serve`
/// (`ServeEngine`) all advance sessions the same way:
///
///     while !s.isPrefilled { try s.prefill(chunk: …, context: …) }   // one chunk at a time
///     while true {
///         let (token, text) = s.sample()                              // stop rules apply here
///         if s.isFinished { break }
///         try DecodeSession.feed([s, …], context: …)                  // one batched forward pass
///     }
///
/// Every forward pass's logits are checked (NaN or infinity: corrupt weights); the last token
/// is never fed back; a full context ends the session with `context`.
public final class DecodeSession {
    public let model: LanguageModel
    /// The tokens to prefill, after what the cache already holds.
    public let prompt: [Int]
    public let cache: KVCache
    public private(set) var sequence: DecodeSequence
    /// Routing of every token put through the model, from `firstRouted` on; nil: not recorded.
    public let routing: RoutingRecord?
    public let firstRouted: Int
    /// How the MoE layers route for this session (the cache holds keys made under them).
    public let interventions: Interventions
    /// Prompt tokens prefilled so far.
    public private(set) var prefilled = 0
    /// Tokens put through the model by this session, in order: the prompt, then each token fed
    /// back (the routing record's entries, from `firstRouted`, belong to these).
    public private(set) var fed: [Int] = []
    /// The logits of the next token (once the prompt is in).
    private var logits: [Float]?
    /// The last sampled token, to be fed back.
    private var pending: Int?

    /// Wall time of the prefill chunks, and from the first sampled token to the last token fed
    /// back (sampling included: the rate a user sees).
    public private(set) var prefillSeconds = 0.0
    private var decodeStart: DispatchTime?
    private var decodeEnd: DispatchTime?
    public var decodeSeconds: Double {
        guard let decodeStart, let decodeEnd else { return 0 }
        return max(1e-9, Double(decodeEnd.uptimeNanoseconds - decodeStart.uptimeNanoseconds) / 1e9)
    }
    /// Tokens fed back (decode steps).
    public private(set) var decoded = 0

    /// A session that generates after `prompt` (at least one token) in `cache`.
    public init(model: LanguageModel, prompt: [Int], cache: KVCache, sequence: DecodeSequence, routing: RoutingRecord? = nil,
                interventions: Interventions = .none) throws {
        guard !prompt.isEmpty else { throw ModelError.input("the prompt is empty: there is nothing for the model to continue") }
        try model.check(tokens: prompt)
        try model.check(interventions)
        guard cache.length + prompt.count <= cache.capacity else {
            throw ModelError.input("the prompt needs \(cache.length + prompt.count) tokens, more than the context size \(cache.capacity)")
        }
        self.model = model
        self.prompt = prompt
        self.cache = cache
        self.sequence = sequence
        self.routing = routing
        self.interventions = interventions
        firstRouted = routing?.tokens ?? 0
        if sequence.rules.maxTokens <= 0 { self.sequence.finish(.length) }
    }

    public var isPrefilled: Bool { prefilled == prompt.count }
    public var isFinished: Bool { sequence.isFinished }
    public var finishReason: FinishReason? { sequence.finishReason }
    public var prefillTokensPerSecond: Double { prefillSeconds > 0 ? Double(prefilled) / prefillSeconds : 0 }
    public var decodeTokensPerSecond: Double { decodeSeconds > 0 ? Double(decoded) / decodeSeconds : 0 }

    /// Puts the next `chunk` prompt tokens (at most) through the model; after the last chunk
    /// the next token's logits are kept. Returns how many tokens this call prefilled.
    @discardableResult
    public func prefill(chunk: Int, context: ForwardContext) throws -> Int {
        guard !isPrefilled else { return 0 }
        let start = DispatchTime.now()
        let end = min(prompt.count, prefilled + max(1, chunk))
        let out = try model.forward(Array(prompt[prefilled..<end]), cache: cache,
                                    logits: end == prompt.count ? .last : .none, routing: routing,
                                    interventions: interventions, context: context)
        fed += prompt[prefilled..<end]
        let done = end - prefilled
        prefilled = end
        if isPrefilled {
            try Self.checkFinite(out)
            logits = out
        }
        prefillSeconds += seconds(since: start)
        return done
    }

    /// Samples the next token (the prompt must be in). When a stop rule ends generation there,
    /// `finishReason` is set and the token is not fed back; when the context has no room left
    /// for it, the session ends with `context`.
    public func sample() -> (token: Int, text: String) {
        precondition(isPrefilled && !isFinished, "sample() needs a prefilled, unfinished session")
        if decodeStart == nil { decodeStart = DispatchTime.now() }
        let (token, text) = sequence.next(logits: logits ?? [])
        if !isFinished, cache.length >= cache.capacity { sequence.finish(.context) }
        pending = isFinished ? nil : token
        return (token, text)
    }

    /// Ends the session for a reason outside the tokens (cancelled, an error).
    public func finish(_ reason: FinishReason) {
        sequence.finish(reason)
        pending = nil
    }

    /// What the text stream held back (the start of a possible stop string), at the end.
    public func flush() -> String { sequence.flush() }

    /// Feeds the token each session sampled back into the model: one forward pass for all of
    /// them (the weights stream once), attention per session — one pass per set of
    /// interventions, since routing is the same for every row of a pass. Sessions that ended
    /// are skipped.
    public static func feed(_ sessions: [DecodeSession], context: ForwardContext) throws {
        let live = sessions.filter { $0.pending != nil }
        var groups: [Interventions: [DecodeSession]] = [:], order: [Interventions] = []
        for s in live {
            if groups[s.interventions] == nil { order.append(s.interventions) }
            groups[s.interventions, default: []].append(s)
        }
        for key in order { try feedTogether(groups[key]!, context: context) }
    }

    private static func feedTogether(_ live: [DecodeSession], context: ForwardContext) throws {
        guard let first = live.first else { return }
        let rows = try first.model.decode(tokens: live.map { $0.pending! }, caches: live.map(\.cache),
                                          routing: live.contains { $0.routing != nil } ? live.map(\.routing) : [],
                                          interventions: first.interventions, context: context)
        let now = DispatchTime.now()
        for (s, logits) in zip(live, rows) {
            try checkFinite(logits)
            s.fed.append(s.pending!)
            s.pending = nil
            s.logits = logits
            s.decoded += 1
            s.decodeEnd = now
        }
    }

    /// Throws when logits hold NaN or infinity (corrupt weights): never sample from garbage.
    public static func checkFinite(_ logits: [Float]) throws {
        var bad = false
        logits.withUnsafeBufferPointer { p in
            var acc: Float = 0
            for v in p { acc += v * 0 }   // NaN or ±inf turns the sum into NaN
            bad = !acc.isFinite
        }
        if bad {
            throw ModelError.input("the model produced NaN or infinite logits: its weights are probably corrupt (check the files, or run `nekochat score` on a known text)")
        }
    }

    /// The routing of the tokens put through the model since `from` (indices into the record),
    /// as steps; `text` spells each token.
    public func routingSteps(from: Int, text: (Int) -> String) -> [RoutingStep] {
        guard let routing, routing.tokens > from else { return [] }
        return (from..<routing.tokens).map { t in
            let i = t - firstRouted
            return RoutingStep(record: routing, token: t, id: fed[i], text: text(i), isPrompt: i < prompt.count)
        }
    }
}

/// The stop rules of a model, assembled in one place (`ModelBundle.stopRules`): the chat,
/// `generate` and `serve` ask here, so that they cannot drift apart.
extension ModelBundle {
    /// EOS ids always; in chat mode also the template's end-of-turn token, and special tokens
    /// masked out of sampling (in complete mode sampling one ends the reply with `stop`).
    public func stopRules(chat: Bool, template: ChatTemplate?, stopStrings: [String], maxTokens: Int) -> StopRules {
        var rules = StopRules(eos: eosTokenIds, endOfTurn: chat ? template.map(endOfTurnIds) ?? [] : [],
                              stopStrings: stopStrings, maxTokens: maxTokens)
        rules.controlTokens = Set(tokenizer?.addedTokens.filter(\.special).map(\.id) ?? [])
        rules.maskControlTokens = chat
        return rules
    }
}
