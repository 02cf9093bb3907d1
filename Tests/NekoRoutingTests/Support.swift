import Foundation
import NekoJSON
import NekoRouting
import Testing

/// Tests/Fixtures/routing, found from this file's path.
enum Fixtures {
    static let routing = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/routing")

    static let goldens = ["neko_mini_bf16", "no_shared_no_qknorm_step2", "sharded3_bf16_normtopk"]

    static func text(_ name: String) throws -> String {
        try String(contentsOf: routing.appendingPathComponent(name), encoding: .utf8)
    }
}

/// A golden of Tests/Fixtures/routing (format: Tests/Reference/README.md, "Routing goldens").
struct Golden {
    let json: JSONValue
    let minCount: Int
    let trace: RoutingTrace
    var expected: JSONValue { json["expected"]! }

    init(_ name: String) throws {
        json = try JSONValue.parse(try Fixtures.text(name + ".json"))
        let g = json
        minCount = try #require(g["min_count"]?.int)
        let layers = try #require(ints(g["moe_layers"]))
        let experts = try #require(g["experts"]?.int)
        let topK = try #require(g["top_k"]?.int)
        let gated = try #require(ints(g["gated_layers"]))
        var trace = try RoutingTrace(moeLayers: layers, experts: experts, topK: topK, gatedLayers: gated,
                                     hasRouterEntropy: true)
        let routing = try #require(g["routing"]?.array)
        var t = 0
        let sequences = try #require(g["sequences"]?.array)
        for s in sequences {
            let name = try #require(s["name"]?.string)
            let ids = try #require(ints(s["ids"]))
            trace.beginSequence(named: name)
            for id in ids {
                let entry = try #require(routing[t].array)
                let records = entry.map { r in
                    LayerRouting(experts: r["experts"]!.array!.compactMap(\.int),
                                 weights: r["weights"]!.array!.compactMap(\.double).map(Float.init),
                                 sharedGate: r["shared_gate"]?.double.map(Float.init),
                                 routerEntropy: r["router_entropy"]?.double.map(Float.init))
                }
                try trace.append(tokenID: id, layers: records)
                t += 1
            }
        }
        #expect(t == routing.count, "every routing entry belongs to a sequence")
        self.trace = trace
    }
}

/// The integers of a JSON array (nil when it is not one of integers only).
func ints(_ v: JSONValue?) -> [Int]? {
    guard let a = v?.array else { return nil }
    let xs = a.compactMap { $0.int }
    return xs.count == a.count ? xs : nil
}

/// A trace from compact literals: per token (id, per layer [experts]); weights descend from 0.9
/// in steps of 0.1 unless given.
func makeTrace(layers: [Int], experts: Int, topK: Int, gated: [Int] = [], entropy: Bool = false,
               sequences: [(String, [(id: Int, experts: [[Int]])])]) throws -> RoutingTrace {
    var trace = try RoutingTrace(moeLayers: layers, experts: experts, topK: topK, gatedLayers: gated,
                                 hasRouterEntropy: entropy)
    for (name, tokens) in sequences {
        trace.beginSequence(named: name)
        for (n, tok) in tokens.enumerated() {
            let records = tok.experts.enumerated().map { slot, es in
                LayerRouting(experts: es, weights: es.indices.map { 0.9 - 0.1 * Float($0) },
                             sharedGate: gated.contains(layers[slot]) ? Float(n % 10) / 10 : nil,
                             routerEntropy: entropy ? Float(n % 3) : nil)
            }
            try trace.append(tokenID: tok.id, layers: records)
        }
    }
    return trace
}

/// A small deterministic generator (SplitMix64), so random traces are the same on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A random trace: `sequenceLengths` sequences (0 allowed), k distinct experts per layer drawn
/// with a skew (so some repeat and one may never be chosen), ids from a small vocabulary.
func randomTrace(seed: UInt64, layers: [Int], experts E: Int, topK k: Int, gated: [Int], entropy: Bool,
                 sequenceLengths: [Int], vocab: Int = 7) throws -> RoutingTrace {
    var rng = SplitMix(state: seed)
    var trace = try RoutingTrace(moeLayers: layers, experts: E, topK: k, gatedLayers: gated, hasRouterEntropy: entropy)
    for (s, n) in sequenceLengths.enumerated() {
        trace.beginSequence(named: "s\(s)")
        for _ in 0..<n {
            let records = layers.map { layer -> LayerRouting in
                var pool = Array(0..<E)
                var chosen: [Int] = []
                for _ in 0..<k {
                    // skewed: the smaller remaining index is likelier
                    let a = Int.random(in: 0..<pool.count, using: &rng), b = Int.random(in: 0..<pool.count, using: &rng)
                    chosen.append(pool.remove(at: min(a, b)))
                }
                let w = (0..<k).map { Float(k - $0) / Float(k * (k + 1) / 2) }
                return LayerRouting(experts: chosen, weights: w,
                                    sharedGate: gated.contains(layer) ? Float.random(in: 0...1, using: &rng) : nil,
                                    routerEntropy: entropy ? Float.random(in: 0...3, using: &rng) : nil)
            }
            try trace.append(tokenID: Int.random(in: 0..<vocab, using: &rng), layers: records)
        }
    }
    return trace
}

/// `#expect` that two optional doubles agree to `tol` (both nil, or both close).
func expectClose(_ a: Double?, _ b: Double?, _ tol: Double = 1e-12, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    switch (a, b) {
    case (nil, nil): return
    case let (x?, y?): #expect(abs(x - y) <= tol, "\(what): \(x) vs \(y)", sourceLocation: sourceLocation)
    default: Issue.record("\(what): \(String(describing: a)) vs \(String(describing: b))", sourceLocation: sourceLocation)
    }
}
