/// One MoE layer's routing of one token: the routing record of Sources/NekoRouting/README.md,
/// `{"layer", "experts", "weights", "shared_gate", "router_entropy"}` without the layer index
/// (a token's records come in the trace's `moeLayers` order).
public struct LayerRouting: Sendable, Equatable {
    /// The k chosen experts in descending weight order (ties: lower index first); `experts[0]` is top-1.
    public var experts: [Int]
    /// The weights the forward pass used (after `norm_topk_prob`), same order as `experts`.
    public var weights: [Float]
    /// σ(x · shared_expert_gate); nil when the layer has no gate.
    public var sharedGate: Float?
    /// −Σ p·log2 p over all experts' softmax probabilities (bits); nil when not recorded
    /// (a CSV carries none).
    public var routerEntropy: Float?

    public init(experts: [Int], weights: [Float], sharedGate: Float? = nil, routerEntropy: Float? = nil) {
        self.experts = experts
        self.weights = weights
        self.sharedGate = sharedGate
        self.routerEntropy = routerEntropy
    }
}

/// What was wrong with a routing trace, a token's record or a routing CSV.
public enum RoutingError: Error, CustomStringConvertible, Equatable {
    /// The trace's shape itself (layers, experts, k) is impossible.
    case shape(String)
    /// Token `token`'s record is wrong (at MoE layer `layer` when one is at fault).
    case record(token: Int, layer: Int?, String)
    /// A routing CSV line (1-based) is wrong.
    case csv(line: Int, String)

    public var description: String {
        switch self {
        case let .shape(m): "routing trace: \(m)"
        case let .record(t, l?, m): "routing record of token \(t), layer \(l): \(m)"
        case let .record(t, nil, m): "routing record of token \(t): \(m)"
        case let .csv(line, m): "routing CSV line \(line): \(m)"
        }
    }
}

/// A named run of consecutive tokens (one `--file`, one `--ids`, one chat message). Consecutive-token
/// pairs never cross from one sequence into the next.
public struct TraceSequence: Sendable, Equatable {
    public var name: String
    public var tokens: Range<Int>

    public init(name: String, tokens: Range<Int>) {
        self.name = name
        self.tokens = tokens
    }
}

/// The routing of a run, columnar: for N tokens, L MoE layers, E experts and k chosen per token,
/// the token ids, the chosen experts and weights (token, layer, rank), the shared gates and router
/// entropies (token, layer) where recorded, and the sequence boundaries.
///
/// Appending a token costs O(L·k²) and checks the record (experts distinct and in range, weights
/// finite and non-increasing, the same optional fields as the trace declares).
public struct RoutingTrace: Sendable, Equatable {
    /// The model's MoE layer indices, ascending (e.g. 2…17).
    public let moeLayers: [Int]
    /// E: routed experts per MoE layer.
    public let experts: Int
    /// k: experts chosen per token.
    public let topK: Int
    /// Per MoE layer slot (index into `moeLayers`): whether its records carry a shared gate.
    public let hasSharedGate: [Bool]
    /// Whether the records carry the router entropy.
    public let hasRouterEntropy: Bool

    private var ids: [Int32] = []            // (N)
    private var chosen: [UInt16] = []        // (N, L, k)
    private var chosenWeights: [Float] = []  // (N, L, k)
    private var gates: [Float] = []          // (N, L); 0 in the slots without a gate
    private var entropies: [Float] = []      // (N, L) when hasRouterEntropy, else empty
    private var names: [String] = []         // per sequence
    private var starts: [Int] = []           // per sequence: first token; non-decreasing

    /// Most experts a trace may have, and most layer × expert × expert cells of its pair counts.
    public static let maxExperts = 4096
    public static let maxPairCells = 1 << 26

    /// An empty trace. `gatedLayers` lists the MoE layers whose records carry `sharedGate` (every
    /// MoE layer of NekoMind, none of a model without a shared expert); `hasRouterEntropy` says
    /// whether they carry `routerEntropy`.
    public init(moeLayers: [Int], experts: Int, topK: Int, gatedLayers: [Int] = [],
                hasRouterEntropy: Bool = false) throws {
        guard !moeLayers.isEmpty else { throw RoutingError.shape("no MoE layers") }
        guard zip(moeLayers, moeLayers.dropFirst()).allSatisfy({ $0 < $1 }), moeLayers[0] >= 0 else {
            throw RoutingError.shape("MoE layers \(moeLayers) are not distinct and ascending")
        }
        // The analyses hold an experts × experts matrix per layer: bound them before allocating
        // (a file or a server that claims 65,536 experts must not ask for 32 GB a layer).
        guard (1...RoutingTrace.maxExperts).contains(experts) else {
            throw RoutingError.shape("\(experts) experts (1…\(RoutingTrace.maxExperts) supported)")
        }
        guard moeLayers.count * experts * experts <= RoutingTrace.maxPairCells else {
            throw RoutingError.shape("\(moeLayers.count) MoE layers × \(experts)² expert pairs is more than the \(RoutingTrace.maxPairCells) the analyses hold")
        }
        guard (1...experts).contains(topK) else {
            throw RoutingError.shape("top-k \(topK) is not within 1…\(experts) experts")
        }
        if let stray = gatedLayers.first(where: { !moeLayers.contains($0) }) {
            throw RoutingError.shape("gated layer \(stray) is not a MoE layer of \(moeLayers)")
        }
        self.moeLayers = moeLayers
        self.experts = experts
        self.topK = topK
        self.hasSharedGate = moeLayers.map(gatedLayers.contains)
        self.hasRouterEntropy = hasRouterEntropy
    }

    /// N: tokens recorded.
    public var count: Int { ids.count }

