import Foundation
import Hummingbird
import NekoChat
import NekoJSON
import NekoOpenAI

/// How `nekochat serve` listens and what it allows.
public struct ServeOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    /// Requests must carry `Authorization: Bearer <apiKey>` when set.
    public var apiKey: String?
    public var maxBodyBytes = 8 << 20
    /// The largest `max_tokens` a request may ask for.
    public var maxTokens = 4096
    public var defaults = ChatSettings()

    public init() {}
}

/// OpenAI's HTTP API over a `ServeEngine`: `GET /health`, `GET /v1/models`,
/// `POST /v1/chat/completions`, `POST /v1/completions` (SSE streaming or not), with nekochat's
/// routing extension (`"nekochat": {"routing": true}`). Every failure is OpenAI's error object.
public enum NekoServer {
    /// Serves until the process is told to stop (SIGTERM, SIGINT); `onRunning` gets the port.
    public static func run(_ engine: ServeEngine, options: ServeOptions, onRunning: @escaping @Sendable (Int) -> Void) async throws {
        let router = Router()
        router.add(middleware: OpenAIErrors(apiKey: options.apiKey))
        router.get("/health") { _, _ -> Response in
            let load = engine.load
            return json(.object([("status", .string("ok")), ("model", .string(engine.modelID)),
                                 ("preparing", .int(load.preparing)), ("waiting", .int(load.waiting)), ("running", .int(load.running)), ("parallel", .int(engine.parallel))]))
        }
        router.get("/v1/models") { _, _ -> Response in
            json(.object([("object", .string("list")), ("data", .array([modelObject(engine, options)]))]))
        }
        router.get("/v1/models/{id}") { _, context -> Response in
            let id = context.parameters.get("id") ?? ""
            guard id == engine.modelID else { throw unknownModel(id, engine) }
            return json(modelObject(engine, options))
        }
        router.post("/v1/chat/completions") { request, context -> Response in
            try await complete(request, chat: true, engine: engine, options: options)
        }
        router.post("/v1/completions") { request, context -> Response in
            try await complete(request, chat: false, engine: engine, options: options)
        }
        let app = Application(router: router, configuration: .init(address: .hostname(options.host, port: options.port), serverName: "nekochat"),
                              onServerRunning: { channel in onRunning(channel.localAddress?.port ?? options.port) })
        try await app.runService()
    }

    /// The model, with nekochat's description of it; `defaults` are the settings a request gets
    /// for the fields it leaves out (the model's generation_config.json and serve's flags), so
    /// that nekochat's client starts from them rather than from its own.
    static func modelObject(_ engine: ServeEngine, _ options: ServeOptions) -> JSONValue {
        let c = engine.config
        return .object([("id", .string(engine.modelID)), ("object", .string("model")), ("created", .int(0)), ("owned_by", .string("nekochat")),
                        ("nekochat", .object([("context", .int(engine.contextSize)), ("experts", .int(c.numExperts)),
                                              ("top_k", .int(c.numExpertsPerTok)), ("moe_layers", .array(c.moeLayers.map { .int($0) })),
                                              ("routing", .bool(!c.moeLayers.isEmpty)), ("defaults", options.defaults.json)]))])
    }

