import Foundation
import NekoKernels
@testable import NekoModel
import Testing

/// Q8 and Q4 models against BF16: logits of the demo model over held-out text (top-1 agreement,
/// KL divergence, perplexity), decode against prefill, and every matrix really packed.
@Suite struct QuantizedModelTests {
    static let demo = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/nekochat/Resources/DemoModel").path

    struct Score: Decodable { var ids: [Int] }

    func heldOut() throws -> [Int] {
        let url = Fixtures.root.appendingPathComponent("demo/expected_score.json")
        return try JSONDecoder().decode(Score.self, from: try Data(contentsOf: url)).ids
    }

    func logSoftmax(_ x: ArraySlice<Float>) -> [Double] {
        let m = Double(x.max()!)
        let lz = m + log(x.reduce(0.0) { $0 + exp(Double($1) - m) })
        return x.map { Double($0) - lz }
    }

    /// (top-1 agreement, mean KL(bf16 ‖ q), perplexity of q, perplexity of bf16) over the ids.
    func compare(_ format: WeightFormat) throws -> (top1: Double, kl: Double, ppl: Double, pplBF16: Double) {
        let ids = try heldOut()
        let ctx = ForwardContext(threads: 2)
        let bf16 = try LanguageModel.load(directory: Self.demo)
        let quant = try LanguageModel.load(directory: Self.demo, weights: format, cache: .disabled)
        let a = try bf16.forward(ids, cache: try bf16.makeCache(capacity: ids.count), logits: .all, context: ctx)
        let b = try quant.forward(ids, cache: try quant.makeCache(capacity: ids.count), logits: .all, context: ctx)
        let vocab = bf16.config.vocabSize
        var agree = 0, kl = 0.0, nllA = 0.0, nllB = 0.0
        for t in ids.indices {
            let la = logSoftmax(a[t * vocab..<(t + 1) * vocab]), lb = logSoftmax(b[t * vocab..<(t + 1) * vocab])
            if la.indices.max(by: { la[$0] < la[$1] }) == lb.indices.max(by: { lb[$0] < lb[$1] }) { agree += 1 }
            kl += la.indices.reduce(0.0) { $0 + exp(la[$1]) * (la[$1] - lb[$1]) }
            if t + 1 < ids.count { nllA -= la[ids[t + 1]]; nllB -= lb[ids[t + 1]] }
        }
        let n = Double(ids.count)
        return (Double(agree) / n, kl / n, exp(nllB / (n - 1)), exp(nllA / (n - 1)))
    }

    @Test func q8IsCloseToBF16OnTheDemoModel() throws {
        let r = try compare(.q8)
        print("demo model q8 vs bf16 over 289 held-out tokens: top-1 \(r.top1), KL \(r.kl), perplexity \(r.ppl) vs \(r.pplBF16)")
        #expect(r.top1 >= 0.97)
        #expect(r.kl < 0.002)
        #expect(abs(r.ppl / r.pplBF16 - 1) < 0.005)
    }

    @Test func q4IsCloseToBF16OnTheDemoModel() throws {
        let r = try compare(.q4)
        print("demo model q4 vs bf16 over 289 held-out tokens: top-1 \(r.top1), KL \(r.kl), perplexity \(r.ppl) vs \(r.pplBF16)")
        #expect(r.top1 >= 0.85)
        #expect(r.kl < 0.05)
        #expect(abs(r.ppl / r.pplBF16 - 1) < 0.05)
    }

    /// Token-by-token decode and one batched prefill give the same logits with packed weights, for
    /// NekoMind and for every other family (each fixture made by transformers' own class), over
    /// the half-precision KV cache these weights are run with (the chat's default). Both paths
    /// then attend over the same rounded keys; a float32 cache leaves the two attention kernels'
    /// last-bit differences in, which on these random tiny models can flip one activation's int8
    /// rounding or a near-tied expert and move later logits by ~0.1.
    @Test(arguments: [WeightFormat.q8, .q4], ["neko_mini_bf16", "hf_olmoe", "hf_mixtral_swa", "hf_granitemoe", "hf_qwen3_moe"])
    func decodeMatchesPrefill(format: WeightFormat, fixture: String) throws {
        let expected = try Fixtures.expected(fixture)
        let model = try LanguageModel.load(directory: Fixtures.path(fixture), weights: format, cache: .disabled)
        let ctx = ForwardContext(threads: 2)
        let vocab = model.config.vocabSize
        let all = try model.forward(expected.promptIds, cache: try model.makeCache(capacity: 64, precision: .float16),
                                    logits: .all, context: ctx)
        let cache = try model.makeCache(capacity: 64, precision: .float16)
        for (t, id) in expected.promptIds.enumerated() {
            let one = try model.forward([id], cache: cache, context: ctx)
            let d = zip(one, all[t * vocab..<(t + 1) * vocab]).map { abs($0 - $1) }.max() ?? 0
            #expect(d < 1e-4, "\(fixture) \(format) position \(t): \(d)")
        }
        // Against the float64 reference: quantisation error only. These random weights (N(0, 0.2²),
        // logits about ±15) are the worst case for it; the demo model tests measure real quality.
        // Random tiny MoE models also flip expert choices under quantisation, which moves some logits
        // by several units; so the bound is on the correlation with the reference's logits.
        var worst = 0.0
        var got: [Double] = [], want: [Double] = []
        for (t, row) in expected.logits.enumerated() {
            for (i, w) in row.enumerated() {
                worst = max(worst, abs(Double(all[t * vocab + i]) - w))
                got.append(Double(all[t * vocab + i]))
                want.append(w)
            }
        }
        let r = correlation(got, want)
        #expect(r > (format == .q8 ? 0.98 : 0.9), "\(fixture) \(format): correlation with the reference \(r)")
        #expect(worst > 1e-4, "\(fixture) \(format): the logits should carry quantisation error")
        print("\(fixture) \(format): max |Δlogit| against the bf16 reference \(worst), correlation \(r)")
    }

    func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = Double(a.count), ma = a.reduce(0, +) / n, mb = b.reduce(0, +) / n
        var ab = 0.0, aa = 0.0, bb = 0.0
        for (x, y) in zip(a, b) { ab += (x - ma) * (y - mb); aa += (x - ma) * (x - ma); bb += (y - mb) * (y - mb) }
        return ab / (aa * bb).squareRoot()
    }

    @Test(arguments: [WeightFormat.q8, .q4])
    func everyLargeMatrixIsPacked(format: WeightFormat) throws {
        let model = try LanguageModel.load(directory: Fixtures.path("hf_qwen2_moe"), weights: format, cache: .disabled)
        let packed: MatrixFormat = format == .q8 ? .q8 : .q4
        var matrices = [model.weights.lmHead]
        for layer in model.weights.layers {
            matrices += [layer.attention.q, layer.attention.k, layer.attention.v, layer.attention.o]
            switch layer.feedForward {
            case let .dense(m): matrices += [m.gate, m.up, m.down]
            case let .moe(m):
                matrices += m.experts.flatMap { [$0.gate, $0.up, $0.down] }
                if let s = m.shared { matrices += [s.gate, s.up, s.down] }
                #expect(!m.router.format.isPacked)
            }
        }
        #expect(matrices.allSatisfy { $0.format == packed })
        #expect(!model.weights.embed.format.isPacked)
        #expect(model.weightFormat == format)
        #expect(model.activeWeightBytes < (try LanguageModel.load(directory: Fixtures.path("hf_qwen2_moe"))).activeWeightBytes)
    }
}
