import Foundation
import NekoChat
import NekoJSON

/// An error as OpenAI's API returns it: a status and `{"error": {"message", "type", "param",
/// "code"}}`.
public struct APIError: Error, CustomStringConvertible, Sendable, Equatable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public static func invalid(_ message: String, param: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: nil)
    }

    public var description: String { message }

    public var json: JSONValue {
        .object([("error", .object([("message", .string(message)), ("type", .string(type)),
                                    ("param", param.map { .string($0) } ?? .null), ("code", code.map { .string($0) } ?? .null)]))])
    }
}

/// What a completion request asks for, read and checked from its JSON body.
public struct CompletionRequest: Sendable {
    public enum Kind: Sendable { case chat([ChatMessage]), text(String), ids([Int]) }
    public var kind: Kind
    public var model: String?
    public var settings = ChatSettings()
    public var stream = false
    public var includeUsage = false
    public var routing = false
    /// The request has a `"nekochat"` object: only then does the reply carry nekochat's own
    /// fields (OpenAI's clients are not sent what they did not ask for).
    public var extended = false
    /// SGLang's `return_routed_experts`: the reply carries `sglext.routed_experts` (base64 of
    /// int32 [tokens, num_hidden_layers, experts per token]) from position
    /// `routed_experts_start_len` on.
    public var returnRoutedExperts = false
    public var routedExpertsStartLen = 0

