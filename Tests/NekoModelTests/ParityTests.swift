import Foundation
import NekoKernels
@testable import NekoModel
import Testing

/// Logits are compared to the float64 PyTorch reference within 1e-3 absolute: the engine
/// computes in float32 from the same stored weights, so the only differences are float32
/// rounding and summation order (observed ≲ 1e-5 on these fixtures); 1e-3 leaves room for
/// BLAS kernels that sum in another order while still catching any real error, which moves
/// logits by ≳ 1e-2. Routing weights: 1e-5. The fixtures were generated with top-2 logit and
/// k/(k+1) router margins of ≥ 1e-3, so greedy tokens and expert choices must be identical.
let logitTolerance = 1e-3

@Suite struct ParityTests {
    /// One per test: tests run in parallel and a context's scratch memory is not shareable.
    let context = ForwardContext(threads: 2)

    func load(_ name: String) throws -> (LanguageModel, Expected) {
        (try LanguageModel.load(directory: Fixtures.path(name)), try Fixtures.expected(name))
    }

    func maxDiff(_ a: ArraySlice<Float>, _ b: [Double]) -> Double {
        #expect(a.count == b.count)
        return zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
    }

    @Test func fixturesArePresent() {
        #expect(Fixtures.engineModels.count >= 8, "\(Fixtures.engineModels)")
    }

    /// One batched forward over the whole prompt: logits at every position.
    @Test(arguments: Fixtures.engineModels)
    func prefillLogitsMatchReference(name: String) throws {
        let (model, expected) = try load(name)
        let vocab = model.config.vocabSize
        let logits = try model.forward(expected.promptIds, cache: try model.makeCache(capacity: 64),
                                       logits: .all, context: context)
        var worst = 0.0
        for (t, row) in expected.logits.enumerated() {
            let d = maxDiff(logits[t * vocab..<(t + 1) * vocab], row)
            worst = max(worst, d)
            #expect(d <= logitTolerance, "\(name) position \(t): max |Δlogit| \(d)")
        }
        print("parity \(name): max |Δlogit| \(worst) over \(expected.logits.count) positions")
    }

    /// The prompt fed `chunk` tokens a pass into one cache of `precision`: per position, the max
    /// |Δlogit| from the reference. The cache must hold the whole prompt at the end.
    func chunkedDifferences(_ model: LanguageModel, _ expected: Expected, chunk: Int,
                            precision: KVPrecision = .float32) throws -> [Double] {
        let vocab = model.config.vocabSize
        let cache = try model.makeCache(capacity: 64, precision: precision)
        var differences: [Double] = []
        var t = 0
        while t < expected.promptIds.count {
            let end = min(expected.promptIds.count, t + chunk)
            let logits = try model.forward(Array(expected.promptIds[t..<end]), cache: cache, logits: .all, context: context)
            for p in t..<end { differences.append(maxDiff(logits[(p - t) * vocab..<(p - t + 1) * vocab], expected.logits[p])) }
            t = end
        }
        #expect(cache.length == expected.promptIds.count)
        return differences
    }

    /// Token-by-token decode with the KV cache, and prefill in uneven chunks, give the same logits.
    @Test(arguments: Fixtures.engineModels)
    func decodeAndChunkedPrefillMatchReference(name: String) throws {
        let (model, expected) = try load(name)
        for chunk in [1, 3] {
            for (p, d) in try chunkedDifferences(model, expected, chunk: chunk).enumerated() {
                #expect(d <= logitTolerance, "\(name) chunk \(chunk) position \(p): \(d)")
            }
        }
    }

    /// With a 16-bit KV cache (the chat's default), decode and chunked prefill stay within the
    /// cache's rounding of the reference: IEEE half keeps 11 significant bits, bfloat16 8, so
    /// keys and values move by ≤ 2⁻¹¹ and ≤ 2⁻⁸ of themselves; on these fixtures the logits moved
    /// by at most 0.013 (half) and 0.13 (bfloat16). The tolerances are about twice that: an error
    /// in the cache (a wrong row, head or conversion) moves logits by whole units. And they must
    /// move at all: a cache that kept float32 would pass the bound unnoticed.
    @Test(arguments: Fixtures.engineModels, [KVPrecision.float16, .bfloat16])
    func sixteenBitCachesStayNearTheReference(name: String, precision: KVPrecision) throws {
        let (model, expected) = try load(name)
        let tolerance = precision == .float16 ? 3e-2 : 0.3
        var worst = 0.0, worstExact = 0.0
        for chunk in [1, 3, 64] {
            for (p, d) in try chunkedDifferences(model, expected, chunk: chunk, precision: precision).enumerated() {
                worst = max(worst, d)
                #expect(d <= tolerance, "\(name) \(precision) chunk \(chunk) position \(p): \(d)")
            }
            worstExact = max(worstExact, try chunkedDifferences(model, expected, chunk: chunk).max() ?? 0)
        }
        #expect(worst > worstExact, "\(name) \(precision): no further from the reference than float32 (\(worst))")
        print("kv \(precision.rawValue) \(name): max |Δlogit| \(worst) (float32 cache: \(worstExact))")
    }

