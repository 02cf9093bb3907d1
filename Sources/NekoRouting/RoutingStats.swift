/// The figures of one MoE layer over the tokens of a scope (Sources/NekoRouting/README.md's per-layer table).
///
/// A figure whose denominator is zero is nil (JSON null): with no token (N = 0) `load` and
/// everything derived from it and the means; with no consecutive pair (N ≤ 1, or every sequence
/// one token long) the repeat rates; with no token id occurring `minCount` times
/// `specialisation`; without a gate `sharedGateMean`; without recorded entropies
/// `routerEntropyMean`. Counts are never nil.
public struct LayerFigures: Sendable, Equatable {
    /// The MoE layer's index in the model.
    public var layer: Int
    /// N: tokens in the scope.
    public var tokens: Int
    /// Consecutive pairs (t − 1, t) within one sequence.
    public var pairs: Int
    /// Tokens that chose each expert (E values; they sum to N·k).
    public var loadCounts: [Int]
    /// load[e] = loadCounts[e] / (N·k); sums to 1.
    public var load: [Double]?
    /// −Σ load·log2 load (0·log 0 = 0); log2 E when perfectly even.
    public var entropyBits: Double?
    /// (max load − 1/E)·E (DeepSeek's MaxVio).
    public var maxViolation: Double?
    /// Jain's index 1 / (E·Σ load²).
    public var jain: Double?
    /// Share of the pairs whose top-1 experts are equal.
    public var repeatTop1: Double?
    /// Share of the pairs whose chosen sets share at least one expert.
    public var repeatTopK: Double?
    /// E×E: [i][j] (i ≠ j) tokens that chose both i and j; [i][i] tokens that chose i.
    public var coactivation: [[Int]]
    /// Mean over the qualifying token ids of the largest top-1 share one expert got.
    public var specialisation: Double?
    /// Token ids occurring at least `minCount` times (those `specialisation` averages over).
    public var specialisedIDs: Int
    /// Mean shared gate over the tokens.
    public var sharedGateMean: Double?
    /// Mean router entropy (bits) over the tokens.
    public var routerEntropyMean: Double?

    public init(layer: Int, tokens: Int, pairs: Int, loadCounts: [Int], load: [Double]?, entropyBits: Double?,
                maxViolation: Double?, jain: Double?, repeatTop1: Double?, repeatTopK: Double?,
                coactivation: [[Int]], specialisation: Double?, specialisedIDs: Int,
                sharedGateMean: Double?, routerEntropyMean: Double?) {
        self.layer = layer
        self.tokens = tokens
        self.pairs = pairs
        self.loadCounts = loadCounts
        self.load = load
        self.entropyBits = entropyBits
        self.maxViolation = maxViolation
        self.jain = jain
        self.repeatTop1 = repeatTop1
        self.repeatTopK = repeatTopK
        self.coactivation = coactivation
        self.specialisation = specialisation
        self.specialisedIDs = specialisedIDs
        self.sharedGateMean = sharedGateMean
        self.routerEntropyMean = routerEntropyMean
    }
}

/// OLMoE's cross-layer co-routing between consecutive MoE layers `from` → `to`.
public struct CrossLayerFlow: Sendable, Equatable {
    public var from: Int
    public var to: Int
    /// E×E: [i][j] = tokens whose top-1 is i at `from` and j at `to`.
    public var counts: [[Int]]

    public init(from: Int, to: Int, counts: [[Int]]) {
        self.from = from
        self.to = to
        self.counts = counts
    }
}

