import Foundation
import NekoModel

/// Why generation ended (CLI.md's `finish_reason`).
public enum FinishReason: String, Sendable {
    case eos, stop, length, context, cancelled
}

/// A flag another thread sets to stop generation between tokens and between prefill chunks.
public final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    public init() {}
    public var isCancelled: Bool { lock.withLock { cancelled } }
    public func cancel() { lock.withLock { cancelled = true } }
    public func reset() { lock.withLock { cancelled = false } }
}

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

/// Runs a model: chunked prefill, then one token at a time with the KV cache.
public final class Generator: @unchecked Sendable {
    public let model: NekoMindModel
    public let context: ForwardContext
    /// Prompt tokens per forward pass; stop is checked between chunks.
    public var prefillChunk = 512

    public init(model: NekoMindModel, threads: Int) {
        self.model = model
        context = ForwardContext(threads: threads)
    }

    /// Prefills `tokens` after what `cache` holds, in chunks; `progress` sees the tokens done
    /// after each chunk. Returns the last position's logits, or nil when cancelled.
    public func prefill(_ tokens: [Int], cache: KVCache, routing: RoutingRecord?,
                        cancel: CancellationFlag? = nil, progress: (Int) -> Void = { _ in }) throws -> [Float]? {
        var logits: [Float] = []
        var i = 0
        while i < tokens.count {
            if cancel?.isCancelled == true { return nil }
            let end = min(tokens.count, i + prefillChunk)
            logits = try model.forward(Array(tokens[i..<end]), cache: cache,
                                       logits: end == tokens.count ? .last : .none,
                                       routing: routing, context: context)
            i = end
            progress(i)
        }
        return logits
    }

    /// What to do after a token: go on, or end with `stop` (a stop string appeared).
    public enum TokenAction { case proceed, stop }

    /// Generates from `request.promptIds` into a fresh cache of `contextSize` positions.
    /// `onToken` sees each generated id as it is chosen.
    public func generate(_ request: GenerationRequest, contextSize: Int? = nil,
                         cancel: CancellationFlag? = nil,
                         onToken: (Int) -> TokenAction = { _ in .proceed }) throws -> GenerationResult {
        let cache = try model.makeCache(capacity: contextSize)
        guard !request.promptIds.isEmpty else { throw ModelError.input("the prompt is empty") }
        try model.check(tokens: request.promptIds)
        guard request.promptIds.count <= cache.capacity else {
            throw ModelError.input("the prompt has \(request.promptIds.count) tokens, more than the context size \(cache.capacity)")
        }
        var result = GenerationResult()
        result.routing = request.recordRouting ? model.makeRoutingRecord() : nil
        var sampler = Sampler(request.sampling)
        result.seed = sampler.seed
        var history = request.promptIds

        let prefillStart = DispatchTime.now()
        guard var logits = try prefill(request.promptIds, cache: cache, routing: result.routing,
                                       cancel: cancel) else {
            result.finishReason = .cancelled
            return result
        }
        result.prefillTokensPerSecond = Double(request.promptIds.count) / seconds(since: prefillStart)

        let decodeStart = DispatchTime.now()
        var decoded = 0
        while true {
            if request.maxTokens <= 0 { result.finishReason = .length; break }
            let token = sampler.sample(logits: logits, history: history)
            result.ids.append(token)
            history.append(token)
            let action = onToken(token)
            if request.eosIds.contains(token) { result.finishReason = .eos; break }
            if action == .stop { result.finishReason = .stop; break }
            if request.stopIds.contains(token) { result.finishReason = .stop; break }
            if result.ids.count >= request.maxTokens { result.finishReason = .length; break }
            if cancel?.isCancelled == true { result.finishReason = .cancelled; break }
            if cache.length >= cache.capacity { result.finishReason = .context; break }
            logits = try model.forward([token], cache: cache, logits: .last, routing: result.routing,
                                       context: context)
            decoded += 1
        }
        if decoded > 0 { result.decodeTokensPerSecond = Double(decoded) / seconds(since: decodeStart) }
        return result
    }
}

func seconds(since start: DispatchTime) -> Double {
    max(1e-9, Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
}

extension Generator {
    /// Negative log-likelihood of each token given the ones before it (`tokens.count − 1` values),
    /// from batched forward passes of `prefillChunk` tokens over one KV cache.
    public func score(_ tokens: [Int]) throws -> [Double] {
        guard tokens.count >= 2 else {
            throw ModelError.input("scoring needs at least 2 tokens, got \(tokens.count)")
        }
        let contextSize = model.config.maxPositionEmbeddings
        guard tokens.count <= contextSize else {
            throw ModelError.input("the text has \(tokens.count) tokens, longer than the context window of \(contextSize)")
        }
        try model.check(tokens: tokens)
        let cache = try model.makeCache(capacity: tokens.count)
        let vocab = model.config.vocabSize
        var nll: [Double] = []
        nll.reserveCapacity(tokens.count - 1)
        var i = 0
        while i < tokens.count {
            let end = min(tokens.count, i + prefillChunk)
            let logits = try model.forward(Array(tokens[i..<end]), cache: cache, logits: .all, context: context)
            for t in i..<end where t + 1 < tokens.count {
                let row = logits[(t - i) * vocab..<(t - i + 1) * vocab]
                nll.append(logSumExp(row) - Double(row[row.startIndex + tokens[t + 1]]))
            }
            i = end
        }
        return nll
    }
}

/// log Σ exp(x), in double precision.
func logSumExp(_ x: ArraySlice<Float>) -> Double {
    let m = Double(x.max() ?? 0)
    var sum = 0.0
    for v in x { sum += exp(Double(v) - m) }
    return m + log(sum)
}