    /// Greedy continuation (ignoring EOS) and the routing of every token fed through the model.
    @Test(arguments: Fixtures.engineModels)
    func greedyAndRoutingAreIdentical(name: String) throws {
        let (model, expected) = try load(name)
        let cache = try model.makeCache(capacity: 64)
        let routing = model.makeRoutingRecord()
        var logits = try model.forward(expected.promptIds, cache: cache, routing: routing, context: context)
        var generated: [Int] = []
        while generated.count < expected.greedyIds.count {
            var best = 0
            for i in logits.indices where logits[i] > logits[best] { best = i }
            generated.append(best)
            if generated.count == expected.greedyIds.count { break }
            logits = try model.forward([best], cache: cache, routing: routing, context: context)
        }
        #expect(generated == expected.greedyIds, "\(name)")
        #expect(routing.moeLayers == expected.moeLayers)
        #expect(routing.tokens == expected.routing.count)
        for (t, layers) in expected.routing.enumerated() where t < routing.tokens {
            for (slot, route) in layers.enumerated() {
                let choice = routing.choice(token: t, slot: slot)
                #expect(routing.moeLayers[slot] == route.layer)
                #expect(choice.experts == route.experts, "\(name) token \(t) layer \(route.layer)")
                let d = zip(choice.weights, route.weights).map { abs(Double($0) - $1) }.max() ?? 0
                #expect(d < 1e-5, "\(name) token \(t) layer \(route.layer) weights \(choice.weights) vs \(route.weights)")
            }
        }
    }

    /// A router whose probabilities tie exactly picks the lower expert indices, in order.
    @Test func exactTiesGoToLowerExpertIndices() throws {
        let tied = try Fixtures.engineModels.filter { try !Fixtures.expected($0).tiedRouterLayers.isEmpty }
        #expect(!tied.isEmpty)
        for name in tied {
            let (model, expected) = try load(name)
            let routing = model.makeRoutingRecord()
            _ = try model.forward(expected.promptIds, cache: try model.makeCache(capacity: 64),
                                  routing: routing, context: context)
            for layer in expected.tiedRouterLayers {
                let slot = routing.moeLayers.firstIndex(of: layer)!
                for t in 0..<routing.tokens {
                    let choice = routing.choice(token: t, slot: slot)
                    #expect(choice.experts == Array(0..<model.config.numExpertsPerTok))
                    #expect(Set(choice.weights).count == 1)
                }
            }
        }
    }

    /// Weight matrices point into the memory-mapped files in their stored dtype: nothing is copied.
    @Test(arguments: Fixtures.engineModels)
    func weightsAreUsedInPlace(name: String) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(name))
        var matrices = [model.weights.embed, model.weights.lmHead]
        for layer in model.weights.layers {
            matrices += [layer.attention.q, layer.attention.k, layer.attention.v, layer.attention.o]
            switch layer.feedForward {
            case let .dense(m): matrices += [m.gate, m.up, m.down]
            case let .moe(m): matrices += [m.router] + m.experts.flatMap { [$0.gate, $0.up, $0.down] }
            }
        }
        for m in matrices {
            #expect(model.files.contains { $0.contains(m.base) && $0.contains(m.base + m.rows * m.cols * m.dtype.size - 1) })
            #expect(m.dtype == model.dtype)
        }
    }

    /// The loader's parameter count equals the count from the config (optional parts as found).
    @Test(arguments: Fixtures.engineModels)
    func parameterCountMatchesConfig(name: String) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(name))
        let w = model.weights
        let hasShared = w.layers.contains { if case let .moe(m) = $0.feedForward { m.shared != nil } else { false } }
        let hasQKNorm = w.layers.first?.attention.qNorm != nil
        let counted = model.config.parameterCount(qkNorm: hasQKNorm, sharedExpert: hasShared, tied: w.tied)
        #expect(model.parameterCount == counted.total)
        #expect(model.activeParameterCount == counted.active)
    }
}