/// Adds the tokens of one trace one at a time (or a range) and yields Sources/NekoRouting/README.md's per-layer
/// figures at any moment in O(L·E²) — the live chat keeps one per scope ("last token", "this
/// reply", "session") and reads it after every token.
///
/// Adding a token costs O(L·k²). The pair (t − 1, t) is counted when the token added just before
/// was t − 1 and t does not begin a sequence of the trace; so a scope that starts mid-sequence
/// (a reply) counts no pair with the token before it. Tokens cannot be taken out again: after
/// `RoutingTrace.truncate(to:)` (a regenerated reply) make a new accumulator and add the range.
public struct RoutingStats: Sendable {
    public let moeLayers: [Int]
    public let experts: Int
    public let topK: Int
    /// Occurrences a token id needs to count in `specialisation` (≥ 1).
    public let minCount: Int
    /// N: tokens added.
    public private(set) var tokens = 0
    /// Consecutive pairs counted.
    public private(set) var pairs = 0

    private let hasSharedGate: [Bool]
    private let hasRouterEntropy: Bool
    private var loadCounts: [Int]          // (L, E)
    private var coactivation: [Int]        // (L, E, E)
    private var crossCounts: [Int]         // (L − 1, E, E)
    private var repeatsTop1: [Int]         // (L)
    private var repeatsTopK: [Int]         // (L)
    private var gateSums: [Double]         // (L)
    private var entropySums: [Double]      // (L)
    private var lastToken: Int?            // trace index of the token added last
    private var previous: [Int]            // (L, k): its experts
    private var current: [Int]             // (L, k): scratch for the token being added
    private var perID: [Int32: IDCounts] = [:]
    private var specialisationSums: [Double]  // (L): Σ over qualifying ids of best / occurrences
    private var qualifyingIDs = 0

    /// Per token id: occurrences, top-1 counts per layer and expert, and the largest per layer.
    private struct IDCounts: Sendable {
        var occurrences = 0
        var top1: [Int32]    // (L, E)
        var best: [Int32]    // (L)
    }

    /// An empty accumulator for tokens of traces shaped like `trace`. `minCount` must be ≥ 1.
    public init(for trace: RoutingTrace, minCount: Int = 10) {
        precondition(minCount >= 1, "minCount \(minCount) must be at least 1")
        moeLayers = trace.moeLayers
        experts = trace.experts
        topK = trace.topK
        self.minCount = minCount
        hasSharedGate = trace.hasSharedGate
        hasRouterEntropy = trace.hasRouterEntropy
        let L = moeLayers.count, E = experts
        loadCounts = Array(repeating: 0, count: L * E)
        coactivation = Array(repeating: 0, count: L * E * E)
        crossCounts = Array(repeating: 0, count: (L - 1) * E * E)
        repeatsTop1 = Array(repeating: 0, count: L)
        repeatsTopK = Array(repeating: 0, count: L)
        gateSums = Array(repeating: 0, count: L)
        entropySums = Array(repeating: 0, count: L)
        previous = Array(repeating: 0, count: L * topK)
        current = previous
        specialisationSums = Array(repeating: 0, count: L)
    }

    /// Adds token `t` of `trace` (a trace of the shape this accumulator was made for).
    public mutating func add(_ trace: RoutingTrace, token t: Int) {
        precondition(trace.moeLayers == moeLayers && trace.experts == experts && trace.topK == topK
                     && trace.hasSharedGate == hasSharedGate && trace.hasRouterEntropy == hasRouterEntropy,
                     "a token of a trace of another shape")
        let L = moeLayers.count, E = experts, k = topK
        for slot in 0..<L {
            for r in 0..<k { current[slot * k + r] = trace.expert(token: t, slot: slot, rank: r) }
        }
        let paired = lastToken == t - 1 && !trace.beginsSequence(t)
        if paired { pairs += 1 }
        for slot in 0..<L {
            let mine = current[(slot * k)..<(slot * k + k)]
            for i in mine {
                loadCounts[slot * E + i] += 1
                for j in mine { coactivation[(slot * E + i) * E + j] += 1 }
            }
            if let g = trace.sharedGate(token: t, slot: slot) { gateSums[slot] += Double(g) }
            if let h = trace.routerEntropy(token: t, slot: slot) { entropySums[slot] += Double(h) }
            if slot + 1 < L {
                crossCounts[(slot * E + current[slot * k]) * E + current[(slot + 1) * k]] += 1
            }
            if paired {
                let before = previous[(slot * k)..<(slot * k + k)]
                if before.first == mine.first { repeatsTop1[slot] += 1 }
                if mine.contains(where: before.contains) { repeatsTopK[slot] += 1 }
            }
        }
        addSpecialisation(id: Int32(trace.tokenID(t)))
        swap(&previous, &current)
        lastToken = t
        tokens += 1
    }

