import Foundation
import NekoModel
import NekoTemplate
import NekoTokenizer

/// The model on this machine: renders the conversation with the chat template (or as plain
/// text in complete mode), prefills only what the KV cache does not already hold (the longest
/// common prefix with the previous turn), trims the oldest turns when the context fills up
/// (never the system prompt) and runs the decode loop. Not thread-safe: the chat calls
/// `reply` on its model thread only (`check` and `describePrompt` are safe anywhere).
public final class LocalBackend: ChatBackend, @unchecked Sendable {
    public let bundle: ModelBundle
    public let tokenizer: Tokenizer
    public let template: ChatTemplate
    public let info: BackendInfo
    let generator: Generator
    let cache: KVCache
    /// The tokens whose keys and values the cache holds, in order, and the interventions they
    /// were put through under (other interventions make other keys: nothing is reused then).
    private(set) var cachedTokens: [Int] = []
    private(set) var cachedInterventions = Interventions.none

    /// `kvPrecision`: how the KV cache stores keys and values (16 bits by default: half the
    /// memory and the bytes each token reads; float32 for results exact to the reference).
    public init(bundle: ModelBundle, threads: Int, contextSize: Int? = nil, modelName: String? = nil,
                isBuiltInDemo: Bool = false, kvPrecision: KVPrecision = .float16) throws {
        self.bundle = bundle
        tokenizer = try bundle.requireTokenizer()
        template = try bundle.chatTemplate()
        // Prefill in Generator.defaultPrefillChunk tokens a pass: progress and Esc between chunks.
        generator = Generator(model: bundle.model, threads: threads)
        generator.kvPrecision = kvPrecision
        cache = try bundle.model.makeCache(capacity: contextSize, precision: kvPrecision)
        let config = bundle.model.config
        var info = BackendInfo(kind: "local", modelName: modelName ?? URL(fileURLWithPath: bundle.directory).lastPathComponent,
                           location: bundle.directory, fingerprint: bundle.fingerprint, contextSize: cache.capacity,
                           experts: config.numExperts, expertsPerToken: config.numExpertsPerTok,
                           moeLayers: config.moeLayers, reportsRouting: !config.moeLayers.isEmpty, isBuiltInDemo: isBuiltInDemo)
        info.kvCache = kvPrecision.rawValue
        self.info = info
    }

    public var contextSize: Int { cache.capacity }

