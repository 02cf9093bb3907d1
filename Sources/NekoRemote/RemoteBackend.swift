import AsyncHTTPClient
import Foundation
import NekoChat
import NekoJSON
import NIOCore
import NIOHTTP1

/// The chat against an OpenAI-compatible server (nekochat's own `serve`, llama-server, vLLM,
/// ollama): replies stream over SSE from `/v1/chat/completions` (or `/v1/completions` in
/// complete mode). Stop cancels the HTTP request; every failure — no connection, a refused
/// key, an unknown model, a busy or broken server, a malformed stream, a server that dies
/// mid-reply — ends the reply with a message saying which, keeping what had arrived.
public final class RemoteBackend: ChatBackend, @unchecked Sendable {
    public let info: BackendInfo
    /// The API's base, ending in `/v1`.
    public let base: String
    public let model: String
    let apiKey: String?
    /// The server is nekochat's: it takes the routing extension and llama-server's sampling fields.
    public let isNekochat: Bool
    /// The settings nekochat's server gives requests by default (its model's generation config):
    /// the chat starts from these, so that a field it always sends does not override them.
    public let serverDefaults: ChatSettings?
    let client: HTTPClient
    /// The context the last reply filled (its usage: prompt + completion tokens), the start of
    /// the stats bar's count while the next reply streams; exact again when its usage arrives.
    private var contextUsed = 0
    private let lock = NSLock()

    /// Asks the server for its models and picks `model` (or the only/first one).
    public static func connect(url: String, model: String? = nil, apiKey: String? = nil, timeout: Double = 10) throws -> RemoteBackend {
        var trimmed = url.trimmingCharacters(in: .whitespaces)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        if !trimmed.hasSuffix("/v1") { trimmed += "/v1" }
        let base = trimmed
        guard let parsed = URL(string: base), let scheme = parsed.scheme, ["http", "https"].contains(scheme), parsed.host != nil else {
            throw ChatError("\(url): not an http:// or https:// URL")
        }
        let client = Self.client
        let (status, body) = try blocking {
            var request = HTTPClientRequest(url: base + "/models")
            if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            let response = try await client.execute(request, timeout: .seconds(Int64(timeout)))
            return (Int(response.status.code), try await response.body.collect(upTo: 8 << 20))
        } describe: { Self.connectionError($0, url: base) }
        guard status == 200 else { throw ChatError(httpError(status, body: Array(buffer: body), url: base + "/models")) }
        guard let json = try? JSONValue.parse(Array(buffer: body)), let list = json["data"]?.array else {
            throw ChatError("\(base)/models: the answer is not an OpenAI model list")
        }
        let ids = list.compactMap { $0["id"]?.string }
        let chosen: JSONValue
        if let model {
            guard let m = list.first(where: { $0["id"]?.string == model }) else {
                throw ChatError("\(base): no model '\(model)' (the server has \(ids.isEmpty ? "none" : ids.joined(separator: ", ")))")
            }
            chosen = m
        } else {
            guard let first = list.first, let _ = first["id"]?.string else { throw ChatError("\(base): the server lists no model") }
            chosen = first
        }
        return RemoteBackend(base: base, model: chosen["id"]?.string ?? "", apiKey: apiKey, client: client, description: chosen["nekochat"])
    }

    init(base: String, model: String, apiKey: String?, client: HTTPClient, description ext: JSONValue?) {
        self.base = base
        self.model = model
        self.apiKey = apiKey
        self.client = client
        isNekochat = ext != nil
        serverDefaults = ext?["defaults"].flatMap { try? ChatSettings(json: $0) }
        let layers = ext?["moe_layers"]?.array?.compactMap(\.int) ?? []
        info = BackendInfo(kind: "remote", modelName: model, location: base, fingerprint: "remote:\(base)/\(model)",
                           contextSize: ext?["context"]?.int ?? 0, experts: ext?["experts"]?.int ?? 0,
                           expertsPerToken: ext?["top_k"]?.int ?? 0, moeLayers: layers,
                           reportsRouting: ext?["routing"]?.bool ?? false)
    }

    /// The server checks lengths itself (a prompt that does not fit is its 400).
    public func check(_ messages: [ChatMessage], settings: ChatSettings) throws {}

