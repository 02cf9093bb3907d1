#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NekoJSON

/// One sequence's expert loads (Mixtral's per-domain shares when each file is one domain).
public struct SequenceLoad: Sendable, Equatable {
    /// The sequence's name (the `--file` as given, a message's name).
    public var name: String
    public var tokens: Int
    /// Per MoE layer: E loads, nil when the sequence has no token.
    public var load: [[Double]?]

    public init(name: String, tokens: Int, load: [[Double]?]) {
        self.name = name
        self.tokens = tokens
        self.load = load
    }
}

/// Everything `nekochat routing --json` prints for a trace (Sources/NekoRouting/README.md).
public struct RoutingReport: Sendable, Equatable {
    public var tokens: Int
    public var experts: Int
    public var topK: Int
    /// The `minCount` that `specialisation` used (not part of the JSON).
    public var minCount: Int
    public var layers: [LayerFigures]
    public var crossLayer: [CrossLayerFlow]
    public var byFile: [SequenceLoad]

    /// The hot set: the fewest (MoE layer, expert) slots whose routed tokens cover 50, 90 and
    /// 99 % of all routed (token, layer, rank) assignments — what an expert cache must hold.
    public var hotSet: (slots: Int, cover50: Int, cover90: Int, cover99: Int) {
        var counts = layers.flatMap(\.loadCounts)
        counts.sort(by: >)
        let total = counts.reduce(0, +)
        func cover(_ p: Double) -> Int {
            guard total > 0 else { return 0 }
            var sum = 0
            for (i, c) in counts.enumerated() {
                sum += c
                if Double(sum) >= p * Double(total) - 1e-9 { return i + 1 }
            }
            return counts.count
        }
        return (counts.count, cover(0.5), cover(0.9), cover(0.99))
    }

    /// Sources/NekoRouting/README.md's document, keys in its order: `tokens`, `experts`, `top_k`, `layers`,
    /// `cross_layer`, `by_file`. nil figures are `null`.
    public var json: JSONValue {
        func number(_ x: Double?) -> JSONValue { x.map(JSONValue.double) ?? .null }
        func numbers(_ xs: [Double]?) -> JSONValue { xs.map { .array($0.map(JSONValue.double)) } ?? .null }
        func matrix(_ m: [[Int]]) -> JSONValue { .array(m.map { .array($0.map(JSONValue.int)) }) }
        return .object([
            ("tokens", .int(tokens)),
            ("experts", .int(experts)),
            ("top_k", .int(topK)),
            ("layers", .array(layers.map { f in
                .object([
                    ("layer", .int(f.layer)),
                    ("load", numbers(f.load)),
                    ("entropy_bits", number(f.entropyBits)),
                    ("max_violation", number(f.maxViolation)),
                    ("jain", number(f.jain)),
                    ("repeat_top1", number(f.repeatTop1)),
                    ("repeat_topk", number(f.repeatTopK)),
                    ("coactivation", matrix(f.coactivation)),
                    ("specialisation", number(f.specialisation)),
                    ("shared_gate_mean", number(f.sharedGateMean)),
                    ("router_entropy_mean", number(f.routerEntropyMean)),
                ])
            })),
            ("cross_layer", .array(crossLayer.map {
                .object([("from", .int($0.from)), ("to", .int($0.to)), ("counts", matrix($0.counts))])
            })),
            ("by_file", .array(byFile.map { s in
                .object([("file", .string(s.name)), ("tokens", .int(s.tokens)),
                         ("load", .array(s.load.map(numbers)))])
            })),
            ("hot_set", .object([("slots", .int(hotSet.slots)), ("cover_50", .int(hotSet.cover50)),
                                 ("cover_90", .int(hotSet.cover90)), ("cover_99", .int(hotSet.cover99))])),
        ])
    }
}

/// The analyses of Sources/NekoRouting/README.md: the whole-trace report and the formulas it is made of.
public enum RoutingAnalysis {
    /// Every figure of Sources/NekoRouting/README.md over the whole trace: the per-layer figures and cross-layer
    /// flows pool all sequences (pairs never cross a boundary); `byFile` gives each sequence's
    /// loads. `minCount` (≥ 1) is the occurrences a token id needs for `specialisation`.
    public static func analyze(_ trace: RoutingTrace, minCount: Int = 10) -> RoutingReport {
        var stats = RoutingStats(for: trace, minCount: minCount)
        stats.add(trace, tokens: 0..<trace.count)
        let L = trace.moeLayers.count, E = trace.experts
        let byFile = trace.sequences.map { s in
            var counts = Array(repeating: 0, count: L * E)   // (L, E)
            for t in s.tokens {
                for slot in 0..<L {
                    for r in 0..<trace.topK { counts[slot * E + trace.expert(token: t, slot: slot, rank: r)] += 1 }
                }
            }
            return SequenceLoad(name: s.name, tokens: s.tokens.count, load: (0..<L).map {
                load(counts: Array(counts[($0 * E)..<($0 * E + E)]), tokens: s.tokens.count, topK: trace.topK)
            })
        }
        return RoutingReport(tokens: trace.count, experts: E, topK: trace.topK, minCount: minCount,
                             layers: stats.layers, crossLayer: stats.crossLayer, byFile: byFile)
    }

    /// load[e] = counts[e] / (N·k); nil when N = 0.
    public static func load(counts: [Int], tokens: Int, topK: Int) -> [Double]? {
        guard tokens > 0 else { return nil }
        let total = Double(tokens * topK)
        return counts.map { Double($0) / total }
    }

    /// −Σ load·log2 load in bits, with 0·log 0 = 0.
    public static func entropyBits(_ load: [Double]) -> Double {
        var sum = 0.0
        for l in load where l > 0 { sum += l * log2(l) }
        return 0 - sum   // not −sum: one expert taking all gives 0, not −0
    }

    /// DeepSeek's MaxVio: (max load − 1/E)·E; 0 when perfectly even.
    public static func maxViolation(_ load: [Double]) -> Double {
        let E = Double(load.count)
        return ((load.max() ?? 0) - 1 / E) * E
    }

    /// Jain's fairness index 1 / (E·Σ load²): 1 when even, 1/E when one expert takes all.
    public static func jain(_ load: [Double]) -> Double {
        1 / (Double(load.count) * load.reduce(0) { $0 + $1 * $1 })
    }

    /// repeat_top1 of routing at random: 1/E.
    public static func randomRepeatTop1(experts: Int) -> Double { 1 / Double(experts) }

    /// repeat_topk of routing at random: 1 − C(E−k, k) / C(E, k), the chance that two random
    /// k-sets of E experts share one (1 when 2k > E).
    public static func randomRepeatTopK(experts E: Int, topK k: Int) -> Double {
        // C(E−k, k) / C(E, k) = Π_{i<k} (E − k − i) / (E − i)
        var disjoint = 1.0
        for i in 0..<k {
            let a = E - k - i
            guard a > 0 else { return 1 }
            disjoint *= Double(a) / Double(E - i)
        }
        return 1 - disjoint
    }
}