    /// Prompt ids for `messages` as they stand.
    func encode(_ messages: [ChatMessage], mode: ChatMode, continuing: Bool = false) throws -> [Int] {
        if mode == .complete {
            // The messages as one running text, with the tokenizer's own special tokens (BOS).
            return tokenizer.encode(messages.map(\.content).joined())
        }
        // Continuing: the last reply as written so far, without its end of turn.
        let text = try template.render(messages: messages.map(\.templateJSON), addGenerationPrompt: !continuing,
                                       continueFinalMessage: continuing)
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// The prompt for `messages`, dropping the oldest turns while it does not leave room for
    /// the reply. Returns the ids and how many messages were left out.
    func prompt(_ messages: [ChatMessage], settings: ChatSettings, continuing: Bool = false) throws -> (ids: [Int], dropped: Int) {
        let system = messages.filter { $0.role == .system }
        var rest = messages.filter { $0.role != .system }
        var dropped = 0
        while true {
            let ids = try encode(system + rest, mode: settings.mode, continuing: continuing)
            let room = min(settings.maxTokens, max(1, cache.capacity / 4))
            if ids.count + room <= cache.capacity || rest.count <= (continuing ? 2 : 1) {
                guard ids.count < cache.capacity else { throw tooLong(ids.count) }
                return (ids, dropped)
            }
            // Drop the oldest turn: a user message and the reply that follows it.
            rest.removeFirst()
            dropped += 1
            if rest.first?.role == .assistant { rest.removeFirst(); dropped += 1 }
        }
    }

    func tooLong(_ count: Int) -> ChatError {
        ChatError("the message needs \(count) tokens, more than the context holds (\(cache.capacity) tokens; --ctx-size sets it)")
    }

    public func check(_ messages: [ChatMessage], settings: ChatSettings) throws {
        // The newest message with the system prompt alone must fit; older turns can be trimmed.
        let system = messages.filter { $0.role == .system }
        guard let last = messages.last(where: { $0.role != .system }) else { return }
        let count = try encode(system + [last], mode: settings.mode).count
        if count >= cache.capacity { throw tooLong(count) }
    }

    public func check(_ experts: Interventions) throws { try bundle.model.check(experts) }

    public func describePrompt(_ messages: [ChatMessage], settings: ChatSettings) throws -> String? {
        let (ids, _) = try prompt(messages, settings: settings)
        let text = ids.map { "\($0):\(tokenizer.decode([$0]).debugDescription)" }.joined(separator: " ")
        return "the prompt is \(ids.count) tokens (\(settings.mode.rawValue) mode):\n\(text)"
    }

    func rules(_ settings: ChatSettings) -> StopRules {
        bundle.stopRules(chat: settings.mode == .chat, template: template, stopStrings: settings.stop, maxTokens: settings.maxTokens)
    }

    public func reply(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void) {
        var summary = ReplySummary(reason: .cancelled)
        defer { emit(.finished(summary)) }
        let ids: [Int], dropped: Int
        do {
            (ids, dropped) = try prompt(request.messages, settings: request.settings, continuing: request.continuing)
        } catch {
            summary.reason = .error
            summary.error = userMessage(error)
            return
        }
        do { try bundle.model.check(request.settings.experts) } catch {
            summary.reason = .error
            summary.error = userMessage(error)
            return
        }
        if dropped > 0 { emit(.contextTrimmed(droppedMessages: dropped)) }
        summary.promptTokens = ids.count
        guard !ids.isEmpty else {
            summary.reason = .error
            summary.error = "the prompt is empty: there is nothing for the model to continue"
            return
        }

        // Reuse the cache up to the longest common prefix; prefill at least one token. Keys made
        // under other interventions are not reused.
        let experts = request.settings.experts
        if experts != cachedInterventions { cachedTokens = [] }
        cachedInterventions = experts
        generator.interventions = experts
        let common = min(zip(cachedTokens, ids).prefix { $0 == $1 }.count, ids.count - 1)
        cache.truncate(to: common)
        cachedTokens = Array(cachedTokens.prefix(common))
        let fresh = Array(ids[common...])

        var sequence = DecodeSequence(prompt: ids, sampling: request.settings.sampling, rules: rules(request.settings),
                                      tokenizer: tokenizer)
        summary.seed = sequence.sampler.seed
        let routing = info.reportsRouting ? bundle.model.makeRoutingRecord(experts) : nil
        var stats = GenerationStats(contextUsed: cache.length, contextSize: cache.capacity)
        var fed = fresh   // tokens put through the model this turn, in order (their routing)
        // Each token's text as the text grows (what the screen shows, so that token colours and
        // the inspector line up with the message): the prompt's by a streaming decode of the
        // whole prompt, the reply's from the decode loop's deltas.
        var texts: [String] = []
        if routing != nil {
            var detok = StreamingDetokenizer(tokenizer: tokenizer)
            let all = ids.map { detok.add($0) }
            texts = Array(all[common...])
        }
        let prefillStart = DispatchTime.now()
        var decodeStart = prefillStart
        var decoded = 0
        do {
            let outcome = try generator.decode(fresh, cache: cache, sequence: &sequence, routing: routing, cancel: cancel) { event in
                switch event {
                case let .prefilled(done, total):
                    emit(.prefillProgress(done: done, total: total))
                    if done == total {
                        stats.prefillTokensPerSecond = Double(total) / seconds(since: prefillStart)
                        stats.contextUsed = cache.length
                        emit(.stats(stats))
                    }
                case let .token(id, text):
                    if !text.isEmpty { emit(.textDelta(text)) }
                    guard id >= 0 else { return }
                    fed.append(id)
                    texts.append(text)
                    decoded += 1
                    // The first token comes from the prefill's logits: the decode rate starts after it.
                    if decoded == 1 { decodeStart = DispatchTime.now() } else {
                        stats.decodeTokensPerSecond = Double(decoded - 1) / seconds(since: decodeStart)
                    }
                    stats.contextUsed = cache.length
                    emit(.stats(stats))
                case let .routed(first, count):
                    guard let routing else { return }
                    for t in first..<first + count {
                        let id = fed[t]
                        let text = t < texts.count ? texts[t] : tokenizer.decode([id])
                        emit(.routing(RoutingStep(record: routing, token: t, id: id, text: text, isPrompt: t < fresh.count)))
                    }
                }
            }
            summary.reason = sequence.finishReason ?? .cancelled
            summary.prefillTokensPerSecond = outcome.prefillTokensPerSecond
            summary.decodeTokensPerSecond = outcome.decodeTokensPerSecond
        } catch {
            summary.reason = .error
            summary.error = userMessage(error)
        }
        summary.completionTokens = sequence.generated.count
        cachedTokens = Array((ids + sequence.generated).prefix(cache.length))
        stats.contextUsed = cache.length
        stats.prefillTokensPerSecond = summary.prefillTokensPerSecond
        stats.decodeTokensPerSecond = summary.decodeTokensPerSecond
        emit(.stats(stats))
    }

    // MARK: - /experts compare

    public func compare(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void) {
        var summary = ReplySummary(reason: .stop)
        defer { emit(.finished(summary)) }
        do {
            let lines = try comparison(request, cancel: cancel)
            if cancel.isCancelled { summary.reason = .cancelled; return }
            emit(.comparison(lines))
        } catch {
            summary.reason = .error
            summary.error = userMessage(error)
        }
    }

    /// The two replies (one seed) and the teacher-forced figures along the first, as lines.
    func comparison(_ request: ReplyRequest, cancel: CancellationFlag) throws -> String {
        let steered = request.settings.experts
        try bundle.model.check(steered)
        let (ids, _) = try prompt(request.messages, settings: request.settings)
        guard !ids.isEmpty else { throw ChatError("the prompt is empty: there is nothing to compare") }
        // Fresh caches: the chat's own cache (and what it holds) is left alone.
        func write(_ experts: Interventions) throws -> DecodeSequence {
            var sequence = DecodeSequence(prompt: ids, sampling: request.settings.sampling, rules: rules(request.settings), tokenizer: tokenizer)
            let cache = try bundle.model.makeCache(capacity: min(self.cache.capacity, ids.count + request.settings.maxTokens + 1),
                                                   precision: self.cache.precision)
            let saved = generator.interventions
            generator.interventions = experts
            defer { generator.interventions = saved }
            try generator.decode(ids, cache: cache, sequence: &sequence, cancel: cancel)
            return sequence
        }
        let with = try write(steered)
        let without = try write(.none)
        // Teacher-forced along the first reply: the next-token distributions under both routings
        // at every position that predicts one of its tokens.
        let reply = with.generated
        var kl: [Double] = [], agree = 0, firstDifference: Int?
        if !reply.isEmpty, !cancel.isCancelled {
            let tokens = Array((ids + reply).prefix(ids.count + reply.count - 1))
            func logits(_ experts: Interventions) throws -> [Float] {
                let cache = try bundle.model.makeCache(capacity: tokens.count, precision: self.cache.precision)
                let saved = generator.interventions
                generator.interventions = experts
                defer { generator.interventions = saved }
                var out: [Float] = []
                var i = 0
                while i < tokens.count {
                    let end = min(tokens.count, i + generator.prefillChunk)
                    out += try bundle.model.forward(Array(tokens[i..<end]), cache: cache, logits: .all,
                                                    interventions: experts, context: generator.context)
                    i = end
                }
                return out
            }
            let a = try logits(steered), b = try logits(.none)
            let vocab = bundle.model.config.vocabSize
            for (j, t) in (ids.count - 1..<tokens.count).enumerated() {
                let p = a[t * vocab..<(t + 1) * vocab], q = b[t * vocab..<(t + 1) * vocab]
                kl.append(Self.klDivergence(p, q))
                let topP = p.indices.max { p[$0] < p[$1] }!, topQ = q.indices.max { q[$0] < q[$1] }!
                if topP == topQ { agree += 1 } else if firstDifference == nil { firstDifference = j }
            }
        }
        func quoted(_ s: DecodeSequence) -> String {
            let text = s.text.replacingOccurrences(of: "\n", with: " ⏎ ")
            return "\"\(text)\" (\(s.generated.count) tokens, \(s.finishReason?.rawValue ?? "stopped"))"
        }
        var lines = ["experts compare, seed \(request.settings.sampling.seed.map(String.init) ?? "random"):",
                     "with \(steered.summary):\t\(quoted(with))",
                     "without:\t\(quoted(without))"]
        if !kl.isEmpty {
            let mean = kl.reduce(0, +) / Double(kl.count)
            lines.append(String(format: "along the first reply (%d tokens, teacher-forced): KL(with ‖ without) mean %.4f nats, max %.4f; top-1 agreement %.1f %% (%d/%d)",
                                kl.count, mean, kl.max()!, 100 * Double(agree) / Double(kl.count), agree, kl.count)
                + (firstDifference.map { "; first disagreement at token \($0 + 1)" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }

    /// KL(softmax(p) ‖ softmax(q)) in nats, in double precision.
    static func klDivergence(_ p: ArraySlice<Float>, _ q: ArraySlice<Float>) -> Double {
        let lp = logSumExp(p), lq = logSumExp(q)
        var sum = 0.0
        for (x, y) in zip(p, q) {
            let a = Double(x) - lp
            sum += exp(a) * (a - (Double(y) - lq))
        }
        return max(0, sum)
    }
}
