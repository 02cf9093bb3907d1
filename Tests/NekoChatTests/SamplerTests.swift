import Foundation
@testable import NekoChat
import Testing

@Suite struct SamplerTests {
    func parameters(temperature: Float = 1, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                    seed: UInt64 = 1) -> SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature
        p.topK = topK
        p.topP = topP
        p.minP = minP
        p.seed = seed
        return p
    }

    @Test func llamaCppDefaults() {
        let p = SamplingParameters()
        #expect(p.temperature == 0.8 && p.topK == 40 && p.topP == 0.95 && p.minP == 0.05)
        #expect(p.repeatPenalty == 1 && p.repeatLastN == 64 && p.seed == nil)
    }

    @Test func greedyTakesTheHighestLogitAndTheLowerIdOnTies() {
        var sampler = Sampler(parameters(temperature: 0))
        #expect(sampler.sample(logits: [0.1, 3, -1, 3], history: []) == 1)
        #expect(Sampler.argmax([-5, -5]) == 0)
    }

    @Test func repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        var logits: [Float] = [2, -2, 1, 4]
        let sampler = Sampler(parameters())
        // Token 0 appears twice but is penalised once; token 3 is outside the window of 3.
        sampler.applyRepetitionPenalty(&logits, history: [3, 0, 1, 0], penalty: 2, lastN: 3)
        #expect(logits == [1, -4, 1, 4])
        var greedy = Sampler({ var p = parameters(temperature: 0); p.repeatPenalty = 3; return p }())
        #expect(greedy.sample(logits: [2, 1.5], history: [0]) == 1)
    }

    @Test func topKKeepsTheKBestSorted() {
        let logits: [Float] = [0.5, 2, 2, -1, 7, 0]
        #expect(Sampler.topK(logits, k: 3).map(\.id) == [4, 1, 2])
        #expect(Sampler.topK(logits, k: 0).map(\.id) == [4, 1, 2, 0, 5, 3])
        #expect(Sampler.topK(logits, k: 10).count == 6)
    }

    @Test func topPKeepsTheSmallestPrefixReachingP() {
        let logits = [0.5, 0.3, 0.2].map { Float(log($0)) }
        for (p, kept) in [(Float(0.7), 2), (0.5, 1), (0.81, 3), (1.0, 3)] {
            var c = Sampler.topK(logits, k: 0)
            Sampler.topP(&c, p: p)
            #expect(c.count == kept, "p = \(p)")
        }
    }

    @Test func minPKeepsTokensWithinAFactorOfTheBest() {
        let logits = [0.5, 0.3, 0.2].map { Float(log($0)) }
        var c = Sampler.topK(logits, k: 0)
        Sampler.minP(&c, p: 0.5)   // keeps prob ≥ 0.25
        #expect(c.map(\.id) == [0, 1])
    }

    @Test func drawsFollowTheDistribution() {
        var sampler = Sampler(parameters(seed: 1234))
        let logits = [0.5, 0.3, 0.2].map { Float(log($0)) }
        var counts = [0, 0, 0]
        let n = 20_000
        for _ in 0..<n { counts[sampler.sample(logits: logits, history: [])] += 1 }
        let freq = counts.map { Double($0) / Double(n) }
        #expect(abs(freq[0] - 0.5) < 0.015 && abs(freq[1] - 0.3) < 0.015 && abs(freq[2] - 0.2) < 0.015, "\(freq)")
    }

    @Test func temperatureComesAfterMinP() {
        // Untempered, token 2 has e^-10 of the top probability: min-p 0.05 removes it.
        // Were temperature 100 applied first, it would survive and be drawn often.
        var sampler = Sampler(parameters(temperature: 100, minP: 0.05, seed: 9))
        var seen = Set<Int>()
        for _ in 0..<2000 { seen.insert(sampler.sample(logits: [0, -1, -10], history: [])) }
        #expect(seen == [0, 1])
    }

    @Test func seedsReproduce() {
        let logits: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        func run(_ seed: UInt64) -> [Int] {
            var s = Sampler(parameters(temperature: 1.5, seed: seed))
            return (0..<40).map { _ in s.sample(logits: logits, history: []) }
        }
        #expect(run(5) == run(5))
        #expect(run(5) != run(6))
        #expect(Sampler(parameters(seed: 77)).seed == 77)
    }
}
