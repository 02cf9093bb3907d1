import Foundation
import NekoJSON

/// A model's chat template with transformers' `apply_chat_template(tokenize=False)` semantics.
public struct ChatTemplate: Sendable {
    public let template: Template
    /// Where it came from (for `info` and the notice when it is the default).
    public let origin: String
    /// True when the model has no template and ChatML is used.
    public let isDefault: Bool
    /// bos_token, eos_token and the other special tokens of tokenizer_config.json.
    public var specialTokens: [String: String]

    /// transformers' historical default: ChatML.
    public static let chatML = """
        {% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}
        """

    public init(template: Template, origin: String, isDefault: Bool = false, specialTokens: [String: String] = [:]) {
        self.template = template
        self.origin = origin
        self.isDefault = isDefault
        self.specialTokens = specialTokens
    }

    /// The template of a model directory: `chat_template.jinja`, else tokenizer_config.json's
    /// `chat_template` (a string, or a list of `{name, template}` where `name` picks one —
    /// `default` unless asked for another such as `tool_use`), else ChatML.
    public static func load(directory: String, name: String? = nil) throws -> ChatTemplate {
        let configPath = directory + "/tokenizer_config.json"
        var config: JSONValue?
        if let data = FileManager.default.contents(atPath: configPath) {
            do { config = try JSONValue.parse([UInt8](data)) } catch let e as JSONSyntaxError {
                throw TemplateError(.syntax, "not valid JSON: \(e.message)", line: e.line, column: e.column, file: configPath)
            }
        }
        var tokens: [String: String] = [:]
        for (key, value) in config?.members ?? [] where key.hasSuffix("_token") {
            if let s = value.string ?? value["content"]?.string { tokens[key] = s }
        }
        let jinjaPath = directory + "/chat_template.jinja"
        if let data = FileManager.default.contents(atPath: jinjaPath) {
            return ChatTemplate(template: try Template(String(decoding: data, as: UTF8.self), name: jinjaPath),
                                origin: jinjaPath, specialTokens: tokens)
        }
        if let entry = config?["chat_template"] {
            if let text = entry.string {
                return ChatTemplate(template: try Template(text, name: configPath + " (chat_template)"),
                                    origin: configPath, specialTokens: tokens)
            }
            if let list = entry.array {
                let wanted = name ?? "default"
                let named = list.compactMap { item -> (String, String)? in
                    guard let n = item["name"]?.string, let t = item["template"]?.string else { return nil }
                    return (n, t)
                }
                guard let chosen = named.first(where: { $0.0 == wanted }) ?? (name == nil ? named.first : nil) else {
                    throw TemplateError(.syntax, "no chat template named '\(wanted)' (have: \(named.map(\.0).joined(separator: ", ")))",
                                        line: 1, column: 1, file: configPath)
                }
                return ChatTemplate(template: try Template(chosen.1, name: "\(configPath) (chat_template '\(chosen.0)')"),
                                    origin: "\(configPath) ('\(chosen.0)')", specialTokens: tokens)
            }
        }
        return ChatTemplate(template: try Template(chatML, name: "ChatML default"), origin: "built-in ChatML default",
                            isDefault: true, specialTokens: tokens)
    }

    static let reasoningFields = ["reasoning_content", "thinking", "reasoning"]

    /// transformers' `_alias_reasoning_fields`: a message with reasoning under any of its names
    /// gets it as `thinking` (first) and `reasoning_content` (last) too.
    static func aliasReasoning(_ message: Value) -> Value {
        guard case let .dict(d) = message,
              let reasoning = reasoningFields.lazy.compactMap({ d[$0] }).first(where: { !$0.isNone }) else { return message }
        var out = Value.Dict()
        out["thinking"] = reasoning
        for (k, v) in zip(d.keys, d.values) { out[k] = v }
        out["thinking"] = d["thinking"] ?? reasoning
        out["reasoning_content"] = reasoning
        return .dict(out)
    }

