import Foundation

/// A backend that answers with prepared text, word by word, with made-up routing: for tests of
/// the chat and the screen without a model, and for demonstrating the screen (markdown, long
/// replies) reproducibly. Each reply takes the next text of `replies` (cycling).
public final class ScriptedBackend: ChatBackend, @unchecked Sendable {
    public let info: BackendInfo
    private let lock = NSLock()
    private var replies: [String]
    private var next = 0
    /// Pause between words (seconds), to watch streaming and test stop.
    public var delay: Double
    /// Prompts the backend was asked to answer, in order (for tests).
    public private(set) var requests: [ReplyRequest] = []

    public init(replies: [String], delay: Double = 0, contextSize: Int = 4096, experts: Int = 8, expertsPerToken: Int = 2,
                moeLayers: [Int] = [2, 3, 4, 5]) {
        self.replies = replies.isEmpty ? ["…"] : replies
        self.delay = delay
        info = BackendInfo(kind: "local", modelName: "scripted", location: "scripted", fingerprint: "scripted",
                           contextSize: contextSize, experts: experts, expertsPerToken: expertsPerToken,
                           moeLayers: moeLayers, reportsRouting: !moeLayers.isEmpty)
    }

    /// Counts prompt "tokens" as characters (so tests can overflow the context with a long message).
    func tokens(_ messages: [ChatMessage]) -> Int { messages.reduce(0) { $0 + $1.content.count + 4 } }

    public func check(_ messages: [ChatMessage], settings: ChatSettings) throws {
        let system = messages.filter { $0.role == .system }
        let n = tokens(system + messages.suffix(1))
        if n >= info.contextSize {
            throw ChatError("the message needs \(n) tokens, more than the context holds (\(info.contextSize) tokens; --ctx-size sets it)")
        }
    }

    public func describePrompt(_ messages: [ChatMessage], settings: ChatSettings) throws -> String? {
        "the prompt is \(tokens(messages)) tokens (scripted)"
    }

    public func reply(_ request: ReplyRequest, cancel: CancellationFlag, emit: (BackendEvent) -> Void) {
        let text: String = lock.withLock {
            requests.append(request)
            defer { next += 1 }
            return replies[next % replies.count]
        }
        var summary = ReplySummary(reason: .eos)
        summary.promptTokens = tokens(request.messages)
        emit(.prefillProgress(done: summary.promptTokens, total: summary.promptTokens))
        var words: [String] = []
        var current = ""
        for c in text {
            current.append(c)
            if c == " " || c == "\n" { words.append(current); current = "" }
        }
        if !current.isEmpty { words.append(current) }
        let start = Date()
        for (i, word) in words.enumerated() {
            if cancel.isCancelled { summary.reason = .cancelled; break }
            if i >= request.settings.maxTokens { summary.reason = .length; break }
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            emit(.textDelta(word))
            summary.completionTokens += 1
            if info.reportsRouting {
                let experts = info.moeLayers.indices.map { slot in (0..<info.expertsPerToken).map { (i + slot + $0 * 3) % info.experts } }
                emit(.routing(RoutingStep(layers: info.moeLayers, experts: experts,
                                          weights: experts.map { $0.map { _ in 1 / Float(info.expertsPerToken) } },
                                          tokenId: i, token: word)))
            }
            let elapsed = max(1e-6, Date().timeIntervalSince(start))
            summary.decodeTokensPerSecond = Double(i + 1) / elapsed
            emit(.stats(GenerationStats(decodeTokensPerSecond: summary.decodeTokensPerSecond,
                                        contextUsed: summary.promptTokens + i + 1, contextSize: info.contextSize)))
        }
        emit(.finished(summary))
    }
}
