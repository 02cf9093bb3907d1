import Foundation
import NekoJSON
import NekoRouting
import Testing

/// `nekochat routing` end to end against the float64 reference's goldens (Sources/NekoRouting/README.md's
/// definitions computed independently in Python from the reference's own routing).
@Suite struct RoutingCLITests {
    static let goldens = CLI.repo.appendingPathComponent("Tests/Fixtures/routing")
    static let names = ["neko_mini_bf16", "no_shared_no_qknorm_step2", "sharded3_bf16_normtopk"]

    @Test(arguments: names) func routingJSONMatchesTheReference(name: String) throws {
        let golden = try JSONValue.parse([UInt8](try Data(contentsOf: Self.goldens.appendingPathComponent("\(name).json"))))
        let sequences = try #require(golden["sequences"]?.array)
        var args = ["routing", "--model", CLI.model(name), "--json", "--threads", "1",
                    "--min-count", String(try #require(golden["min_count"]?.int))]
        for s in sequences { args += ["--ids", (s["ids"]?.array ?? []).compactMap(\.int).map(String.init).joined(separator: ",")] }
        let r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try JSONValue.parse(r.stdout)
        let diffs = RoutingAnalysis.differences(ours, try #require(golden["expected"]), tolerance: 1e-6)
        #expect(diffs.isEmpty, "\(name): \(diffs.joined(separator: "; "))")
    }
}

/// `nekochat routing` on the other families: the CSV's experts and weights for every token are
/// the ones transformers' own router chose (its forward hooks, in the fixtures' expected.json),
/// and the JSON's figures are shaped by the family (no shared gate, E experts, top-k).
@Suite struct FamilyRoutingCLITests {
    @Test(arguments: ["hf_olmoe", "hf_olmoe64_top8", "hf_mixtral_swa", "hf_granitemoe", "hf_qwen3_moe", "hf_qwen2_moe"])
    func routingIsTransformersRouting(name: String) throws {
        let expected = try CLI.expected(name)
        let ids = (expected["prompt_ids"] as! [Int]) + (expected["greedy_ids"] as! [Int]).dropLast()
        let routing = expected["routing"] as! [[[String: Any]]]
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("fam-\(UUID().uuidString).csv").path
        let r = try CLI.run(["routing", "--model", CLI.model(name), "--ids", ids.map(String.init).joined(separator: ","),
                             "--csv", csv, "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let rows = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
        // token_index,token_id,layer,rank,expert,weight
        var seen = 0
        for row in rows {
            let f = row.split(separator: ",").map(String.init)
            let (t, layer, rank) = (Int(f[0])!, Int(f[2])!, Int(f[3])!)
            let record = try #require(routing[t].first { $0["layer"] as? Int == layer })
            #expect((record["experts"] as! [Int])[rank] == Int(f[4]), "\(name) token \(t) layer \(layer) rank \(rank)")
            #expect(abs((record["weights"] as! [Double])[rank] - Double(f[5])!) < 1e-5, "\(name) token \(t) layer \(layer)")
            seen += 1
        }
        let k = (routing[0][0]["experts"] as! [Int]).count
        #expect(seen == ids.count * routing[0].count * k)

        let j = try CLI.run(["routing", "--model", CLI.model(name), "--ids", ids.map(String.init).joined(separator: ","),
                             "--json", "--threads", "1"])
        let report = try JSONValue.parse(j.stdout)
        #expect(report["top_k"]?.int == k && report["tokens"]?.int == ids.count)
        let experts = try #require(report["experts"]?.int)
        for layer in report["layers"]?.array ?? [] {
            let load = (layer["load"]?.array ?? []).compactMap(\.double)
            #expect(load.count == experts && abs(load.reduce(0, +) - 1) < 1e-9)
            #expect(layer["shared_gate_mean"]?.isNull == (name != "hf_qwen2_moe"))
            let entropy = try #require(layer["router_entropy_mean"]?.double)
            #expect(entropy > 0 && entropy <= log2(Double(experts)) + 1e-9)
        }
    }
    /// A chat turn on each family (with a character tokenizer), routing recorded per token.
    @Test(arguments: ["hf_olmoe64_top8", "hf_mixtral_swa", "hf_granitemoe"])
    func aChatTurnRunsOnTheFamily(name: String) throws {
        let model = try TinyTextModel.make(from: name)
        let r = try CLI.run(["generate", "--model", model, "--chat", "--prompt", "the cat", "--max-tokens", "6",
                             "--temperature", "0", "--routing", "--json", "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        let ids = try #require(json["ids"] as? [Int]), prompt = try #require(json["prompt_ids"] as? [Int])
        let routing = try #require(json["routing"] as? [[[String: Any]]])
        #expect(routing.count == prompt.count + ids.count - 1)
        let k = (try CLI.expected(name)["routing"] as! [[[String: Any]]])[0][0]["experts"] as! [Int]
        #expect(routing.allSatisfy { $0.allSatisfy { ($0["experts"] as? [Int])?.count == k.count && $0["shared_gate"] == nil } })
    }
}
