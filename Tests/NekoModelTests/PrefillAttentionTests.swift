import Foundation
import NekoKernels
@testable import NekoModel
import Testing

/// Prefill attention (tiles of keys, an online softmax, tiles no row sees skipped) against a
/// naive softmax(q·kᵀ)·v in double precision over the values the cache holds, at lengths that
/// span many tiles, from offsets that do not fall on a tile's edge, for each cache precision,
/// with a sliding window and without, split by KV head (2 threads) and by query head (3).
@Suite struct PrefillAttentionTests {
    struct Noise {
        var state: UInt64
        mutating func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in next() } }
    }

    /// Small tiles (many per row, cheap to check in full) and, once, the real tile size.
    static let cases: [(tile: Int, start: Int, rows: Int)] = [
        (7, 0, 45), (7, 12, 30), (16, 31, 2), (16, 5, 60), (LanguageModel.prefillKeyTile, LanguageModel.prefillKeyTile - 3, 40),
    ]

    @Test(arguments: ["neko_mini_bf16", "hf_mixtral_swa"], [KVPrecision.float32, .float16, .bfloat16])
    func tiledPrefillMatchesNaive(fixture: String, precision: KVPrecision) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(fixture))
        let config = model.config
        let hd = config.headDim, heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads
        let qDim = heads * hd, kvDim = kvHeads * hd, group = heads / kvHeads
        var noise = Noise(state: 99)
        // (cached before, rows): many tiles from 0; from inside a tile; two rows at a tile's edge.
        for (tile, start, n) in Self.cases {
            let total = start + n
            for threads in [2, 3] {
                let ctx = ForwardContext(threads: threads)
                let cache = try model.makeCache(capacity: total, precision: precision)
                for l in 0..<config.numHiddenLayers {
                    let k = noise.floats(total * kvDim).map { $0 * 3 }, v = noise.floats(total * kvDim)
                    cache.store(keys: k, values: v, layer: l, positions: 0..<total)
                }
                cache.length = total
                for l in [0, config.numHiddenLayers - 1] {
                    let q = noise.floats(n * qDim)
                    var out = [Float](repeating: .nan, count: n * qDim)
                    let segment = Segment(cache: cache, start: start, rows: 0..<n, routing: nil, firstRouted: 0)
                    q.withUnsafeBufferPointer { qp in
                        out.withUnsafeMutableBufferPointer { op in
                            model.attendRows(segment, layer: l, q: qp.baseAddress!, out: op.baseAddress!, ctx: ctx, keyTile: tile)
                        }
                    }
                    // What the cache holds, as floats.
                    var stored: [[Float]] = []  // [kvHead * 2 + (values ? 1 : 0)] = (total, hd)
                    for head in 0..<kvHeads {
                        for values in [false, true] {
                            var rows = [Float](repeating: 0, count: total * hd)
                            rows.withUnsafeMutableBufferPointer { r in
                                let p = cache.floatRows(layer: l, head: head, values: values, count: total, scratch: r.baseAddress!)
                                if p != UnsafePointer(r.baseAddress!) { r.baseAddress!.update(from: p, count: total * hd) }
                            }
                            stored.append(rows)
                        }
                    }
                    var worst: Float = 0
                    var e = [Double](repeating: 0, count: total)
                    for t in 0..<n {
                        let position = start + t, first = model.firstVisible(position: position, layer: l)
                        for h in 0..<heads {
                            let keys = stored[(h / group) * 2], values = stored[(h / group) * 2 + 1]
                            var m = -Double.infinity
                            for p in first...position {
                                var dot = 0.0
                                for i in 0..<hd { dot += Double(q[t * qDim + h * hd + i]) * Double(keys[p * hd + i]) }
                                e[p] = dot * Double(model.attentionScale)
                                m = max(m, e[p])
                            }
                            var z = 0.0
                            for p in first...position { e[p] = exp(e[p] - m); z += e[p] }
                            for i in 0..<hd {
                                var want = 0.0
                                for p in first...position { want += e[p] * Double(values[p * hd + i]) }
                                worst = max(worst, abs(out[t * qDim + h * hd + i] - Float(want / z)))
                            }
                        }
                    }
                    #expect(worst < 1e-4, "\(fixture) \(precision) tile \(tile) start \(start) rows \(n) threads \(threads) layer \(l): \(worst)")
                }
            }
        }
    }
}
