import NekoJSON
import NekoRouting
import Testing

/// Every figure of Sources/NekoRouting/README.md on cases small enough to compute by hand (the arithmetic is in the
/// comments).
@Suite struct DefinitionTests {
    /// E = 4, k = 2, MoE layers 5 and 8; expert 3 never chosen at layer 5.
    ///   t  id  layer 5   layer 8
    ///   0  7   {0,1}     {3,0}
    ///   1  7   {0,2}     {3,1}
    ///   2  9   {2,1}     {0,3}
    ///   3  7   {1,0}     {3,2}
    static func fourTokens(boundaryAt2: Bool) throws -> RoutingTrace {
        let tokens: [(id: Int, experts: [[Int]])] = [
            (7, [[0, 1], [3, 0]]), (7, [[0, 2], [3, 1]]), (9, [[2, 1], [0, 3]]), (7, [[1, 0], [3, 2]]),
        ]
        let seqs = boundaryAt2 ? [("a", Array(tokens[..<2])), ("b", Array(tokens[2...]))] : [("all", tokens)]
        return try makeTrace(layers: [5, 8], experts: 4, topK: 2, gated: [5], entropy: true, sequences: seqs)
    }

    @Test func loadEntropyMaxViolationJain() throws {
        let f = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: false), minCount: 2).layers[0]
        #expect(f.layer == 5 && f.tokens == 4)
        #expect(f.loadCounts == [3, 3, 2, 0])
        let load: [Double] = [3.0 / 8, 3.0 / 8, 2.0 / 8, 0]                   // counts / (N·k = 8)
        #expect(f.load == load)
        // −(2 · 3/8 · log2 3/8 + 1/4 · log2 1/4) with 0·log 0 = 0 for the never-chosen expert
        expectClose(f.entropyBits, 0.75 * (3 - 1.584962500721156) + 0.5, 1e-15, "entropy")
        #expect(f.maxViolation == 0.5)                                        // (3/8 − 1/4) · 4
        expectClose(f.jain, 1 / 1.375, 1e-15, "jain")                        // 1 / (4 · (9+9+4)/64)
    }

    @Test func repeatRatesCountPairsWithinSequencesOnly() throws {
        let one = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: false)).layers[0]
        // top-1: 0 0 2 1 → pairs (0,1) equal, (1,2) no, (2,3) no
        #expect(one.pairs == 3 && one.repeatTop1 == 1.0 / 3)
        // sets {0,1}{0,2} share 0; {0,2}{2,1} share 2; {2,1}{1,0} share 1
        #expect(one.repeatTopK == 1)
        let split = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: true)).layers
        // the pair (1, 2) crosses the boundary: pairs (0,1) and (2,3) only
        #expect(split[0].pairs == 2 && split[0].repeatTop1 == 0.5 && split[0].repeatTopK == 1)
        // layer 8 top-1: 3 3 | 0 3 → (0,1) equal, (2,3) not; sets {3,0}{3,1} share, {0,3}{3,2} share
        #expect(split[1].repeatTop1 == 0.5 && split[1].repeatTopK == 1)
    }

    @Test func coactivationCountsEveryPairAndTheDiagonal() throws {
        let f = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: false)).layers[0]
        #expect(f.coactivation == [[3, 2, 1, 0],   // (0,1) by t0 and t3; (0,2) by t1
                                   [2, 3, 1, 0],   // (1,2) by t2
                                   [1, 1, 2, 0],
                                   [0, 0, 0, 0]])  // never chosen
    }

    @Test func coactivationWithTopThreeCountsNonAdjacentRanks() throws {
        let t = try makeTrace(layers: [0], experts: 5, topK: 3,
                              sequences: [("s", [(1, [[4, 0, 2]]), (1, [[2, 4, 1]])])])
        let m = RoutingAnalysis.analyze(t).layers[0].coactivation
        #expect(m[4][2] == 2 && m[2][4] == 2)         // ranks 0 and 2 of token 0, ranks 0 and 1 of token 1
        #expect(m[0][2] == 1 && m[4][0] == 1 && m[1][4] == 1 && m[1][0] == 0)
        #expect((0..<5).map { m[$0][$0] } == [1, 1, 2, 0, 2])
    }

    @Test func specialisationOverIdsWithEnoughOccurrences() throws {
        let trace = try Self.fourTokens(boundaryAt2: false)
        // layer 5 top-1 of id 7: 0, 0, 1 → 2/3; id 9 occurs once
        #expect(RoutingAnalysis.analyze(trace, minCount: 2).layers[0].specialisation == 2.0 / 3)
        #expect(RoutingAnalysis.analyze(trace, minCount: 3).layers[0].specialisation == 2.0 / 3)
        let both: Double = (2.0 / 3 + 1) / 2
        #expect(RoutingAnalysis.analyze(trace, minCount: 1).layers[0].specialisation == both)
        let none = RoutingAnalysis.analyze(trace, minCount: 4).layers[0]
        #expect(none.specialisation == nil && none.specialisedIDs == 0)
        // layer 8 top-1 of id 7: 3, 3, 3 → 1
        #expect(RoutingAnalysis.analyze(trace, minCount: 2).layers[1].specialisation == 1)
    }

    @Test func specialisationWithTiedTopOneCounts() throws {
        // id 4: top-1 experts 1, 2, 1, 2 → the largest share is 2/4 whichever wins the tie
        let t = try makeTrace(layers: [0], experts: 3, topK: 1, sequences: [("s", [
            (4, [[1]]), (4, [[2]]), (4, [[1]]), (4, [[2]]), (6, [[0]]),
        ])])
        #expect(RoutingAnalysis.analyze(t, minCount: 2).layers[0].specialisation == 0.5)
    }

    @Test func crossLayerCountsTopOnePairs() throws {
        let r = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: true))
        #expect(r.crossLayer.count == 1 && r.crossLayer[0].from == 5 && r.crossLayer[0].to == 8)
        // top-1 at 5: 0 0 2 1; at 8: 3 3 0 3 (boundaries do not matter: same token)
        #expect(r.crossLayer[0].counts == [[0, 0, 0, 2], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]])
    }

    @Test func byFileLoadsPerSequence() throws {
        let r = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: true))
        #expect(r.byFile.map(\.name) == ["a", "b"] && r.byFile.map(\.tokens) == [2, 2])
        #expect(r.byFile[0].load[0] == [0.5, 0.25, 0.25, 0])   // {0,1}{0,2}
        #expect(r.byFile[1].load[0] == [0.25, 0.5, 0.25, 0])   // {2,1}{1,0}
        #expect(r.byFile[1].load[1] == [0.25, 0, 0.25, 0.5])   // {0,3}{3,2}
    }

    @Test func sharedGateAndRouterEntropyMeans() throws {
        let r = RoutingAnalysis.analyze(try Self.fourTokens(boundaryAt2: true))
        // gates (layer 5 only) 0.0 0.1 | 0.0 0.1 (makeTrace: position in sequence / 10), as Float
        expectClose(r.layers[0].sharedGateMean, Double(Float(0.1)) / 2, 1e-15, "gate mean")
        #expect(r.layers[1].sharedGateMean == nil)
        // entropies: position % 3 = 0 1 | 0 1
        #expect(r.layers[0].routerEntropyMean == 0.5 && r.layers[1].routerEntropyMean == 0.5)
        let plain = RoutingAnalysis.analyze(try makeTrace(layers: [0], experts: 2, topK: 1,
                                                          sequences: [("s", [(1, [[0]])])]))
        #expect(plain.layers[0].sharedGateMean == nil && plain.layers[0].routerEntropyMean == nil)
    }

    @Test func normTopKWeightsDoNotChangeTheFigures() throws {
        // the same choices with weights renormalised to sum 1 (norm_topk_prob) and without
        var raw = try RoutingTrace(moeLayers: [1], experts: 4, topK: 2)
        var normed = raw
        for (es, w) in [([2, 0], [Float(0.4), 0.2]), ([0, 3], [0.3, 0.3]), ([2, 3], [0.5, 0.1])] {
            try raw.append(tokenID: 3, layers: [LayerRouting(experts: es, weights: w)])
            let s = w[0] + w[1]
            try normed.append(tokenID: 3, layers: [LayerRouting(experts: es, weights: [w[0] / s, w[1] / s])])
        }
        #expect(normed.weight(token: 0, slot: 0, rank: 0) == Float(0.4) / Float(0.6 as Float))
        #expect(RoutingAnalysis.analyze(raw) == RoutingAnalysis.analyze(normed))
        let load: [Double] = [2.0 / 6, 0, 2.0 / 6, 2.0 / 6]
        #expect(RoutingAnalysis.analyze(raw).layers[0].load == load)
    }

    @Test func randomBaselines() {
        #expect(RoutingAnalysis.randomRepeatTop1(experts: 8) == 0.125)
        expectClose(RoutingAnalysis.randomRepeatTopK(experts: 8, topK: 2), 13.0 / 28, 1e-15, "1 − C(6,2)/C(8,2)")
        expectClose(RoutingAnalysis.randomRepeatTopK(experts: 32, topK: 4), 1 - 20475.0 / 35960, 1e-15, "1 − C(28,4)/C(32,4)")
        expectClose(RoutingAnalysis.randomRepeatTopK(experts: 4, topK: 2), 5.0 / 6, 1e-15, "1 − C(2,2)/C(4,2)")
        #expect(RoutingAnalysis.randomRepeatTopK(experts: 8, topK: 1) == 0.125)   // = 1/E when k = 1
        #expect(RoutingAnalysis.randomRepeatTopK(experts: 3, topK: 2) == 1)       // 2k > E: always share
        #expect(RoutingAnalysis.randomRepeatTopK(experts: 1, topK: 1) == 1)
    }
}

