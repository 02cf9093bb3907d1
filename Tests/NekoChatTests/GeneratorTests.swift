import Foundation
@testable import NekoChat
import NekoModel
import Testing

enum EngineFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/engine")
    static func path(_ name: String) -> String { root.appendingPathComponent(name).path }
    static let all: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []).sorted()

    struct Expected: Decodable {
        var prompt_ids: [Int]
        var greedy_ids: [Int]
        var nll: [Double]
    }

    static func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: root.appendingPathComponent("\(name)/expected.json")))
    }
}

@Suite struct GeneratorTests {
    let name = "neko_mini_bf16"

    func setup() throws -> (Generator, EngineFixtures.Expected, GenerationRequest) {
        let bundle = try ModelBundle(directory: EngineFixtures.path(name))
        let expected = try EngineFixtures.expected(name)
        var request = GenerationRequest(promptIds: expected.prompt_ids)
        request.sampling.temperature = 0
        request.maxTokens = expected.greedy_ids.count
        request.recordRouting = true
        return (Generator(model: bundle.model, threads: 2), expected, request)
    }

    @Test func greedyGenerationMatchesTheReference() throws {
        let (generator, expected, request) = try setup()
        var streamed: [Int] = []
        let result = try generator.generate(request) { streamed.append($0) }
        #expect(result.ids == expected.greedy_ids)
        #expect(streamed == result.ids)
        #expect(result.finishReason == .length)
        // N prompt tokens + M generated − 1: the last token is never fed back.
        #expect(result.routing?.tokens == expected.prompt_ids.count + result.ids.count - 1)
        #expect(result.prefillTokensPerSecond > 0 && result.decodeTokensPerSecond > 0)
    }

    @Test func eosStopAndLengthEndGeneration() throws {
        var (generator, expected, request) = try setup()
        let g = expected.greedy_ids
        request.eosIds = [g[3]]
        var result = try generator.generate(request)
        let firstEos = g.firstIndex(of: g[3])!
        #expect(result.ids == Array(g[...firstEos]) && result.finishReason == .eos)
        request.eosIds = []
        request.stopIds = [g[2]]
        result = try generator.generate(request)
        #expect(result.ids.last == g[2] && result.finishReason == .stop)
        request.stopIds = []
        request.maxTokens = 2
        result = try generator.generate(request)
        #expect(result.ids == Array(g[..<2]) && result.finishReason == .length)
        request.maxTokens = 0
        result = try generator.generate(request)
        #expect(result.ids.isEmpty && result.finishReason == .length)
    }

    /// The decode loop with text: control tokens are masked out of sampling in chat mode and
    /// end generation in complete mode; they never reach the text.
    @Test func controlTokensAreMaskedOrEndGeneration() throws {
        let (generator, expected, request) = try setup()
        let g = expected.greedy_ids
        // The first greedy id that did not come before: make it a control token.
        let i = try #require(g.indices.first { $0 > 0 && !g[..<$0].contains(g[$0]) })
        var rules = StopRules(maxTokens: g.count)
        rules.controlTokens = [g[i]]
        var sequence = DecodeSequence(prompt: request.promptIds, sampling: request.sampling, rules: rules, tokenizer: nil)
        try generator.decode(request.promptIds, cache: try generator.model.makeCache(), sequence: &sequence)
        #expect(sequence.generated == Array(g[...i]) && sequence.finishReason == .stop)
        rules.maskControlTokens = true
        sequence = DecodeSequence(prompt: request.promptIds, sampling: request.sampling, rules: rules, tokenizer: nil)
        try generator.decode(request.promptIds, cache: try generator.model.makeCache(), sequence: &sequence)
        #expect(sequence.generated.count == g.count && !sequence.generated.contains(g[i]))
        #expect(Array(sequence.generated[..<i]) == Array(g[..<i]) && sequence.finishReason == .length)
    }

