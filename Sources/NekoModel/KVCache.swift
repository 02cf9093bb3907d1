import Foundation
import NekoKernels
#if canImport(Glibc)
import Glibc
#endif

/// How a KV cache stores keys and values: float32 (as computed, so results match the float64
/// reference to float32 rounding: `score`, `routing` and `ablate`), or in 16 bits, IEEE half or
/// bfloat16 (half the bytes decode attention streams and the cache's memory: the chat,
/// `generate`, `serve` and `bench`). Sources/NekoModel/README.md gives each one's error.
public enum KVPrecision: String, Sendable, Equatable, CaseIterable {
    case float32 = "f32", float16 = "f16", bfloat16 = "bf16"
    public var bytes: Int { self == .float32 ? 4 : 2 }
    /// The element type of the cache's rows.
    public var dtype: DType {
        switch self {
        case .float32: .f32
        case .float16: .f16
        case .bfloat16: .bf16
        }
    }
}

/// Keys and values of every layer for positions `0..<length`.
/// Memory is reserved for `capacity` positions but only touched pages become resident,
/// so a 32k-token cache costs what the conversation uses.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let layers: Int
    /// Floats per position per layer: kvHeads * headDim.
    public let width: Int
    public let headDim: Int
    public let precision: KVPrecision
    /// Positions filled so far.
    public internal(set) var length = 0
    private let storage: UnsafeMutableRawPointer
    private let bytes: Int

    /// Reserves the cache; an impossible size is an error naming it, not a crash.
    public init(config: ModelConfig, capacity: Int, precision: KVPrecision = .float32) throws {
        self.capacity = max(1, capacity)
        self.precision = precision
        layers = config.numHiddenLayers
        width = config.numKeyValueHeads * config.headDim
        headDim = max(1, config.headDim)
        var size = 2 * precision.bytes, overflow = false
        for factor in [layers, self.capacity, width] where !overflow {
            (size, overflow) = size.multipliedReportingOverflow(by: factor)
        }
        let message = "cannot reserve a KV cache of \(self.capacity) positions × \(layers) layers × \(width) values"
        guard !overflow else { throw ModelError.input(message + " (too large)") }
        // Pages become resident only as the context fills, but a cache that could never be filled
        // in this machine's memory is refused now rather than when the context gets there.
        let memory = ProcessInfo.processInfo.physicalMemory
        if UInt64(size) > memory {
            let fits = Int(memory / 2 / UInt64(max(1, size / self.capacity)))
            throw ModelError.input(String(format: "a context of %d tokens needs %.1f GiB for its KV cache, more than this machine's %.1f GiB of memory",
                                          self.capacity, Double(size) / 1073741824, Double(memory) / 1073741824)
                                   + (fits >= 16 ? "; --ctx-size \(fits) fits" : ""))
        }
        bytes = max(1, size)
        let map = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let map, map != MAP_FAILED else {
            throw ModelError.input(message + " (\(bytes) bytes): \(String(cString: strerror(errno))); try a smaller --ctx-size")
        }
        storage = map
    }

    deinit { munmap(storage, bytes) }

    /// One head's keys (or values) of `layer`: (capacity, headDim) elements of `precision`.
    /// The cache is head-major, (layer, keys|values, kvHeads, capacity, headDim), so decode
    /// attention streams a head's rows in order and prefill hands them to sgemm.
    func rows(layer: Int, head: Int, values: Bool) -> UnsafeMutableRawPointer {
        let heads = width / headDim
        return storage + (((2 * layer + (values ? 1 : 0)) * heads + head) * capacity * headDim) * precision.bytes
    }

    /// Stores the keys and values of `positions` of `layer`: `keys`/`values` are
    /// (positions.count, kvHeads * headDim) floats, as the projections wrote them.
    func store(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, layer: Int, positions: Range<Int>) {
        let heads = width / headDim, bytes = precision.bytes
        for (kind, src) in [(false, keys), (true, values)] {
            for head in 0..<heads {
                let base = rows(layer: layer, head: head, values: kind)
                for (i, pos) in positions.enumerated() {
                    let row = src + i * width + head * headDim, dst = base + pos * headDim * bytes
                    switch precision {
                    case .float32: dst.assumingMemoryBound(to: Float.self).update(from: row, count: headDim)
                    case .float16: Kernels.toHalf(row, count: headDim, out: dst.assumingMemoryBound(to: UInt16.self))
                    case .bfloat16: Kernels.toBFloat16(row, count: headDim, out: dst.assumingMemoryBound(to: UInt16.self))
                    }
                }
            }
        }
    }

    /// Positions `0..<count` of one head as float32 (count, headDim): the cache itself when it
    /// holds float32, else converted into `scratch` (what the cache holds, as the tests read it
    /// back; prefill converts tile by tile instead).
    func floatRows(layer: Int, head: Int, values: Bool, count: Int, scratch: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let src = rows(layer: layer, head: head, values: values)
        if precision == .float32 { return UnsafePointer(src.assumingMemoryBound(to: Float.self)) }
        Kernels.toFloat(src, dtype: precision.dtype, count: count * headDim, out: scratch)
        return UnsafePointer(scratch)
    }

    /// Forgets every position from `length` on (the next forward pass overwrites them).
    public func truncate(to length: Int) {
        precondition(length >= 0 && length <= self.length)
        self.length = length
    }
}
