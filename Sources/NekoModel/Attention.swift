import NekoKernels

extension LanguageModel {
    /// x += o_proj(softmax(q·kᵀ/√d + causal mask)·v), with q, k, v from rmsnorm(x), QK-norm and
    /// RoPE on q and k; each segment's new keys and values are appended to its cache.
    /// Writes ctx.h (the normed input), ctx.q/k/v, ctx.attn and ctx.proj.
    func attention(layer l: Int, _ w: AttentionWeights, norm: [Float], x: UnsafeMutablePointer<Float>,
                   count n: Int, segments: [Segment],
                   rope: (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>), ctx: ForwardContext) {
        let hidden = config.hiddenSize, hd = config.headDim
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd
        let h = ctx.h.reserve(n * hidden)                 // (n, hidden)
        rmsnorm(x, norm, rows: n, out: h)
        ctx.dump("attn_norm", l, h, n * hidden)
        ctx.hInput.set(h, rows: n, ldx: hidden, cols: hidden)

        let q = ctx.q.reserve(n * qDim)                   // (n, heads * headDim)
        let k = ctx.k.reserve(n * kvDim)                  // (n, kvHeads * headDim)
        let v = ctx.v.reserve(n * kvDim)                  // (n, kvHeads * headDim)
        ctx.jobs.add(w.q, input: ctx.hInput, out: q, ldy: qDim)
        ctx.jobs.add(w.k, input: ctx.hInput, out: k, ldy: kvDim)
        ctx.jobs.add(w.v, input: ctx.hInput, out: v, ldy: kvDim)
        ctx.runPhase("qkv")
        func addBias(_ bias: [Float]?, _ out: UnsafeMutablePointer<Float>, _ width: Int) {
            guard let bias else { return }
            bias.withUnsafeBufferPointer { b in
                for t in 0..<n { Kernels.axpy(out + t * width, 1, b.baseAddress!, width) }
            }
        }
        addBias(w.qBias, q, qDim)
        addBias(w.kBias, k, kvDim)
        addBias(w.vBias, v, kvDim)
        ctx.timed("qk_norm_rope") { normAndRotate(q: q, k: k, v: v, count: n, w: w, rope: rope, ctx: ctx) }
        ctx.dump("q", l, q, n * qDim)
        ctx.dump("k", l, k, n * kvDim)
        ctx.dump("v", l, v, n * kvDim)
        for s in segments {
            s.cache.store(keys: k + s.rows.lowerBound * kvDim, values: v + s.rows.lowerBound * kvDim,
                          layer: l, positions: s.start..<s.start + s.rows.count)
        }

        let out = ctx.attn.reserve(n * qDim)              // (n, heads * headDim)
        ctx.timed("attention") {
            let singles = segments.filter { $0.rows.count == 1 }
            if !singles.isEmpty { attendOneRow(singles, layer: l, q: q, out: out, ctx: ctx) }
            for s in segments where s.rows.count > 1 { attendRows(s, layer: l, q: q, out: out, ctx: ctx) }
        }
        ctx.dump("attn_out", l, out, n * qDim)

        ctx.attnInput.set(out, rows: n, ldx: qDim, cols: qDim)
        let projected = ctx.proj.reserve(n * hidden)      // (n, hidden)
        ctx.jobs.add(w.o, input: ctx.attnInput, out: projected, ldy: hidden)
        ctx.runPhase("o_proj")
        addBias(w.oBias, projected, hidden)
        Kernels.axpy(x, Float(config.residualMultiplier), projected, n * hidden)
    }

    /// The scale of the attention logits: 1/√head_dim unless the family sets its own.
    var attentionScale: Float { config.attentionScale.map { Float($0) } ?? 1 / Float(config.headDim).squareRoot() }

    /// The first cached position that a query at `position` of layer `l` sees: 0, or the start of
    /// the sliding window on the layers that have one (a token sees itself and window − 1 before it).
    func firstVisible(position: Int, layer l: Int) -> Int {
        let window = layerWindows[l]
        return window > 0 ? max(0, position - window + 1) : 0
    }

