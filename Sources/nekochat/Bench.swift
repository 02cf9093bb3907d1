import ArgumentParser
import Dispatch
import Foundation
import NekoChat
import NekoModel
import NekoTUI

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time prefill of N tokens and decode of M tokens (random ids, greedy, no EOS stop), "
            + "against the measured read bandwidth and FMA peak of this machine.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: [.customLong("prompt-tokens"), .customLong("depth")],
            help: "Prompt tokens to prefill; decode then runs at this depth (--depth D: the same).") var promptTokens = 512
    @Option(name: .customLong("gen-tokens"), help: "Tokens to decode.") var genTokens = 128
    @Option(help: "Prompt tokens a prefill pass (the chat's, generate's and serve's default).") var chunk = Generator.defaultPrefillChunk
    @Option(help: "Seed for the random prompt.") var seed: UInt64 = 1
    @Option(help: "Also time batched decode of this many sequences at once, e.g. 1,2,4.") var batch: String?
    @Option(name: .customLong("batch-prompt-tokens"), help: "Prompt tokens of each batched sequence.")
    var batchPromptTokens = 64
    @Flag(help: "Also compare the logits of the prompt with BF16's (top-1 agreement, KL divergence).")
    var quality = false
    @Flag(name: .customLong("routing-cost"), help: "Also time decode with and without recording routing, interleaved.")
    var routingCost = false

    @Flag(name: .customLong("no-warmup"), help: "Skip the untimed prefill that faults the weights in first.")
    var noWarmup = false
    @Flag(help: "Also print where prefill and decode spend their time, phase by phase.") var profile = false
    @Flag(help: "Print one JSON document.") var json = false
    @OptionGroup var steering: InterventionOptions
    @Flag(help: "Instead: time redrawing the chat screen at 200×60 after each token (no model needed).") var ui = false
    @Option(name: .customLong("paste-bytes"), help: "With --ui: also time keystrokes in a draft of this many pasted bytes, and its screen once sent.")
    var pasteBytes = 0

    func validate() throws {
        if !(1...1_000_000).contains(promptTokens) { throw ValidationError("--prompt-tokens must be from 1 to 1000000") }
        if !(0...1_000_000).contains(genTokens) { throw ValidationError("--gen-tokens must be from 0 to 1000000") }
        if !(1...1_000_000).contains(batchPromptTokens) { throw ValidationError("--batch-prompt-tokens must be from 1 to 1000000") }
        if !(1...1_000_000).contains(chunk) { throw ValidationError("--chunk must be from 1 to 1000000") }
        if let batch { _ = try batchSizes(batch) }
    }

    func batchSizes(_ text: String) throws -> [Int] {
        let sizes = try parseIds(text, flag: "--batch")
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= 64 }) else { throw ValidationError("--batch: sizes must be 1…64") }
        return sizes
    }

    func run() throws {
        if ui {
            try runUI()
            if pasteBytes > 0 { try runPaste() }
            return
        }
        let threads = modelOptions.threadCount
        // Measured before the model is loaded, with a pool of the run's threads: 256 MiB ≫ L3.
        // The host's memory bandwidth moves with its other tenants: 7 passes now and 7 after
        // decode, their median is the limit (min and max reported too).
        var passes = Machine.readBandwidthPasses(threads: threads)
        let peak = Machine.fmaPeak(threads: threads)

        let loadStart = DispatchTime.now()
        let bundle = try modelOptions.loadBundle()
        let loadSeconds = seconds(since: loadStart)
        let model = bundle.model
        // Past the trained context is allowed, as in the chat (RoPE goes on): a depth of exactly
        // max_position_embeddings still decodes its tokens after it.
        if let warning = model.contextWarning(promptTokens + genTokens) { Output.err("note: \(warning)\n") }
        let experts = try steering.interventions(for: model)
        var rng = SeededGenerator(seed: seed)
        let prompt = (0..<promptTokens).map { _ in Int.random(in: 0..<model.config.vocabSize, using: &rng) }
        let context = ForwardContext(threads: threads)
        let kv = modelOptions.kvPrecision(default: .float16)
        if !noWarmup {
            // Enough tokens that every expert's weights are faulted in (not the whole of a long prompt).
            let warm = Array(prompt.prefix(512))
            _ = try model.forward(warm, cache: try model.makeCache(capacity: warm.count, precision: kv), logits: .last,
                                  interventions: experts, context: context)
        }

        // The chat's decode loop (a DecodeSession): prefill in --chunk tokens a pass, then greedy
        // tokens with no stop but the count, each fed back.
        let cache = try model.makeCache(capacity: promptTokens + genTokens + 1, precision: kv)
        var sampling = SamplingParameters()
        sampling.temperature = 0
        let session = try DecodeSession(model: model, prompt: prompt, cache: cache,
                                        sequence: DecodeSequence(prompt: prompt, sampling: sampling,
                                                                 rules: StopRules(maxTokens: genTokens + 1), tokenizer: nil),
                                        interventions: experts)
        let prefillProfile = PhaseProfile(), decodeProfile = PhaseProfile()
        if profile { context.profile = prefillProfile }
        let prefillStart = DispatchTime.now()
        while !session.isPrefilled { try session.prefill(chunk: chunk, context: context) }
        let prefillSeconds = seconds(since: prefillStart)
        if profile { context.profile = decodeProfile }
        let decodeStart = DispatchTime.now()
        for _ in 0..<genTokens {
            _ = session.sample()
            try DecodeSession.feed([session], context: context)
        }
        let decodeSeconds = seconds(since: decodeStart)
        context.profile = nil
        let rss = Output.peakRSS()
        // And the memory the weights live in, read as fast as it goes (the decode limit).
        var weightPasses = model.weightReadBandwidth(threads: threads, passes: 7)
        passes += Machine.readBandwidthPasses(threads: threads)
        passes.sort()
        weightPasses.sort()
        let freshBandwidth = passes[passes.count / 2]
        let bandwidth = weightPasses.isEmpty ? freshBandwidth : weightPasses[weightPasses.count / 2]

        let prefillRate = Double(promptTokens) / prefillSeconds
        let decodeRate = genTokens > 0 ? Double(genTokens) / decodeSeconds : 0
        let activeBytes = model.activeWeightBytes(experts)
        // What decode reads per token: the active weights and the KV cache at its mean depth.
        let kvBytes = genTokens > 0 ? (0..<genTokens).reduce(0) { $0 + model.kvBytesRead(position: promptTokens + $1, precision: kv) } / genTokens : 0
        let limit = bandwidth / Double(activeBytes + kvBytes)
        let freshLimit = freshBandwidth / Double(activeBytes + kvBytes)
        let flops = model.forwardFLOPs(tokens: promptTokens)
        let gflops = flops / prefillSeconds / 1e9
        let batched = try batch.map { try timeBatches(try batchSizes($0), model: model, context: context) } ?? []
        let compared = quality ? try compare(model: model, prompt: prompt, threads: threads) : nil
        let recording = routingCost ? try timeRouting(model: model, prompt: prompt, context: context) : nil
        let cpu = Self.cpuName()
        let simd = Machine.kernels

        if json {
            var fields: [(String, JSON)] = [
                ("prefill_tokens_per_s", .double(prefillRate)),
                ("decode_tokens_per_s", .double(decodeRate)),
                ("peak_rss_bytes", .int(rss)), ("weights", .string(modelOptions.weights.rawValue)),
                ("dtype", .string(model.dtype.rawValue)), ("threads", .int(threads)),
                ("prompt_tokens", .int(promptTokens)), ("gen_tokens", .int(genTokens)), ("prefill_chunk", .int(chunk)),
                ("cpu", .string(cpu)), ("simd", .string(simd)),
                ("read_bandwidth_bytes_per_s", .double(bandwidth)),
                ("read_bandwidth_source", .string("weights")),
                ("fresh_read_bandwidth_bytes_per_s", .double(freshBandwidth)),
                ("fresh_read_bandwidth_min_bytes_per_s", .double(passes.first!)),
                ("fresh_read_bandwidth_max_bytes_per_s", .double(passes.last!)),
                ("decode_fraction_of_fresh_limit", .double(decodeRate / freshLimit)),
                ("active_weight_bytes_per_token", .int(activeBytes)),
                ("kv_cache", .string(kv.rawValue)),
                ("kv_bytes_per_token", .int(kvBytes)),
                ("decode_limit_tokens_per_s", .double(limit)),
                ("decode_fraction_of_limit", .double(decodeRate / limit)),
                ("prefill_gflops", .double(gflops)),
                ("fma_peak_gflops", .double(peak / 1e9)),
                ("prefill_fraction_of_peak", .double(gflops * 1e9 / peak)),
                ("load_seconds", .double(loadSeconds)),
                ("weights_cache", model.weightCache?.path.map { .string($0) } ?? .null),
                ("weights_cache_reused", .bool(model.weightCache?.reused ?? false)),
                ("weights_cache_mapped", .bool(model.weightCache?.mapped ?? false)),
            ]
            if !experts.isEmpty { fields.append(("experts", experts.json)) }
            if !batched.isEmpty {
                fields.append(("batched_decode", .array(batched.map {
                    .object([("sequences", .int($0.sequences)), ("tokens_per_s", .double($0.rate))])
                })))
            }
            if let recording {
                fields.append(("routing_record_overhead", .double(recording.overhead)))
                fields.append(("routing_record_time_share", .double(recording.share)))
            }
            if let compared {
                fields.append(("top1_agreement", .double(compared.top1)))
                fields.append(("kl_divergence_mean", .double(compared.kl)))
                fields.append(("kl_divergence_max", .double(compared.klMax)))
            }
            try Output.json(.object(fields))
            return
        }
        // On AMX a BF16 prefill runs on tiles, not on the FMA units the peak is measured on.
        let onTiles = simd.hasSuffix("amx") && modelOptions.weights == .bf16 && model.dtype == .bf16
        let peakNote = onTiles
            ? "AVX-512 vectors, all threads; this prefill ran on AMX tiles, whose peak is higher"
            : "\(simd.hasSuffix("amx") ? "AVX-512" : simd) vectors, all threads"
        var text = """
            cpu: \(cpu), kernels \(simd), \(threads) threads
            read bandwidth (\(threads) threads): the weights' own memory \(format(bandwidth / 1e9)) GB/s (median of \(weightPasses.count) passes after decode); fresh 256 MiB \(format(freshBandwidth / 1e9)) GB/s (median of \(passes.count) passes before and after, \(format(passes.first! / 1e9))–\(format(passes.last! / 1e9)))
            weights \(modelOptions.weights.rawValue) (stored \(model.dtype.rawValue)): \(format(Double(activeBytes) / 1e6)) MB read per token, KV cache \(kv.rawValue) \(format(Double(kvBytes) / 1e6)) MB at depth \(promptTokens) → limit \(format(limit)) tok/s (fresh-memory limit \(format(freshLimit)))
            load: \(String(format: "%.2f", loadSeconds)) s\(cacheNote(model))
            prefill: \(promptTokens) tokens in passes of \(chunk), \(format(prefillRate)) tok/s, \(format(gflops)) GFLOP/s = \(percent(gflops * 1e9 / peak)) of the FMA peak \(format(peak / 1e9)) GFLOP/s
                     (peak measured: 12 independent FMA chains per thread, \(peakNote))
            decode:  \(genTokens) tokens, \(format(decodeRate)) tok/s = \(percent(decodeRate / limit)) of the bandwidth limit (\(percent(decodeRate / freshLimit)) of the fresh-memory one)
            peak RSS: \(format(Double(rss) / 1_048_576)) MiB

            """
        if profile {
            text += profileTable("prefill", prefillProfile, seconds: prefillSeconds, steps: 1)
            text += profileTable("decode", decodeProfile, seconds: decodeSeconds, steps: max(1, genTokens))
        }
        for b in batched {
            text += "batched decode: \(b.sequences) sequences, \(format(b.rate)) tok/s in all\n"
        }
        if let recording {
            text += String(format: "recording routing: %.3f%% of decode time inside the recording; %+.2f%% decode time with it (median of 30 interleaved pairs)\n",
                           100 * recording.share, 100 * recording.overhead)
        }
        if let compared {
            text += "vs bf16 over the prompt: top-1 agreement \(percent(compared.top1)), KL divergence mean \(String(format: "%.5f", compared.kl)), max \(String(format: "%.4f", compared.klMax))\n"
        }
        Output.out(text)
    }

    func cacheNote(_ model: LanguageModel) -> String {
        guard let cache = model.weightCache else { return "" }
        guard let path = cache.path else { return " (quantised in memory, not cached)" }
        if !cache.reused { return " (quantised and cached in \(path))" }
        return " (weights cache \(path)\(cache.mapped ? ", mapped in place: not all in the page cache, or the copy was slow" : ", read into huge pages"))"
    }

    /// Phase by phase: time per step, share of the total, and weight bytes streamed per second.
    func profileTable(_ title: String, _ p: PhaseProfile, seconds: Double, steps: Int) -> String {
        var text = "\(title) profile (per step; \(steps) steps):\n"
        var accounted = 0.0
        for (name, e) in p.entries.sorted(by: { $0.value.seconds > $1.value.seconds }) {
            accounted += e.seconds
            let rate = e.bytes > 0 ? String(format: ", %.1f GB/s", Double(e.bytes) / e.seconds / 1e9) : ""
            text += String(format: "  %-14@ %8.3f ms %6.1f%%  %5d calls%@\n", name as NSString,
                           e.seconds / Double(steps) * 1e3, 100 * e.seconds / seconds, e.calls / steps, rate as NSString)
        }
        text += String(format: "  %-14@ %8.3f ms %6.1f%%\n", "rest" as NSString, (seconds - accounted) / Double(steps) * 1e3,
                       100 * (seconds - accounted) / seconds)
        return text
    }

    func percent(_ x: Double) -> String { String(format: "%.1f%%", 100 * x) }

    func argmax(_ logits: [Float]) -> Int { Sampler.argmax(logits) }

    /// Aggregate decode rate of N sequences decoded together (`decode(tokens:caches:routing:)`).
    func timeBatches(_ sizes: [Int], model: LanguageModel, context: ForwardContext) throws -> [(sequences: Int, rate: Double)] {
        var results: [(Int, Double)] = []
        for n in sizes {
            var rng = SeededGenerator(seed: seed &+ UInt64(n))
            var caches: [KVCache] = []
            var next: [Int] = []
            for _ in 0..<n {
                let cache = try model.makeCache(capacity: batchPromptTokens + genTokens + 1, precision: modelOptions.kvPrecision(default: .float16))
                let p = (0..<batchPromptTokens).map { _ in Int.random(in: 0..<model.config.vocabSize, using: &rng) }
                next.append(argmax(try model.forward(p, cache: cache, logits: .last, context: context)))
                caches.append(cache)
            }
            let steps = max(1, genTokens)
            let start = DispatchTime.now()
            for _ in 0..<steps {
                next = try model.decode(tokens: next, caches: caches, routing: [], context: context).map(argmax)
            }
            results.append((n, Double(n * steps) / seconds(since: start)))
        }
        return results
    }

    /// Decode time with a routing record over decode time without, minus 1: the median over
    /// 30 back-to-back pairs of 8-token decodes (with, without) from the same cached prompt.
    func timeRouting(model: LanguageModel, prompt: [Int], context: ForwardContext) throws -> (overhead: Double, share: Double) {
        let cache = try model.makeCache(capacity: prompt.count + 9, precision: modelOptions.kvPrecision(default: .float16))
        let first = argmax(try model.forward(prompt, cache: cache, logits: .last, context: context))
        let record = model.makeRoutingRecord()
        func run(_ routing: RoutingRecord?) throws -> Double {
            let start = DispatchTime.now()
            var token = first
            for _ in 0..<8 {
                token = argmax(try model.forward([token], cache: cache, logits: .last, routing: routing, context: context))
            }
            let t = seconds(since: start)
            cache.truncate(to: prompt.count)
            record.truncate(to: 0)
            return t
        }
        // The direct measure: time inside the recording itself, over the decode time.
        let profile = PhaseProfile()
        context.profile = profile
        let recorded = try run(record)
        context.profile = nil
        let share = (profile.entries["record_routing"]?.seconds ?? 0) / recorded
        var ratios: [Double] = []
        for pair in 0..<30 {
            // Alternate which goes first, so a drift in the machine's speed cancels out.
            let (a, b) = pair % 2 == 0 ? (try run(record), try run(nil)) : (try run(nil), try run(record))
            ratios.append(pair % 2 == 0 ? a / b : b / a)
        }
        return (ratios.sorted()[ratios.count / 2] - 1, share)
    }

    /// Top-1 agreement and KL(p_bf16 ‖ p_this) over every prompt position: the reference is the
    /// weights as stored with a float32 KV cache, so both the weights' format and the cache's
    /// precision are measured.
    func compare(model: LanguageModel, prompt: [Int], threads: Int) throws -> (top1: Double, kl: Double, klMax: Double) {
        let reference = try LanguageModel.load(directory: model.directory)
        let context = ForwardContext(threads: threads)
        let a = try reference.forward(prompt, cache: try reference.makeCache(capacity: prompt.count), logits: .all, context: context)
        let b = try model.forward(prompt, cache: try model.makeCache(capacity: prompt.count, precision: modelOptions.kvPrecision(default: .float16)),
                                  logits: .all, context: context)
        let vocab = model.config.vocabSize
        var agree = 0, klSum = 0.0, klMax = 0.0
        for t in 0..<prompt.count {
            let ra = a[t * vocab..<(t + 1) * vocab], rb = b[t * vocab..<(t + 1) * vocab]
            if argmax(Array(ra)) == argmax(Array(rb)) { agree += 1 }
            let la = logSoftmax(ra), lb = logSoftmax(rb)
            var kl = 0.0
            for i in 0..<vocab where la[i] > -80 { kl += exp(la[i]) * (la[i] - lb[i]) }
            klSum += kl
            klMax = max(klMax, kl)
        }
        return (Double(agree) / Double(prompt.count), klSum / Double(prompt.count), klMax)
    }

    func logSoftmax(_ x: ArraySlice<Float>) -> [Double] {
        let m = Double(x.max() ?? 0)
        let z = x.reduce(0.0) { $0 + exp(Double($1) - m) }
        let lz = m + log(z)
        return x.map { Double($0) - lz }
    }

    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        return "unknown CPU"
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
