import Foundation
import NekoChat
import NekoJSON
import NekoModel
import NekoOpenAI
import NekoTemplate
import NekoTokenizer

/// What a request's generation reports, in order; `.finished` or `.failed` comes last.
public enum ServeEvent: Sendable {
    /// The prompt is in the cache: its token count and routing.
    case started(promptTokens: Int, routing: [RoutingStep])
    /// A piece of text (possibly empty) and the routing of the token fed back before it.
    case token(text: String, routing: [RoutingStep])
    case finished(FinishReason, promptTokens: Int, completionTokens: Int, timings: ServeTimings)
    case failed(APIError)
}

/// How long a request's prefill and decode took, from its first prefill chunk (time spent waiting
/// for a slot is not in it; with other requests running, their decode steps between this one's
/// prefill chunks are).
public struct ServeTimings: Sendable {
    /// Prompt tokens prefilled, and those taken from an earlier request's KV cache instead.
    public var promptTokens = 0
    public var cachedTokens = 0
    public var promptSeconds = 0.0
    public var predictedTokens = 0
    public var predictedSeconds = 0.0

    /// llama-server's `timings` object, which clients of either server read.
    public var json: JSONValue {
        func rate(_ n: Int, _ s: Double) -> JSONValue { .double(s > 0 ? Double(n) / s : 0) }
        return .object([("cache_n", .int(cachedTokens)),
                        ("prompt_n", .int(promptTokens)), ("prompt_ms", .double(promptSeconds * 1000)),
                        ("prompt_per_second", rate(promptTokens, promptSeconds)),
                        ("predicted_n", .int(predictedTokens)), ("predicted_ms", .double(predictedSeconds * 1000)),
                        ("predicted_per_second", rate(predictedTokens, predictedSeconds))])
    }
}

/// One request being served: its prompt, its decode sequence and, once it has a slot, the
/// `DecodeSession` that owns its KV cache and routing.
public final class ServeJob: @unchecked Sendable {
    public let prompt: [Int]
    public let cancel = CancellationFlag()
    let wantsRouting: Bool
    /// How the MoE layers route for this request (the server's defaults, or the request's own).
    let interventions: Interventions
    let sequence: DecodeSequence
    var session: DecodeSession?
    /// Prompt tokens found in an earlier request's KV cache (not prefilled again).
    var reused = 0
    /// Routing entries sent so far.
    var routed = 0
    /// When its prefill began and ended (monotonic seconds).
    var prefillStart: Double?
    var prefillEnd: Double?
    let sink: @Sendable (ServeEvent) -> Void

    init(prompt: [Int], sequence: DecodeSequence, routing: Bool, interventions: Interventions,
         sink: @escaping @Sendable (ServeEvent) -> Void) {
        self.prompt = prompt
        self.interventions = interventions
        self.sequence = sequence
        wantsRouting = routing
        self.sink = sink
    }
}

/// The model behind `nekochat serve`: renders and checks requests, then runs up to `parallel`
/// of them at once on its own thread. Prompts are prefilled a chunk at a time between decode
/// steps, and each decode step advances every running request by one token in one batched
/// forward pass. Every request is a `DecodeSession` (the chat's decode loop) with its own KV
/// cache; the stop rules are the model bundle's (`ModelBundle.stopRules`).
public final class ServeEngine: @unchecked Sendable {
    public let bundle: ModelBundle
    let tokenizer: Tokenizer
    let template: ChatTemplate
    public let modelID: String
    public let contextSize: Int
    public let parallel: Int
    let generator: Generator
    private let condition = NSCondition()
    private var waiting: [ServeJob] = []
    private var running: [ServeJob] = []
    /// Requests admitted and not yet submitted: their bodies are being read and prepared.
    private var preparing = 0
    /// Prompt tokens per prefill step (between decode steps of the other requests).
    let prefillChunk = Generator.defaultPrefillChunk

    /// A finished request's KV cache, kept for a later request that starts with the same tokens
    /// (llama-server's prompt cache: a multi-turn chat re-sends the whole conversation, and only
    /// what is new is prefilled): the tokens it holds, the interventions they went through, and
    /// their routing (so a response that reports prompt routing stays complete).
    struct ParkedCache {
        let cache: KVCache
        let tokens: [Int]
        let interventions: Interventions
        let routing: RoutingRecord?
    }
    /// The most recent `parallel` finished caches, oldest first (the engine thread's own).
    private var parked: [ParkedCache] = []

    /// How each request's KV cache stores keys and values.
    public let kvPrecision: KVPrecision

    public init(bundle: ModelBundle, threads: Int, parallel: Int, contextSize: Int, modelID: String,
                kvPrecision: KVPrecision = .float16) throws {
        self.bundle = bundle
        self.kvPrecision = kvPrecision
        tokenizer = try bundle.requireTokenizer()
        template = try bundle.chatTemplate()
        self.modelID = modelID
        self.contextSize = contextSize
        self.parallel = max(1, parallel)
        generator = Generator(model: bundle.model, threads: threads)
        let thread = Thread { [self] in self.loop() }
        thread.name = "nekochat-serve"
        thread.stackSize = 16 << 20
        thread.start()
    }