    /// Per row: QK-norm as the family says (per head, or over the whole projection), then with
    /// `clip_qkv` q, k and v clamped, then RoPE on every head of q and k.
    func normAndRotate(q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                       count n: Int, w: AttentionWeights, rope: (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>),
                       ctx: ForwardContext) {
        let hd = config.headDim, half = hd / 2, eps = Float(config.rmsNormEps)
        let heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let wholeProjection = config.qkNorm == .wholeProjection
        let clip = config.clipQKV.map { Float($0) }
        let qNorm = w.qNorm, kNorm = w.kNorm
        /// Normalises row `t` of `out` ((heads · headDim) wide): as one vector, or head by head.
        func norm(_ weights: [Float]?, _ out: UnsafeMutablePointer<Float>, _ count: Int, _ t: Int) {
            guard let weights else { return }
            let row = out + t * count * hd
            weights.withUnsafeBufferPointer { nw in
                if wholeProjection {
                    Kernels.rmsnorm(row, weight: nw.baseAddress!, count: count * hd, eps: eps, out: row)
                } else {
                    for head in 0..<count {
                        Kernels.rmsnorm(row + head * hd, weight: nw.baseAddress!, count: hd, eps: eps, out: row + head * hd)
                    }
                }
            }
        }
        func clamp(_ out: UnsafeMutablePointer<Float>, _ width: Int, _ t: Int, _ limit: Float) {
            let row = out + t * width
            for i in 0..<width { row[i] = min(max(row[i], -limit), limit) }
        }
        func rotate(_ out: UnsafeMutablePointer<Float>, _ count: Int, _ t: Int) {
            for head in 0..<count {
                Kernels.rope(out + t * count * hd + head * hd, cos: rope.cos + t * half, sin: rope.sin + t * half, headDim: hd)
            }
        }
        ctx.pool.parallelRanges(n, minChunk: 16) { begin, end in
            for t in begin..<end {
                norm(qNorm, q, heads, t)
                norm(kNorm, k, kvHeads, t)
                if let clip {
                    clamp(q, heads * hd, t, clip)
                    clamp(k, kvHeads * hd, t, clip)
                    clamp(v, kvHeads * hd, t, clip)
                }
                rotate(q, heads, t)
                rotate(k, kvHeads, t)
            }
        }
    }

    /// One query row per segment (decode): a task per (row, KV head) covers the query heads
    /// that share that KV head, so each cached key and value is read once.
    func attendOneRow(_ segments: [Segment], layer l: Int, q: UnsafePointer<Float>,
                      out: UnsafeMutablePointer<Float>, ctx: ForwardContext) {
        let hd = config.headDim, heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, group = heads / kvHeads
        let scale = attentionScale
        let longest = segments.map { $0.start + 1 }.max() ?? 1
        let tasks = segments.count * kvHeads
        let scores = ctx.scores.reserve(tasks * group * Kernels.attendBlock)  // (tasks, group, block)
        let minChunk = longest * group * tasks < 1024 ? tasks : 1   // tiny: not worth a fork
        ctx.pool.parallelRanges(tasks, minChunk: minChunk) { begin, end in
            for task in begin..<end {
                let s = segments[task / kvHeads], kvHead = task % kvHeads, row = s.rows.lowerBound
                let keys = s.cache.rows(layer: l, head: kvHead, values: false)
                let values = s.cache.rows(layer: l, head: kvHead, values: true)
                let qh = q + row * qDim + kvHead * group * hd, oh = out + row * qDim + kvHead * group * hd
                let sc = scores + task * group * Kernels.attendBlock
                let first = firstVisible(position: s.start, layer: l), count = s.start + 1 - first
                Kernels.attendDecode(q: qh, group: group, headDim: hd,
                                     keys: keys + first * hd * s.cache.precision.bytes,
                                     values: values + first * hd * s.cache.precision.bytes,
                                     dtype: s.cache.precision.dtype, count: count, scale: scale, scores: sc, out: oh)
            }
        }
    }

    /// Keys per tile of prefill attention: a tile's scores (rows × tile) and, for a 16-bit
    /// cache, its keys and values as float32 stay in L2 while they are used.
    static let prefillKeyTile = 256

