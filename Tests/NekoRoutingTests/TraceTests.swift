import NekoRouting
import Testing

@Suite struct TraceTests {
    @Test func storesWhatWasAppended() throws {
        var t = try RoutingTrace(moeLayers: [2, 3], experts: 8, topK: 2, gatedLayers: [3], hasRouterEntropy: true)
        let a = [LayerRouting(experts: [5, 1], weights: [0.5, 0.5], routerEntropy: 2.5),   // a tie: lower index need not be first
                 LayerRouting(experts: [0, 7], weights: [0.75, 0.125], sharedGate: 0.25, routerEntropy: 1)]
        try t.append(tokenID: 41, layers: a)
        #expect(t.count == 1 && t.tokenID(0) == 41)
        #expect(t.record(token: 0, slot: 0) == a[0] && t.record(token: 0, slot: 1) == a[1])
        #expect(t.sharedGate(token: 0, slot: 0) == nil && t.sharedGate(token: 0, slot: 1) == 0.25)
        #expect(t.sequences == [TraceSequence(name: "sequence 1", tokens: 0..<1)])
        #expect(t.hasSharedGate == [false, true])
    }

    @Test func rejectsBadRecordsWithTheTokenAndLayer() throws {
        var t = try RoutingTrace(moeLayers: [2, 3], experts: 4, topK: 2, gatedLayers: [2])
        let ok = LayerRouting(experts: [0, 1], weights: [0.6, 0.4], sharedGate: 0.5)
        let plain = LayerRouting(experts: [2, 3], weights: [0.6, 0.4])
        let cases: [([LayerRouting], Int?, String)] = [
            ([ok], nil, "1 layer records for 2 MoE layers"),
            ([ok, LayerRouting(experts: [4, 1], weights: [0.6, 0.4])], 3, "expert 4 is not within 0…3"),
            ([ok, LayerRouting(experts: [1, 1], weights: [0.6, 0.4])], 3, "expert 1 is chosen twice"),
            ([ok, LayerRouting(experts: [1, 2], weights: [0.4, 0.6])], 3, "not in descending order"),
            ([ok, LayerRouting(experts: [1, 2], weights: [.nan, 0.6])], 3, "not all finite"),
            ([ok, LayerRouting(experts: [1], weights: [0.4])], 3, "expected top-k 2"),
            ([plain, plain], 2, "the shared gate is missing"),
            ([ok, LayerRouting(experts: [2, 3], weights: [0.6, 0.4], sharedGate: 1)], 3, "declared without one"),
            ([ok, LayerRouting(experts: [2, 3], weights: [0.6, 0.4], routerEntropy: 1)], 3, "router entropy in a trace declared without one"),
        ]
        for (records, layer, message) in cases {
            #expect {
                try t.append(tokenID: 1, layers: records)
            } throws: { error in
                guard case let .record(token, l, m) = error as? RoutingError else { return false }
                return token == 0 && l == layer && m.contains(message)
            }
        }
        #expect(t.count == 0, "nothing half-appended")
        #expect(throws: RoutingError.self) { try t.append(tokenID: -1, layers: [ok, plain]) }
        try t.append(tokenID: 1, layers: [ok, plain])
        #expect(t.count == 1)
    }

    @Test func rejectsImpossibleShapes() throws {
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [], experts: 4, topK: 1) }
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [3, 2], experts: 4, topK: 1) }
        // Sizes that would make the pair matrices tens of GB are refused before any allocation.
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [0], experts: 65536, topK: 1) }
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: Array(0..<8), experts: 4096, topK: 1) }
        #expect(try RoutingTrace(moeLayers: Array(0..<58), experts: 256, topK: 8).experts == 256)
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [2], experts: 4, topK: 5) }
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [2], experts: 0, topK: 0) }
        #expect(throws: RoutingError.self) { try RoutingTrace(moeLayers: [2], experts: 4, topK: 1, gatedLayers: [1]) }
    }

    @Test func sequencesAndBoundaries() throws {
        let t = try makeTrace(layers: [0], experts: 2, topK: 1, sequences: [
            ("a.txt", [(1, [[0]]), (1, [[1]])]), ("empty", []), ("b.txt", [(1, [[0]])]),
        ])
        #expect(t.sequences.map(\.name) == ["a.txt", "empty", "b.txt"])
        #expect(t.sequences.map(\.tokens) == [0..<2, 2..<2, 2..<3])
        #expect((0..<3).map(t.beginsSequence) == [true, false, true])
    }

    @Test func truncateKeepsTheSequencesBeganBefore() throws {
        var t = try makeTrace(layers: [0, 1], experts: 3, topK: 2, gated: [1], entropy: true, sequences: [
            ("user 1", [(1, [[0, 1], [2, 0]]), (2, [[1, 2], [0, 2]])]),
            ("assistant 1", [(3, [[2, 0], [1, 0]]), (4, [[0, 2], [1, 2]])]),
        ])
        let whole = t
        t.truncate(to: 4)
        #expect(t == whole)
        t.truncate(to: 2)   // regenerate: the reply's sequence goes with its tokens
        #expect(t.count == 2 && t.sequences == [TraceSequence(name: "user 1", tokens: 0..<2)])
        t.beginSequence(named: "assistant 1")
        try t.append(tokenID: 3, layers: [whole.record(token: 2, slot: 0), whole.record(token: 2, slot: 1)])
        try t.append(tokenID: 4, layers: [whole.record(token: 3, slot: 0), whole.record(token: 3, slot: 1)])
        #expect(t == whole)
        t.truncate(to: 0)
        #expect(t.count == 0 && t.sequences.isEmpty)
    }
}