    public func describePrompt(_ messages: [ChatMessage], settings: ChatSettings) throws -> String? { nil }

    /// Only nekochat's server takes routing interventions (it checks them against its model and
    /// answers a bad one with a 400 that the chat shows).
    public func check(_ experts: RoutingInterventions) throws {
        guard isNekochat || experts.isEmpty else {
            throw ChatError("the server at \(base) is not nekochat's: only `nekochat serve` takes routing interventions")
        }
    }

    /// How many stop strings the server is sent: OpenAI takes at most 4, nekochat's server 16.
    /// The rest are applied here (`StopScanner`), and the request is cancelled when one matches.
    var stopsSent: Int { isNekochat ? ChatSettings.maxStopStrings : 4 }

    /// The request body for a reply.
    func body(_ request: ReplyRequest) -> JSONValue {
        let s = request.settings
        var fields: [(key: String, value: JSONValue)] = [("model", .string(model)), ("stream", .bool(true)),
                                                          ("stream_options", .object([("include_usage", .bool(true))]))]
        if s.mode == .chat {
            fields.append(("messages", .array(request.messages.map(\.templateJSON))))
        } else {
            fields.append(("prompt", .string(request.messages.map(\.content).joined())))
        }
        fields += [("max_tokens", .int(s.maxTokens)), ("temperature", .float(s.sampling.temperature)), ("top_p", .float(s.sampling.topP))]
        if let seed = s.sampling.seed { fields.append(("seed", .int(Int(truncatingIfNeeded: seed)))) }
        if !s.stop.isEmpty { fields.append(("stop", .array(s.stop.prefix(stopsSent).map { .string($0) }))) }
        // llama-server's (and vLLM's) extra sampling fields; OpenAI itself refuses unknown fields.
        if !base.contains("api.openai.com") {
            fields += [("top_k", .int(s.sampling.topK)), ("min_p", .float(s.sampling.minP)), ("repeat_penalty", .float(s.sampling.repeatPenalty))]
        }
        // Asking for the extension at all brings the exact finish reason; routing only when shown.
        // The interventions are always sent: they replace the server's defaults.
        if isNekochat {
            fields.append(("nekochat", .object([("routing", .bool(info.reportsRouting)), ("experts", s.experts.json)])))
        }
        return .object(fields)
    }

