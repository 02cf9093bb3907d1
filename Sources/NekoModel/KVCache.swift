#if canImport(Glibc)
import Glibc
#endif

/// Keys and values of every layer for positions `0..<length`, float32.
/// Memory is reserved for `capacity` positions but only touched pages become resident,
/// so a 32k-token cache costs what the conversation uses.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layers: Int
    /// Floats per position per layer: kvHeads * headDim.
    public let width: Int
    /// Positions filled so far.
    public internal(set) var length = 0
    private let storage: UnsafeMutableRawPointer
    private let bytes: Int

    /// Reserves the cache; an impossible size is an error naming it, not a crash.
    public init(config: ModelConfig, capacity: Int) throws {
        self.capacity = max(1, capacity)
        layers = config.numHiddenLayers
        width = config.numKeyValueHeads * config.headDim
        var size = 2 * MemoryLayout<Float>.size, overflow = false
        for factor in [layers, self.capacity, width] where !overflow {
            (size, overflow) = size.multipliedReportingOverflow(by: factor)
        }
        let message = "cannot reserve a KV cache of \(self.capacity) positions × \(layers) layers × \(width) floats"
        guard !overflow else { throw ModelError.input(message + " (too large)") }
        bytes = max(1, size)
        let map = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let map, map != MAP_FAILED else {
            throw ModelError.input(message + " (\(bytes) bytes): \(String(cString: strerror(errno))); try a smaller --ctx-size")
        }
        storage = map
    }

    deinit { munmap(storage, bytes) }

    /// Keys of `layer`: (capacity, kvHeads * headDim).
    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.assumingMemoryBound(to: Float.self) + (2 * layer) * capacity * width
    }

    /// Values of `layer`: (capacity, kvHeads * headDim).
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.assumingMemoryBound(to: Float.self) + (2 * layer + 1) * capacity * width
    }

    /// Forgets every position from `length` on (the next forward pass overwrites them).
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= self.length)
        self.length = length
    }
}

/// The experts each token was routed to, per MoE layer, in descending weight order
/// (ties by lower expert index), with the weights the forward pass used.
public final class RoutingRecord: @unchecked Sendable {
    public let moeLayers: [Int]
    public let expertsPerToken: Int
    /// Tokens recorded so far.
    public private(set) var tokens = 0
    private var expertIds: [Int32] = []   // (tokens, moeLayers, k)
    private var weights: [Float] = []     // (tokens, moeLayers, k)

    public init(moeLayers: [Int], expertsPerToken: Int) {
        self.moeLayers = moeLayers
        self.expertsPerToken = expertsPerToken
    }

    /// Makes room for `count` more tokens and returns the index of the first.
    func append(count: Int) -> Int {
        let first = tokens
        tokens += count
        let n = tokens * moeLayers.count * expertsPerToken
        expertIds += repeatElement(0, count: n - expertIds.count)
        weights += repeatElement(0, count: n - weights.count)
        return first
    }

    func set(token: Int, slot: Int, experts: UnsafePointer<Int32>, weights w: UnsafePointer<Float>) {
        let base = (token * moeLayers.count + slot) * expertsPerToken
        for j in 0..<expertsPerToken {
            expertIds[base + j] = experts[j]
            weights[base + j] = w[j]
        }
    }

    /// Experts and weights of token `token` at the `slot`-th MoE layer (`moeLayers[slot]`).
    public func choice(token: Int, slot: Int) -> (experts: [Int], weights: [Float]) {
        let base = (token * moeLayers.count + slot) * expertsPerToken
        return ((0..<expertsPerToken).map { Int(expertIds[base + $0]) },
                Array(weights[base..<base + expertsPerToken]))
    }

    /// Drops every token from `count` on.
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= tokens)
        tokens = count
        let n = tokens * moeLayers.count * expertsPerToken
        expertIds.removeLast(expertIds.count - n)
        weights.removeLast(weights.count - n)
    }
}
