import Foundation
@testable import NekoChat
import NekoModel
import Testing

/// The tiny engine fixture with a character-level tokenizer (ids fit its 128-token vocabulary)
/// and ChatML-ish special tokens, so conversations can run through the real stack.
enum ChatFixture {
    static let chars = (32...126).map { String(UnicodeScalar(UInt8($0))) } + ["\n"]
    static var vocab: [String] { ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"] + chars }

    static func make() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-chat-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: EngineFixtures.path("neko_mini_bf16"), toPath: dir.path)
        func q(_ s: String) -> String {
            String(String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast())
        }
        let vocabJSON = vocab.enumerated().map { "\(q($0.element)): \($0.offset)" }.joined(separator: ", ")
        let added = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"].enumerated()
            .map { #"{"id": \#($0.offset), "content": \#(q($0.element)), "special": true, "normalized": false}"# }.joined(separator: ", ")
        try """
            {"added_tokens": [\(added)], "decoder": {"type": "Fuse"},
             "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {\(vocabJSON)}, "merges": []}}
            """.write(toFile: dir.path + "/tokenizer.json", atomically: true, encoding: .utf8)
        try #"{"bos_token": "<s>", "eos_token": "</s>"}"#.write(toFile: dir.path + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        return dir.path
    }

    static func backend(contextSize: Int? = nil) throws -> LocalBackend {
        try LocalBackend(bundle: try ModelBundle(directory: try make()), threads: 2, contextSize: contextSize)
    }

    /// Greedy settings with short replies.
    static func settings(maxTokens: Int = 6) -> ChatSettings {
        var s = ChatSettings(maxTokens: maxTokens)
        s.sampling.temperature = 0
        return s
    }

    /// A temporary directory of its own.
    static func temp() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-t-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A reply run on the calling thread, its events collected.
    static func reply(_ backend: ChatBackend, _ messages: [ChatMessage], _ settings: ChatSettings,
                      cancel: CancellationFlag = CancellationFlag(), onEvent: (BackendEvent) -> Void = { _ in }) -> [BackendEvent] {
        var events: [BackendEvent] = []
        backend.reply(ReplyRequest(messages: messages, settings: settings), cancel: cancel) { events.append($0); onEvent($0) }
        return events
    }

    static func user(_ id: Int, _ text: String, parent: Int? = nil) -> ChatMessage {
        ChatMessage(id: id, parent: parent, role: .user, content: text)
    }

    static func summary(_ events: [BackendEvent]) -> ReplySummary? {
        for case let .finished(s) in events { return s }
        return nil
    }

    static func text(_ events: [BackendEvent]) -> String {
        events.compactMap { if case let .textDelta(t) = $0 { t } else { nil } }.joined()
    }
}