/// N = 0, N = 1, E = 1 and one expert taking everything.
@Suite struct EdgeCaseTests {
    /// The hot set by hand: slot counts 6, 3, 1, 0 (one layer of four experts, k = 1, 10
    /// tokens): 50 % needs 1 slot, 90 % needs 2 (9 of 10), 99 % needs 3.
    @Test func hotSetCountsTheFewestSlotsThatCover() throws {
        var trace = try RoutingTrace(moeLayers: [1], experts: 4, topK: 1, gatedLayers: [], hasRouterEntropy: false)
        for e in [0, 0, 1, 0, 2, 0, 1, 0, 1, 0] {
            try trace.append(tokenID: 7, layers: [LayerRouting(experts: [e], weights: [1], sharedGate: nil, routerEntropy: nil)])
        }
        let hot = RoutingAnalysis.analyze(trace).hotSet
        #expect(hot.slots == 4 && hot.cover50 == 1 && hot.cover90 == 2 && hot.cover99 == 3, "\(hot)")
    }

    @Test func noTokens() throws {
        var trace = try RoutingTrace(moeLayers: [2, 3], experts: 4, topK: 2, gatedLayers: [2, 3], hasRouterEntropy: true)
        var r = RoutingAnalysis.analyze(trace)
        #expect(r.tokens == 0 && r.byFile.isEmpty)
        for f in r.layers {
            #expect(f.load == nil && f.entropyBits == nil && f.maxViolation == nil && f.jain == nil)
            #expect(f.repeatTop1 == nil && f.repeatTopK == nil && f.specialisation == nil)
            #expect(f.sharedGateMean == nil && f.routerEntropyMean == nil)
            #expect(f.coactivation == Array(repeating: Array(repeating: 0, count: 4), count: 4))
        }
        #expect(r.crossLayer[0].counts.allSatisfy { $0.allSatisfy { $0 == 0 } })
        trace.beginSequence(named: "empty.txt")
        r = RoutingAnalysis.analyze(trace)
        #expect(r.byFile == [SequenceLoad(name: "empty.txt", tokens: 0, load: [nil, nil])])
        #expect(r.json.serialized.contains(#""load":null,"entropy_bits":null"#))
        #expect(r.json.serialized.hasSuffix(#""by_file":[{"file":"empty.txt","tokens":0,"load":[null,null]}],"#
                                            + #""hot_set":{"slots":8,"cover_50":0,"cover_90":0,"cover_99":0}}"#))
    }

