import Foundation
import NekoKernels
@testable import NekoModel
import Testing

/// `decode(tokens:caches:routing:)` runs N sequences in one pass; each must get what N separate
/// single-sequence decodes give (to float tolerance), with its own cache and routing.
@Suite struct BatchedDecodeTests {
    func prefilled(_ model: LanguageModel, _ prompts: [[Int]], ctx: ForwardContext) throws -> ([KVCache], [RoutingRecord], [Int]) {
        var caches: [KVCache] = [], records: [RoutingRecord] = [], next: [Int] = []
        for p in prompts {
            let cache = try model.makeCache(capacity: 64), record = model.makeRoutingRecord()
            let logits = try model.forward(p, cache: cache, routing: record, context: ctx)
            caches.append(cache)
            records.append(record)
            next.append(logits.indices.max { logits[$0] < logits[$1] }!)
        }
        return (caches, records, next)
    }

    @Test(arguments: ["neko_mini_bf16", "sharded3_bf16_normtopk", "f32_attn_bias_untied", "dense_only_f16"],
          [WeightFormat.bf16, .q8])
    func batchedEqualsSeparate(fixture: String, weights: WeightFormat) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(fixture), weights: weights, cache: .disabled)
        let ctx = ForwardContext(threads: 2)
        let vocab = model.config.vocabSize
        let prompts = [[1, 5, 9, 2], [3], [7, 7, 1, 4, 8, 2, 6], [2, 11]].map { $0.map { $0 % vocab } }
        let (batchCaches, batchRecords, first) = try prefilled(model, prompts, ctx: ctx)
        let (soloCaches, soloRecords, _) = try prefilled(model, prompts, ctx: ctx)
        var tokens = first
        for step in 0..<4 {
            let batched = try model.decode(tokens: tokens, caches: batchCaches, routing: batchRecords, context: ctx)
            var next: [Int] = []
            for i in prompts.indices {
                let solo = try model.forward([tokens[i]], cache: soloCaches[i], routing: soloRecords[i], context: ctx)
                let d = zip(batched[i], solo).map { abs($0 - $1) }.max() ?? 0
                #expect(d < 1e-4, "\(fixture) \(weights) step \(step) sequence \(i): max |Δlogit| \(d)")
                #expect(batchCaches[i].length == soloCaches[i].length)
                next.append(solo.indices.max { solo[$0] < solo[$1] }!)
            }
            tokens = next
        }
        for i in prompts.indices {
            #expect(batchRecords[i].tokens == soloRecords[i].tokens)
            for t in 0..<soloRecords[i].tokens {
                for slot in soloRecords[i].moeLayers.indices {
                    let a = batchRecords[i].choice(token: t, slot: slot), b = soloRecords[i].choice(token: t, slot: slot)
                    #expect(a.experts == b.experts, "\(fixture) sequence \(i) token \(t)")
                    #expect(zip(a.weights, b.weights).allSatisfy { abs($0 - $1) < 1e-5 })
                }
            }
        }
    }

    @Test func badBatchesAreErrors() throws {
        let model = try LanguageModel.load(directory: Fixtures.path("neko_mini_bf16"))
        let ctx = ForwardContext(threads: 2)
        let a = try model.makeCache(capacity: 4), full = try model.makeCache(capacity: 1)
        _ = try model.forward([1], cache: full, context: ctx)
        #expect(throws: ModelError.self) { try model.decode(tokens: [1, 2], caches: [a], routing: [], context: ctx) }
        #expect(throws: ModelError.self) { try model.decode(tokens: [1, 2], caches: [a, a], routing: [], context: ctx) }
        #expect(throws: ModelError.self) { try model.decode(tokens: [1], caches: [full], routing: [], context: ctx) }
        #expect(throws: ModelError.self) { try model.decode(tokens: [100_000], caches: [a], routing: [], context: ctx) }
        #expect(try model.decode(tokens: [], caches: [], routing: [], context: ctx).isEmpty)
        #expect(a.length == 0)
    }
}
