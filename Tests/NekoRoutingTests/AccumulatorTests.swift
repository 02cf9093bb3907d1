import Foundation
import NekoJSON
import NekoRouting
import Testing

/// Sources/NekoRouting/README.md's definitions computed the slow, obvious way over tokens `range` of a trace (sets,
/// dictionaries, one pass per figure) — the accumulator must agree with it at every prefix.
struct Naive {
    let f: [LayerFigures]

    init(_ trace: RoutingTrace, _ range: Range<Int>, minCount: Int) {
        let E = trace.experts, k = trace.topK, N = range.count
        let starts = Set(trace.sequences.map(\.tokens.lowerBound))
        let pairs = range.dropFirst().filter { !starts.contains($0) }
        f = trace.moeLayers.indices.map { slot in
            func set(_ t: Int) -> Set<Int> { Set((0..<k).map { trace.expert(token: t, slot: slot, rank: $0) }) }
            func top1(_ t: Int) -> Int { trace.expert(token: t, slot: slot, rank: 0) }
            let counts = (0..<E).map { e in range.filter { set($0).contains(e) }.count }
            let load: [Double]? = N == 0 ? nil : counts.map { Double($0) / Double(N * k) }
            var entropy: Double?, vio: Double?, jain: Double?
            if let load {
                entropy = 0 - load.filter { $0 > 0 }.map { $0 * log2($0) }.reduce(0, +)
                vio = (load.max()! - 1 / Double(E)) * Double(E)
                jain = 1 / (Double(E) * load.map { $0 * $0 }.reduce(0, +))
            }
            let co = (0..<E).map { i in (0..<E).map { j in range.filter { set($0).contains(i) && set($0).contains(j) }.count } }
            var byID: [Int: [Int]] = [:]
            for t in range { byID[trace.tokenID(t), default: []].append(top1(t)) }
            let shares = byID.values.filter { $0.count >= minCount }.map { tops in
                Double(Set(tops).map { e in tops.filter { $0 == e }.count }.max()!) / Double(tops.count)
            }
            func mean(_ xs: [Double]) -> Double? { xs.isEmpty ? nil : xs.reduce(0, +) / Double(xs.count) }
            return LayerFigures(
                layer: trace.moeLayers[slot], tokens: N, pairs: pairs.count, loadCounts: counts, load: load,
                entropyBits: entropy, maxViolation: vio, jain: jain,
                repeatTop1: pairs.isEmpty ? nil : Double(pairs.filter { top1($0) == top1($0 - 1) }.count) / Double(pairs.count),
                repeatTopK: pairs.isEmpty ? nil : Double(pairs.filter { !set($0).isDisjoint(with: set($0 - 1)) }.count) / Double(pairs.count),
                coactivation: co, specialisation: mean(shares), specialisedIDs: shares.count,
                sharedGateMean: trace.hasSharedGate[slot] ? mean(range.map { Double(trace.sharedGate(token: $0, slot: slot)!) }) : nil,
                routerEntropyMean: trace.hasRouterEntropy ? mean(range.map { Double(trace.routerEntropy(token: $0, slot: slot)!) }) : nil)
        }
    }

    static func expectEqual(_ a: LayerFigures, _ b: LayerFigures, _ what: String,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.layer == b.layer && a.tokens == b.tokens && a.pairs == b.pairs, "\(what): sizes", sourceLocation: sourceLocation)
        #expect(a.loadCounts == b.loadCounts && a.coactivation == b.coactivation, "\(what): counts", sourceLocation: sourceLocation)
        #expect(a.specialisedIDs == b.specialisedIDs, "\(what): qualifying ids", sourceLocation: sourceLocation)
        #expect(a.load == b.load, "\(what): load", sourceLocation: sourceLocation)
        let pairs: [(String, Double?, Double?)] = [
            ("entropy", a.entropyBits, b.entropyBits), ("maxvio", a.maxViolation, b.maxViolation), ("jain", a.jain, b.jain),
            ("repeat1", a.repeatTop1, b.repeatTop1), ("repeatk", a.repeatTopK, b.repeatTopK),
            ("specialisation", a.specialisation, b.specialisation),
            ("gate", a.sharedGateMean, b.sharedGateMean), ("router entropy", a.routerEntropyMean, b.routerEntropyMean),
        ]
        for (name, x, y) in pairs { expectClose(x, y, 1e-12, "\(what): \(name)", sourceLocation: sourceLocation) }
    }
}