    /// Several rows of one sequence (prefill), flash-attention style: the visible keys in tiles of
    /// `prefillKeyTile`; per tile S = q·kᵀ for the rows that see any of it (sgemm), an online
    /// softmax per row (running max and sum; the output so far rescaled when the max grows), then
    /// out += P·v (sgemm). No (rows × context) matrix is made, tiles no row sees (above the
    /// diagonal, before a sliding window) are skipped, and a 16-bit cache's tile is converted once
    /// for the query heads sharing it. Spread over the pool by KV head, or with more threads
    /// than KV heads, by query head.
    func attendRows(_ s: Segment, layer l: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    ctx: ForwardContext, keyTile tile: Int = LanguageModel.prefillKeyTile) {
        let hd = config.headDim, heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, group = heads / kvHeads
        let n = s.rows.count, total = s.start + n, scale = attentionScale
        let qRows = q + s.rows.lowerBound * qDim, outRows = out + s.rows.lowerBound * qDim
        let precision = s.cache.precision, converts = precision != .float32
        let byKVHead = ctx.pool.threads <= kvHeads
        let perTask = byKVHead ? group : 1
        let window = layerWindows[l]
        // Per thread: a tile of scores (n, tile); each head's row maxima and sums (n each); for a
        // 16-bit cache the tile's keys and values as float32 (tile, headDim) each.
        let perThread = n * tile + 2 * perTask * n + (converts ? 2 * tile * hd : 0)
        let scratch = ctx.scores.reserve(ctx.pool.threads * perThread)
        ctx.pool.parallelChunks(byKVHead ? kvHeads : heads) { worker, begin, end in
            let sc = scratch + worker * perThread
            let maxima = sc + n * tile, sums = maxima + perTask * n
            let keyTile = sums + perTask * n, valueTile = keyTile + tile * hd
            for task in begin..<end {
                let kvHead = byKVHead ? task : task / group
                let firstHead = byKVHead ? task * group : task
                let keys = s.cache.rows(layer: l, head: kvHead, values: false)
                let values = s.cache.rows(layer: l, head: kvHead, values: true)
                for h in 0..<perTask {
                    let o = outRows + (firstHead + h) * hd
                    for t in 0..<n { (o + t * qDim).initialize(repeating: 0, count: hd) }
                    (maxima + h * n).initialize(repeating: -.infinity, count: n)
                    (sums + h * n).initialize(repeating: 0, count: n)
                }
                var c0 = firstVisible(position: s.start, layer: l)
                while c0 < total {
                    let cw = min(tile, total - c0)
                    defer { c0 += cw }
                    // The rows that see a key of this tile: causal (position ≥ c0), and inside
                    // the window where there is one (position − window + 1 < c0 + cw).
                    let r0 = max(0, c0 - s.start)
                    let r1 = window > 0 ? min(n, c0 + cw + window - 1 - s.start) : n
                    guard r0 < r1 else { continue }
                    let kt: UnsafePointer<Float>, vt: UnsafePointer<Float>
                    if converts {
                        Kernels.toFloat(keys + c0 * hd * precision.bytes, dtype: precision.dtype, count: cw * hd, out: keyTile)
                        Kernels.toFloat(values + c0 * hd * precision.bytes, dtype: precision.dtype, count: cw * hd, out: valueTile)
                        (kt, vt) = (UnsafePointer(keyTile), UnsafePointer(valueTile))
                    } else {
                        kt = UnsafePointer(keys.assumingMemoryBound(to: Float.self) + c0 * hd)
                        vt = UnsafePointer(values.assumingMemoryBound(to: Float.self) + c0 * hd)
                    }
                    for h in 0..<perTask {
                        let head = firstHead + h, o = outRows + head * hd
                        let m = maxima + h * n, z = sums + h * n
                        Kernels.gemm(m: r1 - r0, n: cw, k: hd, alpha: scale, a: qRows + r0 * qDim + head * hd, lda: qDim,
                                     b: kt, ldb: hd, transposeB: true, c: sc, ldc: tile)
                        for t in r0..<r1 {
                            let row = sc + (t - r0) * tile, position = s.start + t
                            let lo = max(firstVisible(position: position, layer: l), c0) - c0
                            let hi = min(position + 1, c0 + cw) - c0
                            guard lo < hi else { row.initialize(repeating: 0, count: cw); continue }
                            let corr = Kernels.softmaxFold(row + lo, hi - lo, max: &m[t], sum: &z[t])
                            row.initialize(repeating: 0, count: lo)
                            (row + hi).initialize(repeating: 0, count: cw - hi)
                            if corr != 1 {
                                let ot = o + t * qDim
                                for i in 0..<hd { ot[i] *= corr }
                            }
                        }
                        Kernels.gemm(m: r1 - r0, n: hd, k: cw, a: sc, lda: tile, b: vt, ldb: hd,
                                     transposeB: false, beta: 1, c: o + r0 * qDim, ldc: qDim)
                    }
                }
                for h in 0..<perTask {
                    let o = outRows + (firstHead + h) * hd, z = sums + h * n
                    for t in 0..<n {
                        let ot = o + t * qDim, inverse = 1 / z[t]
                        for i in 0..<hd { ot[i] *= inverse }
                    }
                }
            }
        }
    }
}