    /// Adds tokens `range` of `trace`, in order.
    public mutating func add(_ trace: RoutingTrace, tokens range: Range<Int>) {
        for t in range { add(trace, token: t) }
    }

    /// Updates the token id's top-1 counts (`current` holds the token's experts) and the running
    /// Σ best/occurrences over the ids that occur at least `minCount` times.
    private mutating func addSpecialisation(id: Int32) {
        let L = moeLayers.count, E = experts, k = topK
        var c = perID.removeValue(forKey: id)   // owned uniquely while it is changed
            ?? IDCounts(top1: Array(repeating: 0, count: L * E), best: Array(repeating: 0, count: L))
        let before = c.occurrences
        c.occurrences += 1
        for slot in 0..<L {
            let i = slot * E + current[slot * k]
            c.top1[i] += 1
            let oldBest = c.best[slot]
            c.best[slot] = max(oldBest, c.top1[i])
            if before >= minCount { specialisationSums[slot] -= Double(oldBest) / Double(before) }
            if c.occurrences >= minCount {
                specialisationSums[slot] += Double(c.best[slot]) / Double(c.occurrences)
            }
        }
        if c.occurrences == minCount { qualifyingIDs += 1 }
        perID[id] = c
    }

    /// The figures of MoE layer slot `slot` (index into `moeLayers`), O(E²).
    public func layer(_ slot: Int) -> LayerFigures {
        let E = experts, N = tokens
        let counts = Array(loadCounts[(slot * E)..<(slot * E + E)])
        let load = RoutingAnalysis.load(counts: counts, tokens: N, topK: topK)
        let matrix = (0..<E).map { i in Array(coactivation[((slot * E + i) * E)..<((slot * E + i) * E + E)]) }
        func share(_ count: Int, of total: Int) -> Double? { total > 0 ? Double(count) / Double(total) : nil }
        return LayerFigures(
            layer: moeLayers[slot], tokens: N, pairs: pairs, loadCounts: counts, load: load,
            entropyBits: load.map(RoutingAnalysis.entropyBits),
            maxViolation: load.map(RoutingAnalysis.maxViolation),
            jain: load.map(RoutingAnalysis.jain),
            repeatTop1: share(repeatsTop1[slot], of: pairs),
            repeatTopK: share(repeatsTopK[slot], of: pairs),
            coactivation: matrix,
            specialisation: qualifyingIDs > 0 ? specialisationSums[slot] / Double(qualifyingIDs) : nil,
            specialisedIDs: qualifyingIDs,
            sharedGateMean: hasSharedGate[slot] && N > 0 ? gateSums[slot] / Double(N) : nil,
            routerEntropyMean: hasRouterEntropy && N > 0 ? entropySums[slot] / Double(N) : nil)
    }

    /// The figures of every MoE layer, in `moeLayers` order, O(L·E²).
    public var layers: [LayerFigures] { moeLayers.indices.map(layer) }

    /// The top-1 flows between each pair of consecutive MoE layers, O(L·E²).
    public var crossLayer: [CrossLayerFlow] {
        let E = experts
        return moeLayers.indices.dropLast().map { slot in
            CrossLayerFlow(from: moeLayers[slot], to: moeLayers[slot + 1], counts: (0..<E).map { i in
                Array(crossCounts[((slot * E + i) * E)..<((slot * E + i) * E + E)])
            })
        }
    }
}