    public var config: ModelConfig { bundle.model.config }

    /// Renders (chat) or encodes (text) the request and checks it fits the context.
    public func prepare(_ r: CompletionRequest, sink: @escaping @Sendable (ServeEvent) -> Void) throws -> ServeJob {
        let rules = bundle.stopRules(chat: r.kind.isChat, template: template, stopStrings: r.settings.stop, maxTokens: r.settings.maxTokens)
        let ids: [Int]
        switch r.kind {
        case let .chat(messages):
            do {
                // A last assistant message is continued, as llama-server does (a prefilled reply).
                ids = try bundle.chatPrompt(messages.map(\.templateJSON), template: template,
                                            continuing: messages.last?.role == .assistant)
            } catch {
                throw APIError.invalid("the chat template cannot render these messages: \(userMessage(error))", param: "messages")
            }
        case let .text(text):
            ids = tokenizer.encode(text)
        case let .ids(list):
            ids = list
            if let bad = list.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw APIError.invalid("token id \(bad) is outside the vocabulary (\(config.vocabSize))", param: "prompt")
            }
        }
        guard !ids.isEmpty else { throw APIError.invalid("the prompt is empty", param: r.kind.isChat ? "messages" : "prompt") }
        guard ids.count < contextSize else {
            throw APIError.invalid("the prompt has \(ids.count) tokens; the context holds \(contextSize)", param: r.kind.isChat ? "messages" : "prompt")
        }
        if r.returnRoutedExperts, r.routedExpertsStartLen > ids.count {
            throw APIError.invalid("routed_experts_start_len \(r.routedExpertsStartLen) is more than the \(ids.count) prompt tokens",
                                   param: "routed_experts_start_len")
        }
        do { try bundle.model.check(r.settings.experts) } catch {
            throw APIError.invalid("nekochat.experts: \(error)", param: "nekochat.experts")
        }
        let sequence = DecodeSequence(prompt: ids, sampling: r.settings.sampling, rules: rules, tokenizer: tokenizer)
        return ServeJob(prompt: ids, sequence: sequence, routing: (r.routing || r.returnRoutedExperts) && !config.moeLayers.isEmpty,
                        interventions: r.settings.experts, sink: sink)
    }

    /// Most requests that may wait for a slot, counting those still being received and prepared;
    /// more are refused (503) rather than queued for ever.
    public var maxWaiting: Int { max(16, 8 * parallel) }

    /// Takes a place for a request that has just arrived, before its body is read: a flood of
    /// large bodies is refused at once instead of each holding its body until its prompt is
    /// tokenised. Every `admit` is followed by one `submit` or one `withdraw`.
    public func admit() throws {
        condition.lock()
        defer { condition.unlock() }
        dropCancelled()
        let queued = waiting.count + preparing
        guard queued < maxWaiting else {
            throw APIError(status: 503, message: "the server is busy: \(queued) requests are waiting for \(parallel) slots; try again later",
                           type: "server_error")
        }
        preparing += 1
    }

    /// Gives back the place of an admitted request that will not be submitted (a bad request).
    public func withdraw() {
        condition.lock()
        preparing -= 1
        condition.unlock()
    }

    /// Queues an admitted request for a slot.
    public func submit(_ job: ServeJob) {
        condition.lock()
        defer { condition.unlock() }
        preparing -= 1
        waiting.append(job)
        condition.signal()
    }

    /// Requests whose clients have gone need no place: forget them before counting.
    private func dropCancelled() {
        let gone = waiting.filter { $0.cancel.isCancelled }
        guard !gone.isEmpty else { return }
        waiting.removeAll { $0.cancel.isCancelled }
        for j in gone { j.sink(.finished(.cancelled, promptTokens: j.prompt.count, completionTokens: 0, timings: ServeTimings())) }
    }

    /// Requests being prepared, waiting and running now (for /health).
    public var load: (preparing: Int, waiting: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (preparing, waiting.count, running.count)
    }

    private func loop() {
        while true {
            condition.lock()
            while waiting.isEmpty && running.isEmpty { condition.wait() }
            while running.count < parallel, !waiting.isEmpty { running.append(waiting.removeFirst()) }
            let jobs = running
            condition.unlock()
            let finished = step(jobs)
            if !finished.isEmpty {
                condition.lock()
                running.removeAll { j in finished.contains { $0 === j } }
                condition.unlock()
            }
        }
    }

    /// One round: one prefill chunk (for the oldest request still prefilling), then one token for
    /// every request that is decoding, fed back in one batched pass. Returns the requests that ended.
    func step(_ jobs: [ServeJob]) -> [ServeJob] {
        var ended: [ServeJob] = []
        func end(_ j: ServeJob, _ reason: FinishReason) {
            j.session?.finish(reason)
            park(j)
            let rest = j.session?.flush() ?? ""
            if !rest.isEmpty { j.sink(.token(text: rest, routing: [])) }
            let now = Self.now()
            var t = ServeTimings()
            if let start = j.prefillStart {
                t.promptTokens = j.session?.prefilled ?? 0
                t.cachedTokens = j.reused
                t.promptSeconds = (j.prefillEnd ?? now) - start
            }
            let generated = j.session?.sequence.generated.count ?? 0
            if let decodeStart = j.prefillEnd {
                t.predictedTokens = generated
                t.predictedSeconds = now - decodeStart
            }
            j.sink(.finished(j.session?.finishReason ?? reason, promptTokens: j.prompt.count, completionTokens: generated, timings: t))
            ended.append(j)
        }
        func fail(_ j: ServeJob, _ error: Error) {
            j.sink(.failed(APIError(status: 500, message: "the model failed: \(userMessage(error))", type: "server_error")))
            ended.append(j)
        }
        for j in jobs where j.cancel.isCancelled { end(j, .cancelled) }
        let live = jobs.filter { j in !ended.contains { $0 === j } }
        if let j = live.first(where: { $0.session?.isPrefilled != true }) {
            do {
                if j.session == nil {
                    j.prefillStart = Self.now()
                    let (cache, routing) = try takeCache(for: j)
                    j.session = try DecodeSession(model: bundle.model, prompt: Array(j.prompt[j.reused...]), cache: cache,
                                                  sequence: j.sequence, routing: routing, interventions: j.interventions)
                }
                let session = j.session!
                try session.prefill(chunk: prefillChunk, context: generator.context)
                if session.isPrefilled {
                    j.prefillEnd = Self.now()
                    j.sink(.started(promptTokens: j.prompt.count, routing: newRouting(j)))
                }
            } catch {
                fail(j, error)
            }
        }
        var batch: [ServeJob] = []
        for j in live where j.session?.isPrefilled == true && !ended.contains(where: { $0 === j }) {
            let session = j.session!
            if session.isFinished { end(j, session.finishReason ?? .length); continue }   // max_tokens 0
            let (_, text) = session.sample()
            let routing = newRouting(j)
            if !text.isEmpty || !routing.isEmpty { j.sink(.token(text: text, routing: routing)) }
            if let reason = session.finishReason { end(j, reason); continue }
            batch.append(j)
        }
        // One forward pass for every decoding request: the weights stream once for all of them.
        if !batch.isEmpty {
            do {
                try DecodeSession.feed(batch.compactMap(\.session), context: generator.context)
            } catch {
                for j in batch { fail(j, error) }
            }
        }
        return ended
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// The routing entries recorded since the last event (none unless the request asked): the
    /// reused prompt tokens' first, from the record they came with.
    func newRouting(_ j: ServeJob) -> [RoutingStep] {
        guard j.wantsRouting, let session = j.session, let record = session.routing else { return [] }
        var steps: [RoutingStep] = []
        if j.routed < session.firstRouted {
            steps = (j.routed..<session.firstRouted).map { t in
                RoutingStep(record: record, token: t, id: j.prompt[t], text: tokenizer.decode([j.prompt[t]]), isPrompt: true)
            }
            j.routed = session.firstRouted
        }
        steps += session.routingSteps(from: j.routed) { i in tokenizer.decode([session.fed[i]]) }
        j.routed = record.tokens
        return steps
    }

    /// A KV cache for `j` and its routing record (always kept for MoE models: a later request
    /// may reuse these tokens and ask for their routing): the parked cache holding the longest
    /// start of its prompt under the same interventions, cut there (at least one token is left
    /// to prefill, for the next token's logits), else a new one. Sets `j.reused`.
    func takeCache(for j: ServeJob) throws -> (KVCache, RoutingRecord?) {
        let record = config.moeLayers.isEmpty ? nil : bundle.model.makeRoutingRecord(j.interventions)
        var best: Int?, longest = 0
        for (i, p) in parked.enumerated() where p.interventions == j.interventions {
            var n = 0
            while n < min(p.tokens.count, j.prompt.count), p.tokens[n] == j.prompt[n] { n += 1 }
            if n > longest { (best, longest) = (i, n) }
        }
        let reuse = min(longest, j.prompt.count - 1)
        guard let best, reuse > 0 else { return (try bundle.model.makeCache(capacity: contextSize, precision: kvPrecision), record) }
        let p = parked.remove(at: best)
        p.cache.truncate(to: reuse)
        if let record, let routing = p.routing { record.append(prefixOf: routing, count: reuse) }
        j.reused = reuse
        return (p.cache, record)
    }

    /// Keeps an ended request's cache for the requests after it (not one that failed: its cache
    /// may hold a half-written pass).
    func park(_ j: ServeJob) {
        guard let s = j.session else { return }
        let tokens = Array(j.prompt[0..<j.reused]) + s.fed
        guard !tokens.isEmpty, tokens.count == s.cache.length, (s.routing?.tokens ?? tokens.count) == tokens.count else { return }
        parked.append(ParkedCache(cache: s.cache, tokens: tokens, interventions: j.interventions, routing: s.routing))
        if parked.count > parallel { parked.removeFirst() }
    }
}