    @Test func oneTokenHasNoPairs() throws {
        let t = try makeTrace(layers: [0], experts: 4, topK: 2, sequences: [("s", [(1, [[3, 1]])])])
        let f = RoutingAnalysis.analyze(t).layers[0]
        #expect(f.pairs == 0 && f.repeatTop1 == nil && f.repeatTopK == nil)
        #expect(f.load == [0, 0.5, 0, 0.5] && f.entropyBits == 1 && f.jain == 0.5 && f.maxViolation == 1)
        #expect(RoutingAnalysis.analyze(t).json.serialized.contains(#""repeat_top1":null,"repeat_topk":null"#))
        // single-token sequences: still no pair
        let singles = try makeTrace(layers: [0], experts: 4, topK: 1,
                                    sequences: [("a", [(1, [[3]])]), ("b", [(1, [[3]])])])
        #expect(RoutingAnalysis.analyze(singles).layers[0].repeatTop1 == nil)
    }

    @Test func oneExpert() throws {
        let t = try makeTrace(layers: [0, 1], experts: 1, topK: 1,
                              sequences: [("s", [(5, [[0], [0]]), (5, [[0], [0]]), (6, [[0], [0]])])])
        let r = RoutingAnalysis.analyze(t, minCount: 1)
        let f = r.layers[0]
        #expect(f.load == [1] && f.entropyBits == 0 && f.maxViolation == 0 && f.jain == 1)
        #expect(f.entropyBits?.sign == .plus, "0, not −0")
        #expect(f.repeatTop1 == 1 && f.repeatTopK == 1 && f.coactivation == [[3]] && f.specialisation == 1)
        #expect(r.crossLayer[0].counts == [[3]])
        #expect(!r.json.serialized.contains("-0.0"))
        #expect(RoutingAnalysis.randomRepeatTop1(experts: 1) == 1)
    }

    @Test func oneExpertTakesAll() throws {
        let t = try makeTrace(layers: [0], experts: 8, topK: 1, sequences: [("s", [(1, [[6]]), (2, [[6]])])])
        let f = RoutingAnalysis.analyze(t).layers[0]
        #expect(f.entropyBits == 0 && f.entropyBits?.sign == .plus)
        #expect(f.maxViolation == 7 && f.jain == 0.125)   // (1 − 1/8)·8; 1/E
    }
}