    @Test func fullContextEndsGeneration() throws {
        let (generator, expected, request) = try setup()
        let result = try generator.generate(request, contextSize: expected.prompt_ids.count + 3)
        #expect(result.finishReason == .context)
        #expect(result.ids == Array(expected.greedy_ids[..<4]))
        #expect(throws: ModelError.self) {
            try generator.generate(request, contextSize: expected.prompt_ids.count - 1)
        }
    }

    @Test func cancellationStopsBetweenTokensAndBeforePrefill() throws {
        let (generator, _, request) = try setup()
        let flag = CancellationFlag()
        var result = try generator.generate(request, cancel: flag) { _ in
            if !flag.isCancelled { flag.cancel() }
        }
        #expect(result.finishReason == .cancelled && result.ids.count == 1)
        result = try generator.generate(request, cancel: flag)
        #expect(result.finishReason == .cancelled && result.ids.isEmpty)
    }

    @Test(arguments: EngineFixtures.all)
    func scoreMatchesTheReferenceNLL(name: String) throws {
        let bundle = try ModelBundle(directory: EngineFixtures.path(name))
        let expected = try EngineFixtures.expected(name)
        let generator = Generator(model: bundle.model, threads: 2)
        for chunk in [512, 3] {
            generator.prefillChunk = chunk
            let nll = try generator.score(expected.prompt_ids)
            #expect(nll.count == expected.nll.count)
            let d = zip(nll, expected.nll).map { abs($0 - $1) }.max() ?? 0
            #expect(d < 1e-3, "\(name) chunk \(chunk): max |ΔNLL| \(d)")
        }
        #expect(throws: ModelError.self) { try generator.score([1]) }
    }

    @Test func generationConfigOverridesDefaultsAndAddsEosIds() throws {
        let bundle = try ModelBundle(directory: EngineFixtures.path(name))
        let config = try ModelConfig.load(path: EngineFixtures.path(name) + "/config.json")
        #expect(bundle.eosTokenIds == Set(config.eosTokenIds + bundle.generationConfig.eosTokenIds))
        var g = GenerationConfig()
        g.temperature = 0.3
        g.topK = 7
        var p = g.apply(to: SamplingParameters())
        #expect(p.temperature == 0.3 && p.topK == 7 && p.topP == 0.95)
        g.doSample = false
        p = g.apply(to: SamplingParameters())
        #expect(p.temperature == 0)
    }
}

/// The one decode loop: sessions fed back together in one batched pass generate exactly what
/// each generates alone, whatever the prefill chunk; a full context ends one with `context`.
@Suite struct DecodeSessionTests {
    func session(_ model: LanguageModel, _ prompt: [Int], capacity: Int = 64, routing: Bool = true) throws -> DecodeSession {
        var p = SamplingParameters()
        p.temperature = 0
        return try DecodeSession(model: model, prompt: prompt, cache: try model.makeCache(capacity: capacity),
                                 sequence: DecodeSequence(prompt: prompt, sampling: p, rules: StopRules(maxTokens: 8), tokenizer: nil),
                                 routing: routing ? model.makeRoutingRecord() : nil)
    }

    @Test func sessionsFedTogetherGenerateWhatEachGeneratesAlone() throws {
        let model = try LanguageModel.load(directory: EngineFixtures.path("neko_mini_bf16"))
        let context = ForwardContext(threads: 2)
        let prompts = [[5, 9, 13, 40, 2, 7, 71], [3, 3, 8], [100, 1, 50, 20, 11, 90, 4, 60, 5, 30, 12]]
        var alone: [[Int]] = [], aloneRouting: [[Int]] = []
        for (i, prompt) in prompts.enumerated() {
            let s = try session(model, prompt)
            while !s.isPrefilled { try s.prefill(chunk: i + 1, context: context) }   // chunks of 1, 2 and 3
            while true {
                _ = s.sample()
                if s.isFinished { break }
                try DecodeSession.feed([s], context: context)
            }
            alone.append(s.sequence.generated)
            aloneRouting.append((0..<s.routing!.tokens).flatMap { s.routing!.choice(token: $0, slot: 0).experts })
        }
        let together = try prompts.map { try session(model, $0) }
        for s in together { while !s.isPrefilled { try s.prefill(chunk: 256, context: context) } }
        while together.contains(where: { !$0.isFinished }) {
            for s in together where !s.isFinished { _ = s.sample() }
            try DecodeSession.feed(together, context: context)
        }
        #expect(together.map(\.sequence.generated) == alone)
        #expect(together.map { s in (0..<s.routing!.tokens).flatMap { s.routing!.choice(token: $0, slot: 0).experts } } == aloneRouting)
        #expect(together.allSatisfy { $0.finishReason == .length && $0.fed.count == $0.prompt.count + 7 })
    }

    @Test func aFullContextEndsTheSessionWithContext() throws {
        let model = try LanguageModel.load(directory: EngineFixtures.path("neko_mini_bf16"))
        let context = ForwardContext(threads: 2)
        let s = try session(model, [5, 9, 13], capacity: 5, routing: false)
        try s.prefill(chunk: 256, context: context)
        var tokens = 0
        while !s.isFinished {
            _ = s.sample()
            tokens += 1
            try DecodeSession.feed([s], context: context)
        }
        #expect(s.finishReason == .context && tokens == 3 && s.cache.length == 5)
        #expect(throws: ModelError.self) { try self.session(model, [1, 2, 3, 4, 5, 6], capacity: 5) }
        #expect(throws: ModelError.self) { try self.session(model, [], capacity: 5) }
    }
}
