import Foundation
import NekoKernels
import NekoModel
import NekoTokenizer

/// A flag another thread sets to stop generation between tokens and between prefill chunks.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    public init() {}
    public var isCancelled: Bool { lock.withLock { cancelled } }
    public func cancel() { lock.withLock { cancelled = true } }
    public func reset() { lock.withLock { cancelled = false } }
}

/// When generation ends (Sources/nekochat/README.md's *Stopping*), written once for the chat, `generate`, `bench`
/// and the server.
public struct StopRules: Sendable {
    /// Ids that end generation with `eos`.
    public var eos: Set<Int> = []
    /// Ids that end generation with `stop` (a chat template's end-of-turn token).
    public var endOfTurn: Set<Int> = []
    /// Strings that end generation with `stop`; the text is cut where the first one begins.
    public var stopStrings: [String] = []
    public var maxTokens = 512
    /// Control tokens (special added tokens such as `<s>` or `<|im_start|>`) are never shown.
    /// `mask`: they are removed from sampling (chat mode: the reply goes on without them);
    /// otherwise sampling one ends generation with `stop` (complete mode).
    public var controlTokens: Set<Int> = []
    public var maskControlTokens = false

    public init(eos: Set<Int> = [], endOfTurn: Set<Int> = [], stopStrings: [String] = [], maxTokens: Int = 512) {
        self.eos = eos
        self.endOfTurn = endOfTurn
        self.stopStrings = stopStrings
        self.maxTokens = maxTokens
    }
}

/// One sequence being generated: its sampler, the tokens so far, its text and stop rules.
/// `next(logits:)` picks a token and decides whether generation ends there. The single loop
/// below (`Generator.decode`) and the server's batched loop both advance sequences with it.
public struct DecodeSequence {
    public let rules: StopRules
    public private(set) var sampler: Sampler
    /// Prompt and generated ids (what the repetition penalty looks at).
    public private(set) var history: [Int]
    /// Generated ids, including an ending EOS or end-of-turn token.
    public private(set) var generated: [Int] = []
    public private(set) var stream: TextStream?
    public private(set) var finishReason: FinishReason?

    public init(prompt: [Int], sampling: SamplingParameters, rules: StopRules, tokenizer: Tokenizer?) {
        self.rules = rules
        sampler = Sampler(sampling)
        history = prompt
        stream = tokenizer.map { TextStream(tokenizer: $0, stopStrings: rules.stopStrings) }
    }

    /// The text so far (up to a stop string).
    public var text: String { stream?.string ?? "" }

    public var isFinished: Bool { finishReason != nil }

    /// Ends the sequence for a reason outside the token (cancel, context, error).
    public mutating func finish(_ reason: FinishReason) {
        if finishReason == nil { finishReason = reason }
    }

    /// Samples the next token. Returns it with the text it adds; when generation ends here,
    /// `finishReason` is set and the token is not to be fed back.
    public mutating func next(logits: [Float]) -> (token: Int, text: String) {
        precondition(finishReason == nil, "the sequence has finished")
        var logits = logits
        if rules.maskControlTokens {
            for id in rules.controlTokens where id < logits.count && !rules.eos.contains(id) && !rules.endOfTurn.contains(id) {
                logits[id] = -.infinity
            }
        }
        let token = sampler.sample(logits: logits, history: history)
        history.append(token)
        generated.append(token)
        var text = ""
        if rules.eos.contains(token) {
            finishReason = .eos
        } else if rules.endOfTurn.contains(token) || rules.controlTokens.contains(token) {
            finishReason = .stop
        } else if stream != nil {
            text = stream!.add(token)
            if stream!.stopped { finishReason = .stop }
        }
        if finishReason == nil, generated.count >= rules.maxTokens { finishReason = .length }
        return (token, text)
    }

    /// What the text stream held back (the start of a possible stop string), at the end.
    public mutating func flush() -> String { stream?.finish() ?? "" }
}

/// What the decode loop reports while it works.
public enum DecodeEvent {
    /// Prompt tokens done (after each chunk) of the total to prefill.
    case prefilled(done: Int, total: Int)
    /// A generated token and the text it adds ("" when held back or not shown).
    case token(id: Int, text: String)
    /// A forward pass put `count` tokens through the model; their routing, when recorded,
    /// is at `first ..< first + count` of the record.
    case routed(first: Int, count: Int)
}

