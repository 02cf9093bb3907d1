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
    public let headDim: Int
    /// Positions filled so far.
    public internal(set) var length = 0
    private let storage: UnsafeMutableRawPointer
    private let bytes: Int

    /// Reserves the cache; an impossible size is an error naming it, not a crash.
    public init(config: ModelConfig, capacity: Int) throws {
        self.capacity = max(1, capacity)
        layers = config.numHiddenLayers
        width = config.numKeyValueHeads * config.headDim
        headDim = max(1, config.headDim)
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

    /// Keys of `layer`, head-major: (kvHeads, capacity, headDim), so one head's keys are
    /// contiguous rows (decode attention streams them; prefill passes them to sgemm).
    func keys(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.assumingMemoryBound(to: Float.self) + (2 * layer) * capacity * width
    }

    /// Values of `layer`: (kvHeads, capacity, headDim).
    func values(_ layer: Int) -> UnsafeMutablePointer<Float> {
        storage.assumingMemoryBound(to: Float.self) + (2 * layer + 1) * capacity * width
    }

    /// Floats from one head's rows to the next head's: capacity · headDim.
    var headStride: Int { capacity * headDim }

    /// Forgets every position from `length` on (the next forward pass overwrites them).
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= self.length)
        self.length = length
    }
}
