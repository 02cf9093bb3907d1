import ArgumentParser
import Dispatch
import NekoChat
import NekoModel
import NekoTUI

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time prefill of N tokens and decode of M tokens (random ids, greedy, no EOS stop).")

    enum Weights: String, ExpressibleByArgument, CaseIterable { case bf16, q8 }

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("prompt-tokens"), help: "Prompt tokens to prefill.") var promptTokens = 512
    @Option(name: .customLong("gen-tokens"), help: "Tokens to decode.") var genTokens = 128
    @Option(help: "Weights: bf16 (as stored) or q8.") var weights: Weights = .bf16
    @Option(help: "Seed for the random prompt.") var seed: UInt64 = 1
    @Flag(help: "Print one JSON document.") var json = false
    @Flag(help: "Instead: time redrawing the chat screen at 200×60 after each token (no model needed).") var ui = false
    @Option(name: .customLong("paste-bytes"), help: "With --ui: also time keystrokes in a draft of this many pasted bytes, and its screen once sent.")
    var pasteBytes = 0

    func validate() throws {
        if !(1...1_000_000).contains(promptTokens) { throw ValidationError("--prompt-tokens must be from 1 to 1000000") }
        if !(0...1_000_000).contains(genTokens) { throw ValidationError("--gen-tokens must be from 0 to 1000000") }
    }

    func run() throws {
        if ui {
            try runUI()
            if pasteBytes > 0 { try runPaste() }
            return
        }
        if weights == .q8 { throw CLIError("--weights q8 is not implemented yet (it arrives with the speed work)") }
        let bundle = try modelOptions.loadBundle()
        let model = bundle.model
        guard promptTokens + genTokens <= model.config.maxPositionEmbeddings else {
            throw CLIError("--prompt-tokens + --gen-tokens = \(promptTokens + genTokens) exceeds the context window \(model.config.maxPositionEmbeddings)")
        }
        var rng = SeededGenerator(seed: seed)
        let prompt = (0..<promptTokens).map { _ in Int.random(in: 0..<model.config.vocabSize, using: &rng) }
        var request = GenerationRequest(promptIds: prompt)
        request.maxTokens = genTokens
        request.sampling.temperature = 0
        let generator = Generator(model: model, threads: modelOptions.threadCount)
        let result = try generator.generate(request, contextSize: promptTokens + genTokens)
        let rss = Output.peakRSS()
        if json {
            try Output.json(.object([
                ("prefill_tokens_per_s", .double(result.prefillTokensPerSecond)),
                ("decode_tokens_per_s", .double(result.decodeTokensPerSecond)),
                ("peak_rss_bytes", .int(rss)), ("weights", .string(weights.rawValue)),
                ("dtype", .string(model.dtype.rawValue)), ("threads", .int(modelOptions.threadCount)),
                ("prompt_tokens", .int(promptTokens)), ("gen_tokens", .int(result.ids.count)),
            ]))
        } else {
            Output.out("""
                prefill: \(promptTokens) tokens, \(format(result.prefillTokensPerSecond)) tok/s
                decode:  \(result.ids.count) tokens, \(format(result.decodeTokensPerSecond)) tok/s
                peak RSS: \(format(Double(rss) / 1_048_576)) MiB  (weights \(model.dtype.rawValue), \(modelOptions.threadCount) threads)

                """)
        }
    }

    /// Per token the chat applies a text delta and a routing step, renders the 200×60 grid and
    /// finds the cells that changed (what the terminal is then sent): timed here over 500 tokens
    /// of a 50-message conversation with NekoMind's 16 MoE layers of 32 experts.
    /// A huge paste: a keystroke in the draft (insert, render, cursor) and a frame of the chat
    /// once it is sent, each timed (ms), at 200×60.
    func runPaste() throws {
        let info = BackendInfo(kind: "local", modelName: "bench", location: "bench", fingerprint: "bench",
                               contextSize: 32768, experts: 32, expertsPerToken: 4, moeLayers: Array(2..<18), reportsRouting: true)
        var state = ScreenState(backend: info)
        let line = "The quick brown fox jumps over the lazy dog, and then it pastes some more text. "
        let text = String(repeating: line, count: max(1, pasteBytes / line.utf8.count))
        state.input.insert(text)
        func time(_ n: Int, _ body: () -> Void) -> Double {
            let start = DispatchTime.now()
            for _ in 0..<n { body() }
            return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6 / Double(n)
        }
        let key = time(20) {
            state.input.insert("x")
            _ = ChatView.render(state, width: 200, height: 60)
            _ = ChatView.cursor(state, width: 200, height: 60)
        }
        var sent = ChatMessage(id: 1, role: .user, content: text)
        sent.time = "t"
        state.apply(.messageAdded(sent))
        state.apply(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "")))
        let first = time(1) { _ = ChatView.render(state, width: 200, height: 60) }
        let frame = time(20) {
            state.apply(.textDelta(messageID: 2, text: " word"))
            _ = ChatView.render(state, width: 200, height: 60)
        }
        let result: JSON = .object([("paste_bytes", .int(text.utf8.count)), ("ms_per_keystroke", .double(key)),
                                    ("ms_first_frame_after_send", .double(first)), ("ms_per_token_frame_after_send", .double(frame))])
        if json { try Output.json(result) } else {
            Output.out(String(format: "paste of %d bytes: %.2f ms per keystroke; once sent %.1f ms for the first frame, %.2f ms per token\n",
                              text.utf8.count, key, first, frame))
        }
    }

    func runUI() throws {
        let info = BackendInfo(kind: "local", modelName: "NekoMind1.5-Base", location: "bench", fingerprint: "bench",
                               contextSize: 32768, experts: 32, expertsPerToken: 4, moeLayers: Array(2..<18), reportsRouting: true)
        var state = ScreenState(backend: info)
        let paragraph = String(repeating: "Shall I compare thee to a summer's day? Thou art more lovely and more temperate. ", count: 5)
        for i in 0..<50 {
            var m = ChatMessage(id: i + 1, parent: i == 0 ? nil : i, role: i % 2 == 0 ? .user : .assistant, content: paragraph)
            m.finishReason = i % 2 == 0 ? nil : .eos
            state.apply(.messageAdded(m))
        }
        state.apply(.messageAdded(ChatMessage(id: 100, parent: 50, role: .assistant, content: "")))
        var rng = SeededGenerator(seed: seed)
        var previous = ChatView.render(state, width: 200, height: 60)
        var changed = 0
        let tokens = 500
        let start = DispatchTime.now()
        for _ in 0..<tokens {
            state.apply(.textDelta(messageID: 100, text: " word"))
            let experts = (0..<16).map { _ in (0..<4).map { _ in Int.random(in: 0..<32, using: &rng) } }
            state.apply(.routing(messageID: 100, step: RoutingStep(layers: Array(2..<18), experts: experts,
                                                                    weights: experts.map { $0.map { _ in 0.25 } })))
            let grid = ChatView.render(state, width: 200, height: 60)
            changed += zip(grid.cells, previous.cells).filter { $0 != $1 }.count
            previous = grid
        }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6 / Double(tokens)
        if json {
            try Output.json(.object([("ms_per_frame", .double(ms)), ("changed_cells_per_frame", .int(changed / tokens)),
                                     ("width", .int(200)), ("height", .int(60))]))
        } else {
            Output.out(String(format: "UI redraw at 200×60: %.3f ms per token, %d changed cells per frame\n", ms, changed / tokens))
        }
    }
}