/// Timings of one run of the decode loop.
public struct DecodeOutcome: Sendable {
    public var prefilled = 0
    public var decoded = 0
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0
}

/// Runs a model: chunked prefill and the one decode loop, with the KV cache, over a
/// `DecodeSession` (the loop `serve` runs too, several sessions at a time).
public final class Generator: @unchecked Sendable {
    public let model: LanguageModel
    public let context: ForwardContext
    /// Prompt tokens per forward pass; stop is checked between chunks. One value for every
    /// front end (the chat, `generate`, `serve`, `bench`): a chunk long enough that the experts'
    /// products run as GEMMs over many tokens, short enough that Esc is honoured within a
    /// fraction of a second on the full-size model.
    public static let defaultPrefillChunk = 256
    public var prefillChunk = Generator.defaultPrefillChunk
    /// How the MoE layers route in everything this generator runs (`prefill`, `score`,
    /// `decode`, `generate`).
    public var interventions = Interventions.none
    /// How the KV caches this generator makes store keys and values (float32: `score` and
    /// `routing` are exact; the chat and `generate` set 16 bits).
    public var kvPrecision = KVPrecision.float32

    public init(model: LanguageModel, threads: Int) {
        self.model = model
        context = ForwardContext(threads: threads)
    }

    /// Prefills `tokens` after what `cache` holds, in chunks, recording routing; returns the last
    /// position's logits. (`nekochat routing` and `score` use it; generation runs sessions.)
    public func prefill(_ tokens: [Int], cache: KVCache, routing: RoutingRecord?) throws -> [Float] {
        var logits: [Float] = []
        var i = 0
        while i < tokens.count {
            let end = min(tokens.count, i + prefillChunk)
            logits = try model.forward(Array(tokens[i..<end]), cache: cache,
                                       logits: end == tokens.count ? .last : .none,
                                       routing: routing, interventions: interventions, context: context)
            i = end
        }
        return logits
    }

    /// Throws when logits hold NaN or infinity (corrupt weights).
    public static func checkFinite(_ logits: [Float]) throws { try DecodeSession.checkFinite(logits) }

    /// The decode loop: prefills `prompt` after what `cache` holds (at least one token), then
    /// samples with `sequence` until one of its stop rules, `cancel` or the full context ends it.
    /// The last token is never fed back. On return `sequence.finishReason` is set.
    @discardableResult
    public func decode(_ prompt: [Int], cache: KVCache, sequence: inout DecodeSequence, routing: RoutingRecord? = nil,
                       cancel: CancellationFlag? = nil, observe: (DecodeEvent) -> Void = { _ in }) throws -> DecodeOutcome {
        let session = try DecodeSession(model: model, prompt: prompt, cache: cache, sequence: sequence, routing: routing,
                                        interventions: interventions)
        defer { sequence = session.sequence }
        var outcome = DecodeOutcome()
        while !session.isPrefilled {
            if cancel?.isCancelled == true { break }
            try session.prefill(chunk: prefillChunk, context: context)
            outcome.prefilled = session.prefilled
            observe(.prefilled(done: session.prefilled, total: prompt.count))
        }
        outcome.prefillTokensPerSecond = session.prefillTokensPerSecond
        if routing != nil, session.prefilled > 0 { observe(.routed(first: session.firstRouted, count: session.prefilled)) }
        guard session.isPrefilled, cancel?.isCancelled != true else {
            session.finish(.cancelled)
            return outcome
        }
        while !session.isFinished {
            let (token, text) = session.sample()
            observe(.token(id: token, text: text))
            if session.isFinished { break }
            if cancel?.isCancelled == true { session.finish(.cancelled); break }
            let before = routing?.tokens ?? 0
            try DecodeSession.feed([session], context: context)
            if routing != nil { observe(.routed(first: before, count: 1)) }
        }
        let rest = session.flush()
        if !rest.isEmpty { observe(.token(id: -1, text: rest)) }
        outcome.decoded = session.decoded
        outcome.decodeTokensPerSecond = session.decodeTokensPerSecond
        return outcome
    }
}