    static func unknownModel(_ id: String, _ engine: ServeEngine) -> APIError {
        APIError(status: 404, message: "the model '\(id)' does not exist here; this server has '\(engine.modelID)'",
                 type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    static func json(_ v: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: v.serialized)))
    }

    /// Where a request's CPU work runs: parsing a body of up to --max-body bytes, rendering the
    /// template, tokenising the prompt (seconds for a few MB). Swift's task pool has one thread
    /// per core here, so two such requests run inline used to stall every other handler —
    /// /health answered after 12-15 s. Serial queues of their own have threads outside that
    /// pool; one per core, and each request goes to the least busy, so a small request does not
    /// wait behind a long prompt.
    final class Preparers: @unchecked Sendable {
        private let queues: [DispatchQueue]
        private var busy: [Int]
        private let lock = NSLock()

        init(count: Int) {
            queues = (0..<count).map { DispatchQueue(label: "nekochat-serve-prepare-\($0)") }
            busy = Array(repeating: 0, count: count)
        }

        func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
            let i = lock.withLock {
                let i = busy.indices.min { busy[$0] < busy[$1] }!
                busy[i] += 1
                return i
            }
            return try await withCheckedThrowingContinuation { continuation in
                queues[i].async {
                    let result = Result { try work() }
                    self.lock.withLock { self.busy[i] -= 1 }
                    continuation.resume(with: result)
                }
            }
        }
    }

    static let preparers = Preparers(count: max(2, ProcessInfo.processInfo.activeProcessorCount))

    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await preparers.run(work)
    }

    static func complete(_ request: Request, chat: Bool, engine: ServeEngine, options: ServeOptions) async throws -> Response {
        try engine.admit()
        var submitted = false
        defer { if !submitted { engine.withdraw() } }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: options.maxBodyBytes)
        } catch {
            throw APIError(status: 413, message: "the request body is larger than \(options.maxBodyBytes) bytes", type: "invalid_request_error")
        }
        let r = try await offPool {
            try CompletionRequest.parse(Array(buffer: body), chat: chat, defaults: options.defaults,
                                        maxTokens: min(options.maxTokens, engine.contextSize))
        }
        if let model = r.model, !model.isEmpty, model != engine.modelID { throw unknownModel(model, engine) }
        let (events, continuation) = AsyncStream<ServeEvent>.makeStream()
        let job = try await offPool {
            try engine.prepare(r) { event in
                continuation.yield(event)
                switch event {
                case .finished, .failed: continuation.finish()
                default: break
                }
            }
        }
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24).lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let reply = Reply(id: id, created: created, model: engine.modelID, chat: chat, routing: r.routing, extended: r.extended,
                          routedExperts: r.returnRoutedExperts ? RoutedExperts(start: r.routedExpertsStartLen,
                                                                               layers: engine.config.numHiddenLayers) : nil)
        // However the handler ends (a client gone, a task cancelled), the job stops with it.
        continuation.onTermination = { _ in job.cancel.cancel() }
        engine.submit(job)
        submitted = true
        if !r.stream {
            // The client closing the connection cancels the request.
            let document = try await request.body.consumeWithInboundCloseHandler({ _ in
                try await reply.collect(events)
            }, onInboundClosed: { job.cancel.cancel() })
            // Watching for the client closing ends the connection with the response: say so,
            // so that clients do not reuse it.
            var response = json(document)
            response.headers[.connection] = "close"
            return response
        }
        let includeUsage = r.includeUsage
        let requestBody = request.body
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"], body: .init { writer in
            do {
                try await requestBody.consumeWithInboundCloseHandler({ _ in
                    var steps: [RoutingStep] = []   // every routing step so far (SGLang's routed experts)
                    for await event in events {
                        switch event {
                        case let .started(_, s), let .token(_, s): steps += s
                        default: break
                        }
                        for chunk in reply.chunks(for: event, includeUsage: includeUsage, allSteps: steps) {
                            try await writer.write(ByteBuffer(string: "data: " + chunk.serialized + "\n\n"))
                        }
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                }, onInboundClosed: { job.cancel.cancel() })
                try await writer.finish(nil)
            } catch {
                job.cancel.cancel()   // the client went away while we wrote
                throw error
            }
        })
    }
}

/// SGLang's `sglext.routed_experts`: base64 of little-endian int32 [T, layers, k] — for every
/// token put through the model from position `start` on (the prompt's, then each generated one
/// but the last: SGLang's positions [start, seqlen − 1)), every layer of the model (dense layers'
/// rows are zeros, as SGLang leaves them), the experts chosen in descending weight order.
struct RoutedExperts: Sendable {
    let start: Int
    let layers: Int

    func encode(_ steps: [RoutingStep]) -> String {
        let k = steps.first?.experts.first?.count ?? 0
        var values: [Int32] = []
        values.reserveCapacity(max(0, steps.count - start) * layers * k)
        for step in steps.dropFirst(start) {
            var rows = [[Int32]](repeating: [Int32](repeating: 0, count: k), count: layers)
            for (slot, layer) in step.layers.enumerated() where layer < layers {
                rows[layer] = step.experts[slot].prefix(k).map { Int32($0) } + [Int32](repeating: 0, count: max(0, k - step.experts[slot].count))
            }
            for row in rows { values += row }
        }
        let bytes = values.flatMap { v -> [UInt8] in
            let u = UInt32(bitPattern: v)
            return [UInt8(u & 0xff), UInt8((u >> 8) & 0xff), UInt8((u >> 16) & 0xff), UInt8(u >> 24)]
        }
        return Data(bytes).base64EncodedString()
    }

    func sglext(_ steps: [RoutingStep]) -> JSONValue { .object([("routed_experts", .string(encode(steps)))]) }
}

/// Builds OpenAI's response objects and stream chunks from a request's events.
struct Reply: Sendable {
    let id: String
    let created: Int
    let model: String
    let chat: Bool
    let routing: Bool
    let extended: Bool
    /// SGLang's routed experts, when the request asked for them.
    var routedExperts: RoutedExperts?

    func base(_ object: String) -> [(key: String, value: JSONValue)] {
        [("id", .string(id)), ("object", .string(object)), ("created", .int(created)), ("model", .string(model))]
    }

    /// OpenAI's usage object; `cached`: prompt tokens whose keys and values came from an earlier
    /// request's cache (OpenAI's prompt_tokens_details.cached_tokens).
    static func usage(_ prompt: Int, _ completion: Int, cached: Int) -> JSONValue {
        .object([("prompt_tokens", .int(prompt)), ("completion_tokens", .int(completion)), ("total_tokens", .int(prompt + completion)),
                 ("prompt_tokens_details", .object([("cached_tokens", .int(cached))]))])
    }