    /// The sequences in order; together they cover `0..<count` (some may be empty).
    public var sequences: [TraceSequence] {
        names.indices.map { i in
            TraceSequence(name: names[i], tokens: starts[i]..<(i + 1 < starts.count ? starts[i + 1] : count))
        }
    }

    /// Starts a new sequence with the next token. Tokens appended before the first call form a
    /// sequence named "sequence 1".
    public mutating func beginSequence(named name: String) {
        names.append(name)
        starts.append(count)
    }

    /// Appends one token's routing: one record per MoE layer, in `moeLayers` order.
    public mutating func append(tokenID: Int, layers records: [LayerRouting]) throws {
        let t = count
        guard records.count == moeLayers.count else {
            throw RoutingError.record(token: t, layer: nil,
                                      "\(records.count) layer records for \(moeLayers.count) MoE layers")
        }
        guard let id = Int32(exactly: tokenID), id >= 0 else {
            throw RoutingError.record(token: t, layer: nil, "token id \(tokenID) is out of range")
        }
        for (slot, r) in records.enumerated() { try check(r, token: t, slot: slot) }
        if names.isEmpty { beginSequence(named: "sequence 1") }
        ids.append(id)
        for (slot, r) in records.enumerated() {
            for e in r.experts { chosen.append(UInt16(e)) }
            chosenWeights += r.weights
            gates.append(hasSharedGate[slot] ? r.sharedGate! : 0)
            if hasRouterEntropy { entropies.append(r.routerEntropy!) }
        }
    }

    private func check(_ r: LayerRouting, token t: Int, slot: Int) throws {
        func fail(_ m: String) -> RoutingError { .record(token: t, layer: moeLayers[slot], m) }
        guard r.experts.count == topK, r.weights.count == topK else {
            throw fail("\(r.experts.count) experts and \(r.weights.count) weights, expected top-k \(topK)")
        }
        for (j, e) in r.experts.enumerated() {
            guard (0..<experts).contains(e) else { throw fail("expert \(e) is not within 0…\(experts - 1)") }
            guard !r.experts[..<j].contains(e) else { throw fail("expert \(e) is chosen twice") }
        }
        guard r.weights.allSatisfy(\.isFinite) else { throw fail("weights \(r.weights) are not all finite") }
        // Only the order of the weights is checked: two float64 weights may round to one Float,
        // so a tie here need not be in expert-index order.
        guard zip(r.weights, r.weights.dropFirst()).allSatisfy({ $0 >= $1 }) else {
            throw fail("weights \(r.weights) are not in descending order")
        }
        switch (hasSharedGate[slot], r.sharedGate) {
        case (true, nil): throw fail("the shared gate is missing")
        case (false, _?): throw fail("a shared gate on a layer declared without one")
        case let (true, g?) where !g.isFinite: throw fail("shared gate \(g) is not finite")
        default: break
        }
        switch (hasRouterEntropy, r.routerEntropy) {
        case (true, nil): throw fail("the router entropy is missing")
        case (false, _?): throw fail("a router entropy in a trace declared without one")
        case let (true, h?) where !h.isFinite: throw fail("router entropy \(h) is not finite")
        default: break
        }
    }

    /// Keeps the first `n` tokens and the sequences that begin before token `n` (all of them when
    /// `n == count`).
    public mutating func truncate(to n: Int) {
        precondition(n >= 0 && n <= count, "truncate(to: \(n)) of a trace of \(count) tokens")
        guard n < count else { return }
        let L = moeLayers.count
        ids.removeLast(ids.count - n)
        chosen.removeLast(chosen.count - n * L * topK)
        chosenWeights.removeLast(chosenWeights.count - n * L * topK)
        gates.removeLast(gates.count - n * L)
        entropies.removeLast(entropies.count - (hasRouterEntropy ? n * L : 0))
        while let last = starts.last, last >= n {
            starts.removeLast()
            names.removeLast()
        }
    }

    // MARK: reading

    /// The id of token `t`.
    public func tokenID(_ t: Int) -> Int { Int(ids[t]) }

    /// The expert of rank `rank` (0 = top-1) for token `t` at MoE layer slot `slot`.
    @inline(__always)
    public func expert(token t: Int, slot: Int, rank: Int) -> Int {
        Int(chosen[(t * moeLayers.count + slot) * topK + rank])
    }

    /// The weight of rank `rank` for token `t` at MoE layer slot `slot`.
    public func weight(token t: Int, slot: Int, rank: Int) -> Float {
        chosenWeights[(t * moeLayers.count + slot) * topK + rank]
    }

    /// The shared gate of token `t` at slot `slot`, nil for a layer without a gate.
    public func sharedGate(token t: Int, slot: Int) -> Float? {
        hasSharedGate[slot] ? gates[t * moeLayers.count + slot] : nil
    }

    /// The router entropy (bits) of token `t` at slot `slot`, nil when not recorded.
    public func routerEntropy(token t: Int, slot: Int) -> Float? {
        hasRouterEntropy ? entropies[t * moeLayers.count + slot] : nil
    }

    /// Token `t`'s record at slot `slot`, as it was appended.
    public func record(token t: Int, slot: Int) -> LayerRouting {
        LayerRouting(experts: (0..<topK).map { expert(token: t, slot: slot, rank: $0) },
                     weights: (0..<topK).map { weight(token: t, slot: slot, rank: $0) },
                     sharedGate: sharedGate(token: t, slot: slot),
                     routerEntropy: routerEntropy(token: t, slot: slot))
    }

    /// Whether token `t` (> 0) begins a sequence, i.e. the pair (t − 1, t) is not counted.
    public func beginsSequence(_ t: Int) -> Bool {
        // Binary search for the last start ≤ t.
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= t { lo = mid + 1 } else { hi = mid }
        }
        return lo > 0 && starts[lo - 1] == t
    }
}