/// Seconds since `start` (never 0: rates divide by it).
public func seconds(since start: DispatchTime) -> Double {
    max(1e-9, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}

extension Generator {
    /// Negative log-likelihood of each token given the ones before it (`tokens.count − 1` values),
    /// from batched forward passes of `prefillChunk` tokens over one KV cache.
    public func score(_ tokens: [Int]) throws -> [Double] { try scoreWithPredictions(tokens).nll }

    /// The NLLs of `score`, and at each of those positions the model's most likely next token
    /// (to compare two ways of running the model: top-1 agreement).
    public func scoreWithPredictions(_ tokens: [Int]) throws -> (nll: [Double], top1: [Int]) {
        guard tokens.count >= 2 else {
            throw ModelError.input("scoring needs at least 2 tokens, got \(tokens.count)")
        }
        let contextSize = model.config.maxPositionEmbeddings
        guard tokens.count <= contextSize else {
            throw ModelError.input("the text has \(tokens.count) tokens, longer than the context window of \(contextSize)")
        }
        try model.check(tokens: tokens)
        let cache = try model.makeCache(capacity: tokens.count, precision: kvPrecision)
        let vocab = model.config.vocabSize
        var nll: [Double] = [], top1: [Int] = []
        nll.reserveCapacity(tokens.count - 1)
        top1.reserveCapacity(tokens.count - 1)
        var i = 0
        while i < tokens.count {
            let end = min(tokens.count, i + prefillChunk)
            let logits = try model.forward(Array(tokens[i..<end]), cache: cache, logits: .all,
                                           interventions: interventions, context: context)
            for t in i..<end where t + 1 < tokens.count {
                let row = logits[(t - i) * vocab..<(t - i + 1) * vocab]
                nll.append(logSumExp(row) - Double(row[row.startIndex + tokens[t + 1]]))
                top1.append(Sampler.argmax(row))
            }
            i = end
        }
        return (nll, top1)
    }
}

/// log Σ exp(x) (the kernels': the largest subtracted first, vectorised).
func logSumExp(_ x: ArraySlice<Float>) -> Double {
    x.withUnsafeBufferPointer { p in p.isEmpty ? -.infinity : Kernels.logSumExp(p.baseAddress!, p.count) }
}

// MARK: - one-shot generation (generate, bench)

public struct GenerationRequest: Sendable {
    public var promptIds: [Int]
    public var maxTokens: Int = 512
    public var sampling = SamplingParameters()
    /// Token ids that end generation with `eos`.
    public var eosIds: Set<Int> = []
    /// Token ids that end generation with `stop` (e.g. a chat template's end-of-turn token).
    public var stopIds: Set<Int> = []
    public var recordRouting = false

    public init(promptIds: [Int]) { self.promptIds = promptIds }
}

public struct GenerationResult: Sendable {
    public var ids: [Int] = []
    public var finishReason: FinishReason = .length
    public var prefillTokensPerSecond = 0.0
    public var decodeTokensPerSecond = 0.0
    /// The sampler's seed (drawn at random when the request gave none).
    public var seed: UInt64 = 0
    /// N prompt tokens + M generated − 1 entries (the last token is never fed back).
    public var routing: RoutingRecord?
}

extension Generator {
    /// Generates from `request.promptIds` into a fresh cache of `contextSize` positions, through
    /// the decode loop; ids only (no text). `onToken` sees each generated id.
    public func generate(_ request: GenerationRequest, contextSize: Int? = nil, cancel: CancellationFlag? = nil,
                         onToken: (Int) -> Void = { _ in }) throws -> GenerationResult {
        let cache = try model.makeCache(capacity: contextSize, precision: kvPrecision)
        var rules = StopRules(eos: request.eosIds, endOfTurn: request.stopIds)
        rules.maxTokens = request.maxTokens
        var sequence = DecodeSequence(prompt: request.promptIds, sampling: request.sampling, rules: rules, tokenizer: nil)
        var result = GenerationResult()
        result.routing = request.recordRouting ? model.makeRoutingRecord(interventions) : nil
        let outcome = try decode(request.promptIds, cache: cache, sequence: &sequence, routing: result.routing, cancel: cancel) {
            if case let .token(id, _) = $0, id >= 0 { onToken(id) }
        }
        result.ids = sequence.generated
        result.finishReason = sequence.finishReason ?? .length
        result.seed = sequence.sampler.seed
        result.prefillTokensPerSecond = outcome.prefillTokensPerSecond
        result.decodeTokensPerSecond = outcome.decodeTokensPerSecond
        return result
    }
}
