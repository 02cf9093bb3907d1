import Foundation
import NekoKernels
@testable import NekoModel
import Testing

/// The named intermediates of ForwardContext.trace against the float64 reference's dump of the
/// same names (Tests/Reference/make_trace_fixture.py → Tests/Fixtures/trace/), layer by layer.
@Suite struct TraceTests {
    struct Dump: Decodable {
        var ids: [Int]
        var values: [String: [String: [[Double]]]]
    }

    static let fixtures = ["neko_mini_bf16", "hf_qwen2_moe", "no_shared_no_qknorm_step2"]

    func dump(_ name: String) throws -> Dump {
        let url = Fixtures.root.appendingPathComponent("trace/\(name).json")
        return try JSONDecoder().decode(Dump.self, from: try Data(contentsOf: url))
    }

    /// name → layer → values (one call per name and layer in a single forward pass).
    func traced(_ model: LanguageModel, _ ids: [Int]) throws -> [String: [Int: [Float]]] {
        let ctx = ForwardContext(threads: 2)
        var seen: [String: [Int: [Float]]] = [:]
        ctx.trace = { name, layer, values in
            precondition(seen[name]?[layer] == nil, "\(name) layer \(layer) reported twice")
            seen[name, default: [:]][layer] = Array(values)
        }
        _ = try model.forward(ids, cache: try model.makeCache(capacity: 64), logits: .all, context: ctx)
        return seen
    }

    @Test(arguments: fixtures)
    func intermediatesMatchTheReference(fixture: String) throws {
        let reference = try dump(fixture)
        let model = try LanguageModel.load(directory: Fixtures.path(fixture))
        let got = try traced(model, reference.ids)
        #expect(Set(got.keys) == Set(reference.values.keys), "\(fixture): names")
        for (name, layers) in reference.values {
            #expect(Set(got[name, default: [:]].keys.map(String.init)) == Set(layers.keys), "\(fixture) \(name): layers")
            for (layer, rows) in layers {
                guard let values = got[name]?[Int(layer)!] else { continue }
                let want = rows.flatMap { $0 }
                #expect(values.count == want.count, "\(fixture) \(name) layer \(layer): \(values.count) values, reference \(want.count)")
                let worst = zip(values, want).map { abs(Double($0) - $1) / (1 + abs($1)) }.max() ?? 0
                #expect(worst < 1e-4, "\(fixture) \(name) layer \(layer): max relative difference \(worst)")
            }
        }
    }

    /// The routing record's shared gate and router entropy are the traced gate and the entropy
    /// of the reference's router probabilities.
    @Test(arguments: fixtures)
    func routingRecordCarriesGateAndEntropy(fixture: String) throws {
        let reference = try dump(fixture)
        let model = try LanguageModel.load(directory: Fixtures.path(fixture))
        let routing = model.makeRoutingRecord()
        _ = try model.forward(reference.ids, cache: try model.makeCache(capacity: 64), routing: routing,
                              context: ForwardContext(threads: 2))
        #expect(routing.tokens == reference.ids.count)
        for (slot, layer) in routing.moeLayers.enumerated() {
            let probs = try #require(reference.values["router_probs"]?[String(layer)])
            let gates = reference.values["shared_gate"]?[String(layer)]
            for t in 0..<routing.tokens {
                let choice = routing.choice(token: t, slot: slot)
                let entropy = -probs[t].filter { $0 > 0 }.reduce(0.0) { $0 + $1 * log2($1) }
                #expect(abs(Double(choice.routerEntropy) - entropy) < 1e-5, "\(fixture) L\(layer) t\(t) entropy")
                #expect(choice.routerEntropy == routing.routerEntropy(token: t, slot: slot))
                if let gates {
                    let gate = try #require(choice.sharedGate)
                    #expect(abs(Double(gate) - gates[t][0]) < 1e-5, "\(fixture) L\(layer) t\(t) gate")
                } else {
                    #expect(choice.sharedGate == nil)
                }
            }
        }
    }
}