    func choice(text: String?, role: Bool = false, finish: FinishReason?, delta: Bool) -> JSONValue {
        var fields: [(key: String, value: JSONValue)] = [("index", .int(0))]
        if chat {
            var content: [(key: String, value: JSONValue)] = []
            if role { content.append(("role", .string("assistant"))) }
            if let text { content.append(("content", .string(text))) }
            fields.append((delta ? "delta" : "message", .object(content)))
        } else {
            fields.append(("text", .string(text ?? "")))
        }
        fields.append(("finish_reason", finish.map { .string(openAIReason($0)) } ?? .null))
        return .object(fields)
    }

    func chunk(_ choice: JSONValue?, routing steps: [RoutingStep] = [], usage: JSONValue? = nil,
               finish: FinishReason? = nil, timings: ServeTimings? = nil) -> JSONValue {
        var fields = base(chat ? "chat.completion.chunk" : "text_completion")
        fields.append(("choices", .array(choice.map { [$0] } ?? [])))
        if let usage { fields.append(("usage", usage)) }
        if let timings { fields.append(("timings", timings.json)) }
        if let ext = nekochatExtension(steps, finish: finish) { fields.append(("nekochat", ext)) }
        return .object(fields)
    }

    /// nekochat's own fields, for a request that has a `"nekochat"` object: the routing asked
    /// for, and the exact finish reason (OpenAI's `finish_reason` has only stop and length: eos,
    /// a stop string, a full context and a cancelled request are told apart here).
    func nekochatExtension(_ steps: [RoutingStep], finish: FinishReason?) -> JSONValue? {
        guard extended else { return nil }
        var fields: [(key: String, value: JSONValue)] = []
        if routing, !steps.isEmpty, case let .object(r) = routingExtension(steps) { fields += r }
        if let finish { fields.append(("finish_reason", .string(finish.rawValue))) }
        return fields.isEmpty ? nil : .object(fields)
    }

    /// The stream chunks for one event.
    func chunks(for event: ServeEvent, includeUsage: Bool, allSteps: [RoutingStep] = []) -> [JSONValue] {
        switch event {
        case let .started(_, steps):
            return chat || !steps.isEmpty ? [chunk(choice(text: chat ? "" : "", role: chat, finish: nil, delta: true), routing: steps)] : []
        case let .token(text, steps):
            return [chunk(choice(text: text, finish: nil, delta: true), routing: steps)]
        case let .finished(reason, prompt, completion, timings):
            // llama-server's timings ride on the last chunk.
            var out = [chunk(choice(text: chat ? nil : "", finish: reason, delta: true), finish: reason, timings: includeUsage ? nil : timings)]
            // SGLang's routed experts: a chunk of their own, no choices, before the usage.
            if let routedExperts {
                var fields = base(chat ? "chat.completion.chunk" : "text_completion")
                fields.append(("choices", .array([])))
                fields.append(("sglext", routedExperts.sglext(allSteps)))
                out.append(.object(fields))
            }
            if includeUsage { out.append(chunk(nil, usage: Self.usage(prompt, completion, cached: timings.cachedTokens), timings: timings)) }
            return out
        case let .failed(error):
            return [error.json]
        }
    }

    /// The whole response of a request that does not stream.
    func collect(_ events: AsyncStream<ServeEvent>) async throws -> JSONValue {
        var text = "", steps: [RoutingStep] = []
        for await event in events {
            switch event {
            case let .started(_, s): steps += s
            case let .token(t, s): text += t; steps += s
            case let .finished(reason, prompt, completion, timings):
                var fields = base(chat ? "chat.completion" : "text_completion")
                fields.append(("choices", .array([choice(text: text, role: chat, finish: reason, delta: false)])))
                fields.append(("usage", Self.usage(prompt, completion, cached: timings.cachedTokens)))
                fields.append(("timings", timings.json))
                if let ext = nekochatExtension(steps, finish: reason) { fields.append(("nekochat", ext)) }
                if let routedExperts { fields.append(("sglext", routedExperts.sglext(steps))) }
                return .object(fields)
            case let .failed(error): throw error
            }
        }
        throw APIError(status: 500, message: "the request ended without a result", type: "server_error")
    }
}

/// Bearer-token checks, and every error (ours, Hummingbird's, an unknown route) as OpenAI's
/// error object with its status.
struct OpenAIErrors<Context: RequestContext>: RouterMiddleware {
    let apiKey: String?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let apiKey, request.uri.path != "/health" {
            let auth = request.headers[.authorization] ?? ""
            guard auth == "Bearer " + apiKey else {
                return NekoServer.json(APIError(status: 401, message: auth.isEmpty ? "a bearer token is required (Authorization: Bearer …)"
                                                : "the API key is not valid", type: "authentication_error", code: "invalid_api_key").json,
                                       status: .unauthorized)
            }
        }
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return NekoServer.json(e.json, status: .init(code: e.status))
        } catch let e as HTTPError {
            let code = Int(e.status.code)
            let message = code == 404 ? "no such endpoint: \(request.method) \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
            return NekoServer.json(APIError(status: code, message: message, type: code >= 500 ? "server_error" : "invalid_request_error").json,
                                   status: e.status)
        } catch {
            return NekoServer.json(APIError(status: 500, message: "internal error: \(userMessage(error))", type: "server_error").json,
                                   status: .internalServerError)
        }
    }
}
