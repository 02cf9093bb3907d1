import NekoRouting
import Testing

@Suite struct CSVTests {
    @Test func writesOneRowPerTokenLayerRank() throws {
        var t = try RoutingTrace(moeLayers: [2, 3], experts: 8, topK: 2)
        try t.append(tokenID: 17, layers: [LayerRouting(experts: [5, 1], weights: [0.625, 0.25]),
                                           LayerRouting(experts: [0, 7], weights: [1e-05, 3e-06])])
        try t.append(tokenID: 4, layers: [LayerRouting(experts: [2, 3], weights: [0.5, 0.5]),
                                          LayerRouting(experts: [7, 6], weights: [0.3, 0.1])])
        #expect(RoutingCSV.write(t) == """
            token_index,token_id,layer,rank,expert,weight
            0,17,2,0,5,0.625
            0,17,2,1,1,0.25
            0,17,3,0,0,1e-05
            0,17,3,1,7,3e-06
            1,4,2,0,2,0.5
            1,4,2,1,3,0.5
            1,4,3,0,7,0.3
            1,4,3,1,6,0.1

            """)
    }

    @Test func roundTripsEveryFloatExactly() throws {
        var rng = SplitMix(state: 5)
        var t = try RoutingTrace(moeLayers: [1, 4], experts: 6, topK: 3)
        for id in 0..<40 {
            try t.append(tokenID: id * 37, layers: (0..<2).map { _ in
                var w = (0..<3).map { _ in Float.random(in: 0..<1, using: &rng) * [1, 1e-6, 1e3].randomElement(using: &rng)! }
                w.sort(by: >)
                return LayerRouting(experts: Array((0..<6).shuffled(using: &rng).prefix(3)), weights: w)
            })
        }
        let back = try RoutingCSV.parse(RoutingCSV.write(t), experts: 6)
        #expect(back == t)   // same bits: every weight survives the text
        #expect(back.sequences == [TraceSequence(name: "sequence 1", tokens: 0..<40)])
    }

    @Test func theSequenceColumnKeepsBoundaries() throws {
        let t = try randomTrace(seed: 3, layers: [2, 3], experts: 8, topK: 2, gated: [], entropy: false,
                                sequenceLengths: [5, 0, 7, 1])
        let text = RoutingCSV.write(t, sequenceColumn: true)
        #expect(text.hasPrefix("token_index,token_id,layer,rank,expert,weight,sequence\n0,"))
        let back = try RoutingCSV.parse(text, experts: 8)
        #expect(back.sequences.map(\.tokens) == t.sequences.map(\.tokens))   // the empty one too
        #expect(back.sequences.map(\.name) == ["sequence 1", "sequence 2", "sequence 3", "sequence 4"])
        var a = RoutingAnalysis.analyze(t, minCount: 2), b = RoutingAnalysis.analyze(back, minCount: 2)
        a.byFile = a.byFile.map { SequenceLoad(name: "", tokens: $0.tokens, load: $0.load) }
        b.byFile = b.byFile.map { SequenceLoad(name: "", tokens: $0.tokens, load: $0.load) }
        #expect(a == b)
        // without the column the boundaries are gone: one sequence, more pairs
        let flat = try RoutingCSV.parse(RoutingCSV.write(t), experts: 8)
        #expect(flat.sequences.count == 1 && RoutingAnalysis.analyze(flat).layers[0].pairs == 12)
        #expect(RoutingAnalysis.analyze(t).layers[0].pairs == 10)   // 4 + 0 + 6 + 0
    }

    @Test func expertsDefaultToTheLargestSeenPlusOne() throws {
        let text = "token_index,token_id,layer,rank,expert,weight\r\n0,1,0,0,2,1.0\r\n1,1,0,0,4,1.0\r\n"
        #expect(try RoutingCSV.parse(text).experts == 5)
        #expect(try RoutingCSV.parse(text, experts: 32).experts == 32)
    }

    @Test func rowsOfATokenMayComeInAnyOrder() throws {
        let text = """
            token_index,token_id,layer,rank,expert,weight
            0,9,3,1,0,0.25
            0,9,2,0,1,0.5
            0,9,3,0,2,0.75
            0,9,2,1,3,0.5
            """
        let t = try RoutingCSV.parse(text, experts: 4)
        #expect(t.moeLayers == [2, 3] && t.topK == 2)
        #expect(t.record(token: 0, slot: 0).experts == [1, 3] && t.record(token: 0, slot: 1).experts == [2, 0])
    }

    @Test(arguments: [
        ("token,id\n", 1, "header"),
        ("token_index,token_id,layer,rank,expert,weight\n", 1, "no rows"),
        ("", 1, "no header"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1\n", 2, "5 fields"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,x,0.5\n", 2, "expert \"x\" is not an integer"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,abc\n", 2, "weight \"abc\""),
        ("token_index,token_id,layer,rank,expert,weight\n1,1,0,0,1,0.5\n", 2, "expected token_index 0"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n2,1,0,0,1,0.5\n", 3, "expected token_index 1"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n1,1,0,0,1,0.5\n0,1,0,0,1,0.5\n", 4, "not together"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n0,2,0,1,2,0.5\n", 3, "token_id or sequence differs"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n0,1,0,1,1,0.4\n", 2, "chosen twice"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n0,1,0,1,2,0.4\n1,1,0,0,1,0.5\n", 4, "1 rows, expected 1 layers × top-k 2"),
        ("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,1,0.5\n1,1,7,0,1,0.5\n", 3, "layer 7 is not among"),
        ("token_index,token_id,layer,rank,expert,weight,sequence\n0,1,0,0,1,0.5,1\n1,1,0,0,1,0.5,0\n", 3, "never go back"),
        ("token_index,token_id,layer,rank,expert,weight,sequence\n0,1,0,0,1,0.5,-1\n", 2, "never go back"),
    ])
    func badCSVsNameTheLine(text: String, line: Int, message: String) {
        #expect {
            try RoutingCSV.parse(text)
        } throws: { error in
            guard case let .csv(l, m) = error as? RoutingError else { return false }
            return l == line && m.contains(message)
        }
    }

    @Test func expertBeyondTheGivenCountIsAnError() {
        #expect(throws: RoutingError.self) {
            try RoutingCSV.parse("token_index,token_id,layer,rank,expert,weight\n0,1,0,0,8,0.5\n", experts: 8)
        }
    }
}
