import NekoJSON
import NekoRouting
import Testing

/// The float64 PyTorch reference's routing of Tests/Fixtures/engine models (written by
/// Tests/Reference/routing_reference.py --make-goldens) analysed here and there.
@Suite struct GoldenTests {
    @Test(arguments: Fixtures.goldens)
    func analysisEqualsTheReference(name: String) throws {
        let g = try Golden(name)
        let report = RoutingAnalysis.analyze(g.trace, minCount: g.minCount)
        let diff = RoutingAnalysis.differences(report.json, g.expected, tolerance: 1e-6)
        #expect(diff.isEmpty, "\(name):\n\(diff.joined(separator: "\n"))")
        // the golden's JSON, as written by Python, also reads back through our own writer
        #expect(try JSONValue.parse(report.json.serialized) == report.json)
        #expect(g.trace.count == 120 && report.layers.allSatisfy { $0.specialisation != nil && $0.repeatTop1 != nil })
    }

    /// The CSV the reference wrote (with its `sequence` column) gives the same figures, except what a
    /// CSV cannot carry: shared gates, router entropies and the sequences' names.
    @Test(arguments: Fixtures.goldens)
    func referenceCSVGivesTheSameFigures(name: String) throws {
        let g = try Golden(name)
        let trace = try RoutingCSV.parse(try Fixtures.text(name + ".csv"), experts: g.trace.experts)
        var expected = g.expected
        guard case var .object(doc) = expected, case var .array(layers) = doc[3].value,
              case var .array(files) = doc[5].value else { Issue.record("shape"); return }
        for i in layers.indices {
            guard case var .object(m) = layers[i] else { continue }
            for j in m.indices where m[j].key == "shared_gate_mean" || m[j].key == "router_entropy_mean" { m[j].value = .null }
            layers[i] = .object(m)
        }
        for i in files.indices {
            guard case var .object(m) = files[i] else { continue }
            m[0].value = .string("sequence \(i + 1)")
            files[i] = .object(m)
        }
        doc[3].value = .array(layers)
        doc[5].value = .array(files)
        expected = .object(doc)
        let diff = RoutingAnalysis.differences(RoutingAnalysis.analyze(trace, minCount: g.minCount).json, expected)
        #expect(diff.isEmpty, "\(name):\n\(diff.joined(separator: "\n"))")
        for t in [0, 57, 119] {
            for slot in g.trace.moeLayers.indices {
                #expect(trace.record(token: t, slot: slot).experts == g.trace.record(token: t, slot: slot).experts)
                #expect(trace.record(token: t, slot: slot).weights == g.trace.record(token: t, slot: slot).weights)
            }
        }
    }

    @Test func differencesFindWhatDiffers() throws {
        let a = try JSONValue.parse(#"{"tokens": 3, "x": [0.5, null], "s": "a"}"#)
        #expect(RoutingAnalysis.differences(a, a).isEmpty)
        let near = try JSONValue.parse(#"{"tokens": 3, "x": [0.5000004, null], "s": "a"}"#)
        #expect(RoutingAnalysis.differences(a, near).isEmpty)
        let cases = [
            (#"{"tokens": 4, "x": [0.5, null], "s": "a"}"#, "tokens"),
            (#"{"tokens": 3, "x": [0.500002, null], "s": "a"}"#, "x[0]"),
            (#"{"tokens": 3, "x": [0.5, 0.1], "s": "a"}"#, "x[1]"),
            (#"{"tokens": 3, "x": [0.5], "s": "a"}"#, "x: 2 items vs 1"),
            (#"{"x": [0.5, null], "tokens": 3, "s": "a"}"#, "(top): keys"),
            (#"{"tokens": 3.0, "x": [0.5, null], "s": "a"}"#, "tokens"),
            (#"{"tokens": 3, "x": [0.5, null], "s": "b"}"#, "s"),
        ]
        for (text, path) in cases {
            let d = RoutingAnalysis.differences(a, try JSONValue.parse(text))
            #expect(d.count == 1 && d[0].hasPrefix(path), "\(text): \(d)")
        }
    }
}