@Suite struct AccumulatorTests {
    static let shapes: [(layers: [Int], E: Int, k: Int, gated: [Int], entropy: Bool, lengths: [Int])] = [
        ([2, 3], 8, 2, [2, 3], true, [9, 0, 14, 1, 7]),   // with an empty and a one-token sequence
        ([1, 3, 4], 5, 3, [3], false, [20]),               // top-3, one gated layer
        ([0], 1, 1, [], true, [6, 5]),                     // E = 1
        ([4, 5], 6, 1, [], false, [12, 12]),               // top-1
    ]

    @Test(arguments: 0..<4)
    func equalsTheNaiveDefinitionsAtEveryPrefix(shape: Int) throws {
        let s = Self.shapes[shape]
        let trace = try randomTrace(seed: 42 + UInt64(shape), layers: s.layers, experts: s.E, topK: s.k,
                                    gated: s.gated, entropy: s.entropy, sequenceLengths: s.lengths)
        for minCount in [1, 3] {
            var stats = RoutingStats(for: trace, minCount: minCount)
            for n in 0...trace.count {
                if n > 0 { stats.add(trace, token: n - 1) }
                let naive = Naive(trace, 0..<n, minCount: minCount)
                for (a, b) in zip(stats.layers, naive.f) { Naive.expectEqual(a, b, "prefix \(n), min \(minCount)") }
                // the whole-trace analysis of the prefix is the accumulator's, plus by_file
                var prefix = trace
                prefix.truncate(to: n)
                let report = RoutingAnalysis.analyze(prefix, minCount: minCount)
                #expect(report.layers == stats.layers && report.crossLayer == stats.crossLayer)
            }
        }
    }

    @Test func aScopeStartingMidSequencePairsOnlyItsOwnTokens() throws {
        let trace = try randomTrace(seed: 7, layers: [2, 3], experts: 8, topK: 2, gated: [2], entropy: true,
                                    sequenceLengths: [10, 15])
        // "this reply": tokens 13..<25 of the second sequence
        var reply = RoutingStats(for: trace, minCount: 2)
        reply.add(trace, tokens: 13..<25)
        let naive = Naive(trace, 13..<25, minCount: 2)
        #expect(reply.pairs == 11)
        for (a, b) in zip(reply.layers, naive.f) { Naive.expectEqual(a, b, "reply") }
        // "last token": one token, no pair
        var last = RoutingStats(for: trace)
        last.add(trace, token: 24)
        #expect(last.tokens == 1 && last.pairs == 0 && last.layers[0].repeatTop1 == nil)
        // tokens added out of order pair nothing
        var gaps = RoutingStats(for: trace)
        gaps.add(trace, token: 3)
        gaps.add(trace, token: 5)
        #expect(gaps.pairs == 0)
    }

    @Test func crossLayerEqualsNaive() throws {
        let trace = try randomTrace(seed: 9, layers: [1, 2, 5], experts: 4, topK: 2, gated: [], entropy: false,
                                    sequenceLengths: [8, 8])
        let flows = RoutingAnalysis.analyze(trace).crossLayer
        #expect(flows.map(\.from) == [1, 2] && flows.map(\.to) == [2, 5])
        for (slot, flow) in flows.enumerated() {
            var m = Array(repeating: Array(repeating: 0, count: 4), count: 4)
            for t in 0..<trace.count {
                m[trace.expert(token: t, slot: slot, rank: 0)][trace.expert(token: t, slot: slot + 1, rank: 0)] += 1
            }
            #expect(flow.counts == m)
        }
        let single = try makeTrace(layers: [3], experts: 2, topK: 1, sequences: [("s", [(1, [[0]])])])
        #expect(RoutingAnalysis.analyze(single).crossLayer.isEmpty)
    }
}
