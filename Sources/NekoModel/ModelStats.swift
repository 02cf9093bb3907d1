import NekoKernels

/// What a forward pass costs, for `nekochat bench`: bytes streamed and floating-point work.
extension LanguageModel {
    /// Bytes of weights one decode step reads: every matrix of attention and the dense layers,
    /// the routers, the top-k experts (counted as k distinct experts), the shared experts and the
    /// LM head, in the format in use (the embedding row and the norms are negligible).
    public var activeWeightBytes: Int { activeWeightBytes(.none) }

    /// The weight bytes one token reads under `interventions` (N experts per token, no shared
    /// expert).
    public func activeWeightBytes(_ interventions: Interventions) -> Int {
        let k = interventions.expertsPerToken(config)
        var bytes = weights.lmHead.byteCount
        for layer in weights.layers {
            let a = layer.attention
            bytes += a.q.byteCount + a.k.byteCount + a.v.byteCount + a.o.byteCount
            switch layer.feedForward {
            case let .dense(m): bytes += m.byteCount
            case let .moe(m):
                bytes += m.router.byteCount + (interventions.sharedExpert ? m.shared?.byteCount ?? 0 : 0)
                if let e = m.experts.first { bytes += min(k, m.experts.count) * e.byteCount }
            }
        }
        return bytes
    }

    /// Bytes of KV cache a decode step at `position` reads: every layer's keys and values of the
    /// positions it sees (all before it and itself, or its sliding window), in `precision`.
    public func kvBytesRead(position: Int, precision: KVPrecision) -> Int {
        var positions = 0
        for l in 0..<config.numHiddenLayers {
            positions += position + 1 - firstVisible(position: position, layer: l)
        }
        return positions * 2 * config.numKeyValueHeads * config.headDim * precision.bytes
    }

    /// Floating-point operations (a multiply-add = 2) of one forward pass of `tokens` tokens after
    /// `start` cached ones, with logits for `logitRows` of them: every matrix product (top-k
    /// experts per token) and the attention scores and weighted sums (causal).
    public func forwardFLOPs(tokens: Int, start: Int = 0, logitRows: Int = 1) -> Double {
        var perToken = 0.0
        for layer in weights.layers {
            let a = layer.attention
            perToken += Double(a.q.rows * a.q.cols + a.k.rows * a.k.cols + a.v.rows * a.v.cols + a.o.rows * a.o.cols)
            switch layer.feedForward {
            case let .dense(m): perToken += Double(3 * m.gate.rows * m.gate.cols)
            case let .moe(m):
                perToken += Double(m.router.rows * m.router.cols)
                if let e = m.experts.first { perToken += Double(config.numExpertsPerTok * 3 * e.gate.rows * e.gate.cols) }
                if let s = m.shared { perToken += Double(3 * s.gate.rows * s.gate.cols + s.gate.cols) }
            }
        }
        // Attention: q·k and p·v over the visible positions, every head of every layer.
        let perPosition = Double(2 * config.numAttentionHeads * config.headDim * weights.layers.count)
        var visible = 0.0
        for t in 0..<tokens { visible += Double(start + t + 1) }
        let head = Double(logitRows * weights.lmHead.rows * weights.lmHead.cols)
        return 2 * (perToken * Double(tokens) + perPosition * visible + head)
    }
}

extension LanguageModel {
    /// Read bandwidth (bytes/s, one value per pass) of `threads` threads streaming the memory
    /// the weights in use live in — the quantised weights, or the mapped weight files — as far
    /// as `limit` bytes: the rate a decode step could read them at if it did nothing else.
    public func weightReadBandwidth(threads: Int, passes: Int = 5, limit: Int = 1 << 30) -> [Double] {
        let pool = WorkerPool(threads: threads)
        if let cache = weightCache {
            return pool.measureReadBandwidth(of: cache.base, bytes: min(cache.size, limit), passes: passes)
        }
        // The weight files: the largest one (its mapped data, resident once the model has run).
        guard let file = files.max(by: { $0.byteCount < $1.byteCount }), let base = file.base else { return [] }
        return pool.measureReadBandwidth(of: base, bytes: min(file.byteCount, limit), passes: passes)
    }
}

/// This machine as the kernels see it (for `nekochat bench`).
public enum Machine {
    /// The SIMD level the kernels use now: "portable", "avx2" or "avx512-vnni".
    public static var kernels: String { SIMD.name(SIMD.level) }

    /// Best read bandwidth, bytes/s, of `threads` threads (a fresh pool of that size) streaming
    /// `bytes` of fresh memory (use ≫ the last-level cache).
    public static func readBandwidth(threads: Int, bytes: Int = 256 << 20, passes: Int = 5) -> Double {
        WorkerPool(threads: threads).measureReadBandwidth(bytes: bytes, passes: passes)
    }

    /// Each of `passes` read passes' bandwidth (bytes/s) of `threads` threads over `bytes`.
    public static func readBandwidthPasses(threads: Int, bytes: Int = 256 << 20, passes: Int = 7) -> [Double] {
        WorkerPool(threads: threads).measureReadBandwidthPasses(bytes: bytes, passes: passes)
    }

    /// Float32 FMA throughput, FLOP/s, of `threads` threads each running 12 independent FMA
    /// chains with the current SIMD level's widest vectors.
    public static func fmaPeak(threads: Int, seconds: Double = 0.3) -> Double {
        WorkerPool(threads: threads).measureFMAPeak(seconds: seconds)
    }
}