    /// Renders `messages` with the special tokens as variables, then `extra` (tools, documents,
    /// or overrides such as `bos_token`), as transformers' `render_jinja_template` does — with
    /// its reasoning aliases and `continue_final_message` (the reply is left open for the model
    /// to continue: everything the template writes after the final message is cut).
    public func render(messages: [JSONValue], addGenerationPrompt: Bool, continueFinalMessage: Bool = false,
                       extra: [String: Value] = [:], clock: @escaping @Sendable () -> Date = { Date() }) throws -> String {
        // transformers 5 drops message keys whose value is null (`content: null` with tool calls).
        var chat = messages.map { message -> Value in
            guard case let .dict(d) = Value(json: message) else { return Value(json: message) }
            var kept = Value.Dict()
            for (k, v) in zip(d.keys, d.values) where !v.isNone { kept[k] = v }
            return Self.aliasReasoning(.dict(kept))
        }
        let tag = "CONTINUE_FINAL_MESSAGE_TAG "
        var finalText = ""
        if continueFinalMessage {
            if addGenerationPrompt { throw TemplateError(.runtime, "continue_final_message and add_generation_prompt are not compatible.", line: 1, column: 1) }
            guard case var .dict(last)? = chat.last else {
                throw TemplateError(.runtime, "continue_final_message is set but the conversation is empty!", line: 1, column: 1)
            }
            guard let content = last["content"], !content.isNone else {
                throw TemplateError(.runtime, "continue_final_message is set but the final message has no \"content\" to continue!", line: 1, column: 1)
            }
            guard template.source.contains("content") else {
                throw TemplateError(.runtime, "continue_final_message is set to \"content\" but this is not an accepted field in the chat_template", line: 1, column: 1)
            }
            if case var .list(blocks) = content {
                guard let i = blocks.lastIndex(where: { if case let .dict(b) = $0 { b["text"] != nil } else { false } }),
                      case var .dict(block) = blocks[i] else {
                    throw TemplateError(.runtime, "continue_final_message is set but we could not find any text to continue in the final message!", line: 1, column: 1)
                }
                finalText = block["text"]!.str
                block["text"] = .string(finalText + tag)
                blocks[i] = .dict(block)
                last["content"] = .list(blocks)
            } else {
                finalText = content.str
                last["content"] = .string(content.str + tag)
            }
            chat[chat.count - 1] = .dict(last)
        }
        var variables: [String: Value] = [:]
        for (k, v) in specialTokens { variables[k] = .string(v) }
        variables["tools"] = Value.none
        variables["documents"] = Value.none
        for (k, v) in extra { variables[k] = v }
        variables["messages"] = .list(chat)
        variables["add_generation_prompt"] = .bool(addGenerationPrompt)
        var rendered = try template.render(variables, clock: clock)
        if continueFinalMessage {
            let trimmedTag = "CONTINUE_FINAL_MESSAGE_TAG"
            let stripped = finalText.trimmingCharacters(in: .whitespacesAndNewlines)
            let scalars = Array(rendered.unicodeScalars)
            guard Array(scalars).containsSequence(Array(stripped.unicodeScalars)),
                  let at = scalars.lastIndex(ofSequence: Array(trimmedTag.unicodeScalars)) else {
                throw TemplateError(.runtime, "continue_final_message is set but the final message does not appear in the chat after applying the chat template!", line: 1, column: 1)
            }
            var head = Array(scalars[..<at])
            if !scalars[at...].starts(with: Array(tag.unicodeScalars)) {
                while let l = head.last, l.properties.isWhitespace { head.removeLast() }
            }
            rendered = String(String.UnicodeScalarView(head))
        }
        return rendered
    }

    /// The text the template writes right after an assistant message's content (before the
    /// next turn), e.g. `<|im_end|>` for ChatML: found by rendering a user/assistant pair.
    public func endOfTurnText(clock: @escaping @Sendable () -> Date = { Date() }) -> String? {
        let marker = "NEKOCHAT_END_OF_TURN_PROBE"
        let messages: [JSONValue] = [
            .object([("role", .string("user")), ("content", .string("hi"))]),
            .object([("role", .string("assistant")), ("content", .string(marker))]),
        ]
        guard let text = try? render(messages: messages, addGenerationPrompt: false, clock: clock),
              let range = text.range(of: marker) else { return nil }
        let after = text[range.upperBound...]
        let trimmed = after.drop { $0 == " " }
        let token = trimmed.prefix { !$0.isNewline }
        return token.isEmpty ? nil : String(token)
    }
}