    /// Parses an OpenAI request body (`/v1/chat/completions` when `chat`, else
    /// `/v1/completions`), with llama-server's `top_k`, `min_p` and `repeat_penalty`.
    public static func parse(_ body: [UInt8], chat: Bool, defaults: ChatSettings, maxTokens: Int) throws -> CompletionRequest {
        let json: JSONValue
        do { json = try JSONValue.parse(body) } catch { throw APIError.invalid("the body is not valid JSON: \(error)") }
        guard json.members != nil else { throw APIError.invalid("the body must be a JSON object") }
        var r = CompletionRequest(kind: .text(""))
        r.settings = defaults
        if let m = json["model"] {
            guard let name = m.string else { throw APIError.invalid("model must be a string", param: "model") }
            r.model = name
        }
        if chat {
            guard let list = json["messages"]?.array, !list.isEmpty else {
                throw APIError.invalid("messages must be a non-empty list of {role, content}", param: "messages")
            }
            var messages: [ChatMessage] = []
            for (i, item) in list.enumerated() {
                guard let roleName = item["role"]?.string else { throw APIError.invalid("messages[\(i)].role is required", param: "messages") }
                let role: ChatMessage.Role
                switch roleName {
                case "system", "developer": role = .system
                case "user": role = .user
                case "assistant": role = .assistant
                default: throw APIError.invalid("messages[\(i)].role '\(roleName)' is not supported (system, user, assistant)", param: "messages")
                }
                messages.append(ChatMessage(id: i + 1, role: role, content: try text(of: item["content"], at: "messages[\(i)].content")))
            }
            r.kind = .chat(messages)
        } else {
            switch json["prompt"] {
            case let .string(s)?: r.kind = .text(s)
            case let .array(items)? where !items.isEmpty && items.allSatisfy({ $0.int != nil }):
                r.kind = .ids(items.compactMap(\.int))
            case let .array(items)? where items.count == 1 && items[0].string != nil: r.kind = .text(items[0].string!)
            default: throw APIError.invalid("prompt must be a string or a list of token ids (one prompt per request)", param: "prompt")
            }
        }
        func number(_ key: String) throws -> Double? {
            guard let v = json[key], !v.isNull else { return nil }
            guard let d = v.double, d.isFinite else { throw APIError.invalid("\(key) must be a number", param: key) }
            return d
        }
        func set(_ name: String, _ value: String, param: String) throws {
            do { try SettingSpec.named(name)!.set(&r.settings, value) } catch {
                throw APIError.invalid("\(param): \(error)", param: param)
            }
        }
        if let t = try number("temperature") { try set("temperature", String(t), param: "temperature") }
        if let p = try number("top_p") { try set("top_p", String(p), param: "top_p") }
        if let k = try number("top_k") {
            guard k == k.rounded() else { throw APIError.invalid("top_k must be an integer", param: "top_k") }
            try set("top_k", String(Int(max(0, min(k, 1e6)))), param: "top_k")
        }
        if let p = try number("min_p") { try set("min_p", String(p), param: "min_p") }
        if let p = try number("repeat_penalty") ?? number("repetition_penalty") { try set("repeat_penalty", String(p), param: "repeat_penalty") }
        if let s = json["seed"], !s.isNull {
            guard let seed = s.int, seed >= 0 else { throw APIError.invalid("seed must be a non-negative integer", param: "seed") }
            r.settings.sampling.seed = UInt64(seed)
        }
        let limitKey = json["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
        if let m = json[limitKey], !m.isNull {
            guard let n = m.int, n >= 1 else { throw APIError.invalid("\(limitKey) must be a positive integer", param: limitKey) }
            // As llama-server: a larger limit is served up to the server's own (the reply then ends
            // with `length`); only a prompt that cannot fit the context is refused.
            r.settings.maxTokens = min(n, maxTokens)
        }
        if let n = json["n"], !n.isNull, n.int != 1 { throw APIError.invalid("only n = 1 is supported", param: "n") }
        switch json["stop"] {
        case nil, .null?: break
        case let .string(s)?: r.settings.stop = s.isEmpty ? [] : [s]
        case let .array(items)? where items.count <= ChatSettings.maxStopStrings && items.allSatisfy({ $0.string != nil }):
            r.settings.stop = items.compactMap(\.string).filter { !$0.isEmpty }
        default: throw APIError.invalid("stop must be a string or a list of at most \(ChatSettings.maxStopStrings) strings", param: "stop")
        }
        // Every token is checked against every stop string on the thread all requests share.
        if let long = r.settings.stop.first(where: { $0.utf8.count > ChatSettings.maxStopBytes }) {
            throw APIError.invalid("a stop string is \(long.utf8.count) bytes; at most \(ChatSettings.maxStopBytes)", param: "stop")
        }
        if let s = json["stream"], !s.isNull {
            guard let b = s.bool else { throw APIError.invalid("stream must be true or false", param: "stream") }
            r.stream = b
        }
        r.includeUsage = json["stream_options"]?["include_usage"]?.bool ?? false
        r.extended = json["nekochat"]?.members != nil
        r.routing = json["nekochat"]?["routing"]?.bool ?? false
        if let v = json["return_routed_experts"], !v.isNull {
            guard let b = v.bool else { throw APIError.invalid("return_routed_experts must be true or false", param: "return_routed_experts") }
            r.returnRoutedExperts = b
        }
        if let v = json["routed_experts_start_len"], !v.isNull {
            guard let n = v.int, n >= 0 else {
                throw APIError.invalid("routed_experts_start_len must be a non-negative integer", param: "routed_experts_start_len")
            }
            r.routedExpertsStartLen = n
        }
        // Routing interventions replace the server's defaults (they are not merged with them).
        if let experts = json["nekochat"]?["experts"], !experts.isNull {
            do { try r.settings.setExperts(json: experts) } catch {
                throw APIError.invalid("nekochat.experts: \(error)", param: "nekochat.experts")
            }
        }
        return r
    }

    /// A message's content: a string, or a list of text parts.
    static func text(of v: JSONValue?, at path: String) throws -> String {
        switch v {
        case let .string(s)?: return s
        case .null?, nil: return ""
        case let .array(parts)?:
            return try parts.enumerated().map { i, p in
                guard p["type"]?.string == "text", let t = p["text"]?.string else {
                    throw APIError.invalid("\(path)[\(i)]: only text parts are supported", param: "messages")
                }
                return t
            }.joined()
        default: throw APIError.invalid("\(path) must be a string or a list of text parts", param: "messages")
        }
    }
}

/// OpenAI's finish reasons.
public func openAIReason(_ r: FinishReason) -> String {
    switch r {
    case .eos, .stop, .cancelled, .error: "stop"
    case .length, .context: "length"
    }
}

/// nekochat's extension of a chunk: the routing of its tokens (the CLI's routing-record shape)
/// and which tokens they are.
public func routingExtension(_ steps: [RoutingStep]) -> JSONValue {
    .object([("routing", RoutingStep.recordJSON(steps)),
             ("tokens", .array(steps.map { .object([("id", .int($0.tokenId)), ("text", .string($0.token)), ("prompt", .bool($0.isPrompt))]) }))])
}

extension CompletionRequest.Kind {
    public var isChat: Bool { if case .chat = self { true } else { false } }
}