    public func reply(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void) {
        let url = base + (request.settings.mode == .chat ? "/chat/completions" : "/completions")
        let events = EventChannel<BackendEvent>(capacity: 1024)
        let payload = body(request).serialized
        let localStops = Array(request.settings.stop.dropFirst(stopsSent))
        // A first message (a new chat) starts from an empty context.
        let first = request.messages.filter { $0.role != .system }.count <= 1
        let before = first ? 0 : lock.withLock { contextUsed }, contextSize = info.contextSize
        let task = Task { [client, apiKey] in
            var summary = ReplySummary(reason: .error)
            summary.seed = request.settings.sampling.seed
            var stream = SSEStream()
            let start = Date()
            var firstToken: Date?
            var deltas = 0
            var stops = StopScanner(stopStrings: localStops)
            var timings: JSONValue?
            do {
                var http = HTTPClientRequest(url: url)
                http.method = .POST
                http.headers.add(name: "Content-Type", value: "application/json")
                http.headers.add(name: "Accept", value: "text/event-stream")
                if let apiKey { http.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
                http.body = .bytes(ByteBuffer(string: payload))
                let response = try await client.execute(http, timeout: .hours(1))
                guard response.status == .ok else {
                    let body = try await response.body.collect(upTo: 1 << 20)
                    summary.error = Self.httpError(Int(response.status.code), body: Array(buffer: body), url: url)
                    events.send(.finished(summary))
                    return
                }
                var ended = false
                for try await buffer in response.body {
                    for data in stream.feed(Array(buffer: buffer)) {
                        if data == "[DONE]" { ended = true; break }
                        guard let chunk = try? JSONValue.parse(data) else {
                            throw ChatError("the server sent a malformed stream (not JSON: \(data.prefix(80)))")
                        }
                        if let e = chunk["error"] { throw ChatError("the server failed mid-reply: \(e["message"]?.string ?? e.serialized)") }
                        let choice = chunk["choices"]?.array?.first
                        let text = choice?["delta"]?["content"]?.string ?? choice?["text"]?.string ?? ""
                        if !text.isEmpty {
                            if firstToken == nil { firstToken = Date() }
                            deltas += 1
                            let shown = localStops.isEmpty ? text : stops.add(text)
                            if !shown.isEmpty { events.send(.textDelta(shown)) }
                            // A stop string the server was not sent: the reply ends here, and
                            // leaving the stream cancels the request.
                            if stops.stopped { summary.reason = .stop; ended = true; break }
                            let elapsed = Date().timeIntervalSince(firstToken!)
                            if deltas > 1, elapsed > 0 {
                                summary.decodeTokensPerSecond = Double(deltas - 1) / elapsed
                                events.send(.stats(GenerationStats(decodeTokensPerSecond: summary.decodeTokensPerSecond,
                                                                   contextUsed: before + deltas, contextSize: contextSize)))
                            }
                        }
                        for step in Self.routing(chunk["nekochat"]) { events.send(.routing(step)) }
                        if let reason = choice?["finish_reason"]?.string {
                            // nekochat's server says which of its reasons OpenAI's stands for.
                            summary.reason = chunk["nekochat"]?["finish_reason"]?.string.flatMap(FinishReason.init(rawValue:))
                                ?? (reason == "length" ? .length : .stop)
                        }
                        if let t = chunk["timings"], t.members != nil { timings = t }
                        if let usage = chunk["usage"], usage.members != nil {
                            summary.promptTokens = usage["prompt_tokens"]?.int ?? summary.promptTokens
                            summary.completionTokens = usage["completion_tokens"]?.int ?? summary.completionTokens
                        }
                    }
                    if ended { break }
                }
                if !ended && summary.reason == .error {
                    throw ChatError("the server closed the connection mid-reply")
                }
                if !localStops.isEmpty, !stops.stopped {
                    let rest = stops.finish()
                    if !rest.isEmpty { events.send(.textDelta(rest)) }
                }
                if summary.completionTokens == 0 { summary.completionTokens = deltas }
                if let first = firstToken, summary.completionTokens > 1 {
                    summary.decodeTokensPerSecond = Double(summary.completionTokens - 1) / max(1e-6, Date().timeIntervalSince(first))
                    summary.prefillTokensPerSecond = summary.promptTokens > 0
                        ? Double(summary.promptTokens) / max(1e-6, first.timeIntervalSince(start)) : 0
                }
                // The server's own clock (llama-server's and nekochat's `timings`) leaves out the
                // network and the time the request waited for a slot.
                if let p = timings?["prompt_per_second"]?.double, p > 0 { summary.prefillTokensPerSecond = p }
                if let d = timings?["predicted_per_second"]?.double, d > 0, (timings?["predicted_n"]?.int ?? 0) > 1 {
                    summary.decodeTokensPerSecond = d
                }
                if summary.promptTokens > 0 {
                    let used = summary.promptTokens + summary.completionTokens
                    self.lock.withLock { self.contextUsed = used }
                    events.send(.stats(GenerationStats(prefillTokensPerSecond: summary.prefillTokensPerSecond,
                                                       decodeTokensPerSecond: summary.decodeTokensPerSecond,
                                                       contextUsed: used, contextSize: contextSize)))
                }
            } catch is CancellationError {
                summary.reason = .cancelled
            } catch {
                if Task.isCancelled {
                    summary.reason = .cancelled
                } else {
                    summary.reason = .error
                    summary.error = (error as? ChatError)?.description ?? Self.connectionError(error, url: url)
                }
            }
            events.send(.finished(summary))
        }
        // Hand the events over on this (the model) thread; stop cancels the request.
        while true {
            if cancel.isCancelled { task.cancel() }
            _ = events.wait(timeout: 0.05)
            for e in events.drain() {
                if case var .finished(s) = e, cancel.isCancelled, s.reason == .error { s.reason = .cancelled; s.error = nil; emit(.finished(s)); return }
                emit(e)
                if case .finished = e { return }
            }
        }
    }

    /// One client for the process (never shut down: it lives as long as the program). It fails a
    /// request at once when the server cannot be reached, instead of retrying until the deadline.
    static let client: HTTPClient = {
        var config = HTTPClient.Configuration()
        config.connectionPool.retryConnectionEstablishment = false
        config.timeout.connect = .seconds(10)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }()

    /// The routing extension's entries as steps (the CLI's routing-record shape, plus tokens).
    static func routing(_ ext: JSONValue?) -> [RoutingStep] {
        guard let perToken = ext?["routing"]?.array else { return [] }
        let tokens = ext?["tokens"]?.array ?? []
        return perToken.enumerated().compactMap { t, layers in
            guard let list = layers.array else { return nil }
            var s = RoutingStep(layers: list.compactMap { $0["layer"]?.int }, experts: [], weights: [],
                                tokenId: t < tokens.count ? tokens[t]["id"]?.int ?? -1 : -1,
                                token: t < tokens.count ? tokens[t]["text"]?.string ?? "" : "",
                                isPrompt: t < tokens.count ? tokens[t]["prompt"]?.bool ?? false : false)
            for l in list {
                s.experts.append(l["experts"]?.array?.compactMap(\.int) ?? [])
                s.weights.append(l["weights"]?.array?.compactMap { $0.double.map(Float.init) } ?? [])
                s.sharedGate.append(l["shared_gate"]?.double.map(Float.init) ?? .nan)
                if let h = l["router_entropy"]?.double { s.routerEntropy.append(Float(h)) }
            }
            if s.sharedGate.allSatisfy(\.isNaN) { s.sharedGate = [] }
            if s.routerEntropy.count != s.layers.count { s.routerEntropy = [] }
            return s
        }
    }

    /// A failed HTTP status in words, with the server's own message.
    static func httpError(_ status: Int, body: [UInt8], url: String) -> String {
        let message = (try? JSONValue.parse(body))?["error"]?["message"]?.string
            ?? String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let what: String
        switch status {
        case 401, 403: what = "the server refused the API key (--api-key-env)"
        case 404: what = "not found (the model or the endpoint)"
        case 413: what = "the request is too large for the server"
        case 429: what = "the server is busy or rate-limited; try again"
        case 400: what = "the server refused the request"
        case 500...599: what = "the server failed"
        default: what = "unexpected answer"
        }
        return "\(url): \(status) \(what)\(message.isEmpty ? "" : ": " + message)"
    }

    /// No connection, in words.
    static func connectionError(_ error: Error, url: String) -> String {
        let text = "\(error)"
        if text.contains("connectTimeout") || text.contains("deadline") { return "\(url): the server did not answer in time" }
        if text.contains("ECONNREFUSED") || text.contains("connectionRefused") || text.contains("Connection refused") {
            return "\(url): connection refused (is the server running?)"
        }
        if text.contains("NXDOMAIN") || text.contains("resolve") || text.contains("getaddrinfo") || text.contains("Name or service") {
            return "\(url): cannot resolve the host name"
        }
        if text.contains("remoteConnectionClosed") || text.contains("EOF") { return "\(url): the server closed the connection" }
        return "\(url): \(userMessage(error))"
    }
}

/// Server-sent events: bytes in, each event's `data` out (lines joined), as they complete.
struct SSEStream {
    private var pending: [UInt8] = []
    private var data: [String] = []

    mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending += bytes
        var out: [String] = []
        while let nl = pending.firstIndex(of: 0x0A) {
            var line = Array(pending[..<nl])
            pending.removeFirst(nl + 1)
            if line.last == 0x0D { line.removeLast() }
            if line.isEmpty {
                if !data.isEmpty { out.append(data.joined(separator: "\n")); data = [] }
                continue
            }
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix("data:") { data.append(String(text.dropFirst(5).drop { $0 == " " })) }
        }
        return out
    }
}

/// Carries a result across threads (the caller waits, so access is ordered).
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    init() {}
}

/// Runs async work from a thread that may block (the main thread, the model thread).
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T, describe: @escaping @Sendable (Error) -> String) throws -> T {
    let box = ResultBox<T>(), done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = Result<T, Error>.success(try await body()) } catch { box.result = .failure(ChatError(describe(error))) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}
