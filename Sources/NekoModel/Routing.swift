/// Per token and MoE layer: the experts the token was routed to, in descending weight order
/// (ties by lower expert index), the weights the forward pass used, the shared expert's gate
/// σ(h·g) (absent without a gate) and the router entropy −Σ p·log2 p over all experts (bits).
/// See Sources/NekoRouting/README.md.
public final class RoutingRecord: @unchecked Sendable {
    public let moeLayers: [Int]
    public let expertsPerToken: Int
    /// Tokens recorded so far.
    public private(set) var tokens = 0
    private var expertIds: [Int32] = []    // (tokens, moeLayers, k)
    private var weights: [Float] = []      // (tokens, moeLayers, k)
    private var sharedGates: [Float] = []  // (tokens, moeLayers); NaN where the layer has no gate
    private var entropies: [Float] = []    // (tokens, moeLayers)

    /// One token's routing at one MoE layer.
    public struct Choice: Sendable, Equatable {
        public var experts: [Int]
        public var weights: [Float]
        /// σ(h · shared_expert_gate); nil when the layer has no shared-expert gate.
        public var sharedGate: Float?
        /// −Σ p·log2 p over all the layer's softmax probabilities, in bits.
        public var routerEntropy: Float

        public init(experts: [Int], weights: [Float], sharedGate: Float?, routerEntropy: Float) {
            self.experts = experts
            self.weights = weights
            self.sharedGate = sharedGate
            self.routerEntropy = routerEntropy
        }
    }

    public init(moeLayers: [Int], expertsPerToken: Int) {
        self.moeLayers = moeLayers
        self.expertsPerToken = expertsPerToken
    }

    /// Makes room for `count` more tokens and returns the index of the first.
    func append(count: Int) -> Int {
        let first = tokens
        tokens += count
        let perToken = tokens * moeLayers.count
        expertIds += repeatElement(0, count: perToken * expertsPerToken - expertIds.count)
        weights += repeatElement(0, count: perToken * expertsPerToken - weights.count)
        sharedGates += repeatElement(.nan, count: perToken - sharedGates.count)
        entropies += repeatElement(0, count: perToken - entropies.count)
        return first
    }

    /// Stores one token's choice at the `slot`-th MoE layer (`experts`, `w`: k values each).
    func set(token: Int, slot: Int, experts: UnsafePointer<Int32>, weights w: UnsafePointer<Float>,
             sharedGate: Float?, entropy: Float) {
        let cell = token * moeLayers.count + slot, base = cell * expertsPerToken
        for j in 0..<expertsPerToken {
            expertIds[base + j] = experts[j]
            weights[base + j] = w[j]
        }
        sharedGates[cell] = sharedGate ?? .nan
        entropies[cell] = entropy
    }

    /// The routing of token `token` at the `slot`-th MoE layer (`moeLayers[slot]`).
    public func choice(token: Int, slot: Int) -> Choice {
        let cell = token * moeLayers.count + slot, base = cell * expertsPerToken
        let gate = sharedGates[cell]
        return Choice(experts: (0..<expertsPerToken).map { Int(expertIds[base + $0]) },
                      weights: Array(weights[base..<base + expertsPerToken]),
                      sharedGate: gate.isNaN ? nil : gate, routerEntropy: entropies[cell])
    }

    /// The shared expert's gate of token `token` at the `slot`-th MoE layer (nil without a gate).
    public func sharedGate(token: Int, slot: Int) -> Float? {
        let gate = sharedGates[token * moeLayers.count + slot]
        return gate.isNaN ? nil : gate
    }

    /// The router entropy (bits) of token `token` at the `slot`-th MoE layer.
    public func routerEntropy(token: Int, slot: Int) -> Float {
        entropies[token * moeLayers.count + slot]
    }

    /// Appends the first `count` tokens of `other` (a record of the same layers and k: the
    /// routing of a reused KV cache's tokens).
    public func append(prefixOf other: RoutingRecord, count: Int) {
        precondition(other.moeLayers == moeLayers && other.expertsPerToken == expertsPerToken && count <= other.tokens)
        let cells = count * moeLayers.count
        expertIds += other.expertIds[0..<cells * expertsPerToken]
        weights += other.weights[0..<cells * expertsPerToken]
        sharedGates += other.sharedGates[0..<cells]
        entropies += other.entropies[0..<cells]
        tokens += count
    }

    /// Drops every token from `count` on.
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= tokens)
        tokens = count
        let perToken = tokens * moeLayers.count
        expertIds.removeLast(expertIds.count - perToken * expertsPerToken)
        weights.removeLast(weights.count - perToken * expertsPerToken)
        sharedGates.removeLast(sharedGates.count - perToken)
        entropies.removeLast(entropies.count - perToken)
    }
}
