import Foundation
@testable import NekoChat
import NekoJSON
import NekoModel
import Testing

/// `routing ablate` against ablation.json (Tests/Reference/make_intervention_fixtures.py:
/// nekomind_ref.py masks each expert, and drops each layer's shared expert, in float64).
@Suite struct AblationTests {
    struct Reference: Decodable {
        struct Row: Decodable { var layer: Int; var expert: Int; var mean_nll: Double; var delta: Double; var share: Double; var saliency: Double }
        struct Shared: Decodable { var layer: Int; var mean_nll: Double; var delta: Double }
        var prompt_ids: [Int]
        var tokens: Int
        var baseline_mean_nll: Double
        var rows: [Row]
        var shared: [Shared]
    }

    @Test(arguments: ["neko_mini_bf16", "sharded3_bf16_normtopk"])
    func everyRowIsTheReferences(name: String) throws {
        let dir = EngineFixtures.path(name)
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/ablation.json")))
        let model = try LanguageModel.load(directory: dir)
        var calls: [(Int, Int)] = []
        let report = try Ablation.run(model: model, sequences: [ref.prompt_ids], context: ForwardContext(threads: 2)) { calls.append(($0, $1)) }
        #expect(report.tokens == ref.tokens)
        #expect(abs(report.baselineMeanNLL - ref.baseline_mean_nll) < 1e-4)
        #expect(report.rows.count == ref.rows.count)
        for (r, want) in zip(report.rows, ref.rows) {
            #expect(r.layer == want.layer && r.expert == want.expert)
            #expect(abs(r.meanNLL - want.mean_nll) < 1e-4 && abs(r.delta - want.delta) < 1e-4, "\(name) L\(r.layer) e\(r.expert): \(r.meanNLL) vs \(want.mean_nll)")
            #expect(abs(r.share - want.share) < 1e-6)
            #expect(abs(r.saliency - want.saliency) <= 1e-4 * max(1, want.saliency), "\(name) L\(r.layer) e\(r.expert): saliency \(r.saliency) vs \(want.saliency)")
        }
        #expect(report.shared.map(\.layer) == ref.shared.map(\.layer))
        for (s, want) in zip(report.shared, ref.shared) {
            #expect(abs(s.meanNLL - want.mean_nll) < 1e-4, "\(name) no shared at L\(s.layer): \(s.meanNLL) vs \(want.mean_nll)")
        }
        #expect(calls.last.map { $0.0 == $0.1 } == true && calls.count == ref.rows.count + ref.shared.count)
        #expect(zip(calls, calls.dropFirst()).allSatisfy { $0.0 < $1.0 })
        #expect(report.csv.split(separator: "\n").first == "layer,expert,mean_nll,delta,share,saliency")
        #expect(report.csv.split(separator: "\n").count == ref.rows.count + 1)
    }

    /// Two texts pool their predictions: the mean is over both, the shares over both.
    @Test func severalTextsPoolTheirPredictions() throws {
        let model = try LanguageModel.load(directory: EngineFixtures.path("neko_mini_bf16"))
        let a = [52, 117, 36, 54, 12], b = [72, 72, 70, 92, 5, 9]
        let context = ForwardContext(threads: 2)
        let both = try Ablation.run(model: model, sequences: [a, b], layers: [3], context: context)
        let ra = try Ablation.run(model: model, sequences: [a], layers: [3], context: context)
        let rb = try Ablation.run(model: model, sequences: [b], layers: [3], context: context)
        let pooled = (ra.baselineMeanNLL * 4 + rb.baselineMeanNLL * 5) / 9
        #expect(abs(both.baselineMeanNLL - pooled) < 1e-9)
        for (x, (y, z)) in zip(both.rows, zip(ra.rows, rb.rows)) {
            #expect(abs(x.meanNLL - (y.meanNLL * 4 + z.meanNLL * 5) / 9) < 1e-9)
            #expect(abs(x.share - (y.share * 5 + z.share * 6) / 11) < 1e-9)
        }
        #expect(both.rows.map(\.layer).allSatisfy { $0 == 3 })
        #expect(throws: ChatError.self) { try Ablation.run(model: model, sequences: [a], layers: [0], context: context) }
        #expect(throws: ChatError.self) { try Ablation.run(model: model, sequences: [[5]], context: context) }
    }
}
