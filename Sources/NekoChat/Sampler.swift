import Foundation

/// Sampling settings with llama.cpp's defaults (Sources/nekochat/README.md).
public struct SamplingParameters: Sendable, Equatable {
    /// 0 (or less) is greedy: the highest logit after penalties.
    public var temperature: Float = 0.8
    /// 0 (or less) disables top-k.
    public var topK: Int = 40
    /// 1 disables top-p.
    public var topP: Float = 0.95
    /// 0 disables min-p.
    public var minP: Float = 0.05
    /// 1 disables the repetition penalty.
    public var repeatPenalty: Float = 1.0
    /// How many recent tokens the repetition penalty looks at.
    public var repeatLastN: Int = 64
    /// nil: a random seed.
    public var seed: UInt64?

    public init() {}
}

/// xoshiro256** seeded through SplitMix64: small, fast and reproducible across platforms.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }
}

/// Picks the next token from logits with llama.cpp's sampler chain, in its order:
/// repetition penalty → top-k → top-p → min-p → temperature → draw.
/// (Temperature comes last, so top-p and min-p see the untempered distribution.)
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    /// The seed in use (drawn at random when the parameters give none).
    public let seed: UInt64
    private var rng: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        seed = parameters.seed ?? UInt64.random(in: 0...SettingSpec.maxSeed)   // a seed --seed and transcripts take back
        rng = SeededGenerator(seed: seed)
    }

    /// A candidate token and its (possibly penalised) logit.
    public struct Candidate: Equatable, Sendable {
        public var id: Int
        public var logit: Float
    }

    /// The next token given `logits` over the vocabulary and the tokens so far.
    public mutating func sample(logits: [Float], history: [Int]) -> Int {
        var logits = logits
        applyRepetitionPenalty(&logits, history: history, penalty: parameters.repeatPenalty,
                               lastN: parameters.repeatLastN)
        if parameters.temperature <= 0 { return Self.argmax(logits) }
        var candidates = Self.topK(logits, k: parameters.topK)
        Self.topP(&candidates, p: parameters.topP)
        Self.minP(&candidates, p: parameters.minP)
        return draw(candidates, temperature: parameters.temperature)
    }

    /// llama.cpp's penalty: each distinct recent token's logit is divided by `penalty`
    /// when positive and multiplied by it when negative.
    public func applyRepetitionPenalty(_ logits: inout [Float], history: [Int], penalty: Float, lastN: Int) {
        guard penalty != 1, lastN != 0 else { return }
        let window = lastN < 0 ? history[...] : history.suffix(lastN)
        for id in Set(window) where id >= 0 && id < logits.count {
            logits[id] = logits[id] > 0 ? logits[id] / penalty : logits[id] * penalty
        }
    }

    /// Highest logit; the lower id wins ties.
    public static func argmax(_ logits: [Float]) -> Int { argmax(logits[...]) }

    /// Highest logit of a row (its index from 0); the lower id wins ties.
    public static func argmax(_ logits: ArraySlice<Float>) -> Int {
        var best = logits.startIndex
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return best - logits.startIndex
    }

    /// The `k` highest logits, sorted descending (ties: lower id first); all of them when k ≤ 0.
    public static func topK(_ logits: [Float], k: Int) -> [Candidate] {
        let precedes = { (a: Candidate, b: Candidate) in a.logit > b.logit || (a.logit == b.logit && a.id < b.id) }
        guard k > 0, k < logits.count else {
            return logits.enumerated().map { Candidate(id: $0.offset, logit: $0.element) }.sorted(by: precedes)
        }
        // A sorted window of the best k so far: O(n) for most logits, which fall below its end.
        var best: [Candidate] = []
        best.reserveCapacity(k + 1)
        for (id, logit) in logits.enumerated() {
            let c = Candidate(id: id, logit: logit)
            if best.count == k, !precedes(c, best[k - 1]) { continue }
            var lo = 0, hi = best.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if precedes(best[mid], c) { lo = mid + 1 } else { hi = mid }
            }
            best.insert(c, at: lo)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    /// Probabilities of sorted candidates (softmax of their logits, float64 sums).
    static func probabilities(_ candidates: [Candidate], temperature: Float = 1) -> [Double] {
        guard let top = candidates.first?.logit else { return [] }
        let exps = candidates.map { exp(Double(($0.logit - top) / temperature)) }
        let sum = exps.reduce(0, +)
        return exps.map { $0 / sum }
    }

    /// Keeps the smallest prefix of the (sorted) candidates whose probability reaches `p`.
    public static func topP(_ candidates: inout [Candidate], p: Float) {
        guard p < 1, candidates.count > 1 else { return }
        var cumulative = 0.0
        for (i, prob) in probabilities(candidates).enumerated() {
            cumulative += prob
            if cumulative >= Double(p) {
                candidates.removeSubrange((i + 1)...)
                return
            }
        }
    }

    /// Keeps the candidates whose probability is at least `p` times the top one's.
    public static func minP(_ candidates: inout [Candidate], p: Float) {
        guard p > 0, let top = candidates.first?.logit else { return }
        let threshold = top + log(p)
        let keep = candidates.filter { $0.logit >= threshold }
        candidates = keep.isEmpty ? [candidates[0]] : keep
    }

    mutating func draw(_ candidates: [Candidate], temperature: Float) -> Int {
        let probs = Self.probabilities(candidates, temperature: temperature)
        let u = Double(rng.next() >> 11) * 0x1.0p-53
        var cumulative = 0.0
        for (c, prob) in zip(candidates, probs) {
            cumulative += prob
            if u < cumulative { return c.id }
        }
        return candidates[candidates.count - 1].id
    }
}
