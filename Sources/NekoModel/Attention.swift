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

    /// Several rows of one sequence (prefill): per head, S = q·kᵀ (rows, context) and
    /// out = softmax(S)·v through single-threaded sgemm, spread over the pool by KV head (a
    /// 16-bit cache's rows converted once for the query heads that share them) or, with more
    /// threads than KV heads, by query head.
    func attendRows(_ s: Segment, layer l: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                    ctx: ForwardContext) {
        let hd = config.headDim, heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, group = heads / kvHeads
        let n = s.rows.count, total = s.start + n, scale = attentionScale
        let qRows = q + s.rows.lowerBound * qDim, outRows = out + s.rows.lowerBound * qDim
        let converts = s.cache.precision != .float32
        let byKVHead = ctx.pool.threads <= kvHeads
        // Per thread: scores (n, total), then for a 16-bit cache K and V of one head as float32
        // (total, headDim) each.
        let perThread = n * total + (converts ? 2 * total * hd : 0)
        let scratch = ctx.scores.reserve(ctx.pool.threads * perThread)
        ctx.pool.parallelChunks(byKVHead ? kvHeads : heads) { worker, begin, end in
            let sc = scratch + worker * perThread
            for task in begin..<end {
                let kvHead = byKVHead ? task : task / group
                let keys = s.cache.floatRows(layer: l, head: kvHead, values: false, count: total, scratch: sc + n * total)
                let values = s.cache.floatRows(layer: l, head: kvHead, values: true, count: total,
                                               scratch: sc + n * total + total * hd)
                for head in byKVHead ? kvHead * group..<(kvHead + 1) * group : task..<task + 1 {
                    Kernels.gemm(m: n, n: total, k: hd, alpha: scale, a: qRows + head * hd, lda: qDim,
                                 b: keys, ldb: hd, transposeB: true, c: sc, ldc: total)
                    for t in 0..<n {
                        // Keys first ..< visible: causal, and inside the sliding window where there is one.
                        let visible = s.start + t + 1, first = firstVisible(position: s.start + t, layer: l)
                        let row = sc + t * total
                        Kernels.softmax(row + first, visible - first)
                        row.initialize(repeating: 0, count: first)
                        (row + visible).initialize(repeating: 0, count: total - visible)
                    }
                    Kernels.gemm(m: n, n: hd, k: total, a: sc, lda: total, b: values, ldb: hd,
                                 transposeB: false, c: outRows + head * hd, ldc: qDim)
                }
            }
        }
    }
}
