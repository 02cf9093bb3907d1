import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Routing interventions through the commands: the flags give the reference's numbers, the
/// server's `nekochat.experts` gives what the flags give, and bad ones are one clear error.
@Suite(.serialized) struct InterventionCLITests {
    let name = "neko_mini_bf16"

    /// interventions.json's cases: (the `experts` object, the reference's NLL).
    func cases() throws -> (prompt: [Int], cases: [(experts: [String: Any], nll: [Double])]) {
        let data = try Data(contentsOf: CLI.fixtures.appendingPathComponent("\(name)/interventions.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let list = try #require(json["cases"] as? [[String: Any]])
        return (json["prompt_ids"] as! [Int], list.map { ($0["experts"] as! [String: Any], $0["nll"] as! [Double]) })
    }

    /// The flags that ask for an `experts` object.
    func flags(_ e: [String: Any]) -> [String] {
        func spec(_ t: Any?) -> String? {
            guard let t = t as? [String: [Int]], !t.isEmpty else { return nil }
            return t.keys.sorted().map { "\($0):" + t[$0]!.map(String.init).joined(separator: ",") }.joined(separator: ";")
        }
        var out: [String] = []
        if let m = spec(e["mask"]) { out += ["--mask-experts", m] }
        if let f = spec(e["force"]) { out += ["--force-experts", f] }
        if let k = e["top_k"] as? Int { out += ["--experts-per-token", String(k)] }
        if e["shared"] as? Bool == false { out.append("--no-shared-expert") }
        return out
    }

    @Test func scoreUnderTheFlagsGivesTheReferencesNLL() throws {
        let (prompt, cases) = try cases()
        let ids = prompt.map(String.init).joined(separator: ",")
        for (experts, want) in cases {
            let r = try CLI.run(["score", "--model", CLI.model(name), "--ids", ids, "--json", "--threads", "1"] + flags(experts))
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stderr.contains("routing under interventions"), "\(r.stderr)")
            let nll = try #require(r.json?["nll"] as? [Double])
            #expect(nll.count == want.count)
            #expect(zip(nll, want).allSatisfy { abs($0 - $1) < 1e-3 }, "\(experts): \(nll) vs \(want)")
        }
    }

    @Test func generateRecordsTheRoutingThatRan() throws {
        let r = try CLI.run(["generate", "--model", CLI.model(name), "--prompt-ids", "5,6,7,8", "--temperature", "0",
                             "--max-tokens", "4", "--json", "--routing", "--mask-experts", "2:0-3", "--experts-per-token", "3"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        let experts = try #require(json["experts"] as? [String: Any])
        #expect(experts["top_k"] as? Int == 3)
        let routing = try #require(json["routing"] as? [[[String: Any]]])
        #expect(routing.count == 4 + 4 - 1)
        for token in routing {
            for layer in token {
                let chosen = try #require(layer["experts"] as? [Int])
                #expect(chosen.count == 3)
                if layer["layer"] as? Int == 2 { #expect(chosen.allSatisfy { $0 >= 4 }) }
            }
        }
    }

    @Test(arguments: [
        (["--mask-experts", "1:0"], "--mask-experts: layer 1 is dense (no router); the MoE layers are 2-3"),
        (["--force-experts", "2:9"], "--force-experts: layer 2 has no expert 9 (experts 0 to 7)"),
        (["--force-experts", "3:1,2,3"], "layer 3: 3 experts forced, more than the 2 chosen per token"),
        (["--mask-experts", "3:1", "--force-experts", "3:1"], "layer 3: expert 1 is both masked and forced"),
        (["--experts-per-token", "0"], "--experts-per-token: experts per token must be from 1 to 8"),
        (["--mask-experts", "3;1"], "--mask-experts: '3' is not LAYER:EXPERT[,EXPERT…]"),
    ])
    func badFlagsAreOneClearError(arguments: [String], message: String) throws {
        let r = try CLI.run(["score", "--model", CLI.model(name), "--ids", "5,6,7"] + arguments)
        #expect(r.status != 0)
        #expect(r.stderr.contains(message), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
    }

    /// A request's `experts` replaces the server's defaults (it is not merged): with none the
    /// defaults apply, with `{}` the model routes as trained, with its own they alone apply; a
    /// bad one is a 400 naming `nekochat.experts`. The text equals `generate` under the same flags.
    @Test func theServersExpertsFieldIsTheFlags() throws {
        // The built-in demo (MoE layers 2-5, 8 experts, top-2, with a tokenizer).
        let server = try ServerProcess(["--mask-experts", "2:0-3;3:0-3", "--experts-per-token", "1"])
        defer { server.stop() }
        func complete(_ ext: [String: Any]) throws -> [String: Any] {
            var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
            request.httpMethod = "POST"
            request.httpBody = try JSONSerialization.data(withJSONObject: ["prompt": "ROMEO:", "max_tokens": 12, "temperature": 0,
                                                                           "nekochat": ext])
            return try #require(try JSONSerialization.jsonObject(with: ServeTests.send(request)) as? [String: Any])
        }
        func routing(_ reply: [String: Any]) throws -> [[[String: Any]]] {
            try #require((reply["nekochat"] as? [String: Any])?["routing"] as? [[[String: Any]]], "\(reply)")
        }
        func text(_ reply: [String: Any]) -> String? { ((reply["choices"] as? [[String: Any]])?.first)?["text"] as? String }

        let defaults = try complete(["routing": true])
        for token in try routing(defaults) {
            #expect(token.allSatisfy { ($0["experts"] as? [Int])?.count == 1 })
            #expect(token.first { $0["layer"] as? Int == 2 }.map { ($0["experts"] as! [Int]).allSatisfy { $0 >= 4 } } == true)
        }
        let plain = try complete(["routing": true, "experts": [String: Any]()])
        #expect(try routing(plain).allSatisfy { $0.allSatisfy { ($0["experts"] as? [Int])?.count == 2 } })
        let forced = try complete(["routing": true, "experts": ["force": ["2": [0]]]])
        for token in try routing(forced) {
            #expect(token.first { $0["layer"] as? Int == 2 }.map { ($0["experts"] as! [Int]).contains(0) } == true)
            #expect(token.allSatisfy { ($0["experts"] as? [Int])?.count == 2 })
        }
        let bad = try complete(["experts": ["mask": ["0": [1]]]])
        let error = try #require(bad["error"] as? [String: Any], "\(bad)")
        #expect(error["param"] as? String == "nekochat.experts")
        #expect((error["message"] as? String)?.contains("layer 0 is dense") == true, "\(error)")
        let unknown = try complete(["experts": ["masks": [String: Any]()]])
        #expect(((unknown["error"] as? [String: Any])?["message"] as? String)?.contains("unknown member 'masks'") == true, "\(unknown)")

        // The same text and routing as `generate` under the same flags.
        let cli = try CLI.run(["generate", "--prompt", "ROMEO:", "--temperature", "0", "--max-tokens", "12", "--json", "--routing",
                               "--mask-experts", "2:0-3;3:0-3", "--experts-per-token", "1"])
        let cliRouting = try #require(cli.json?["routing"] as? [[[String: Any]]], "\(cli.stderr)")
        #expect(text(defaults) == cli.json?["text"] as? String)
        #expect(text(defaults) != text(plain), "the interventions changed nothing: the test would not see them")
        let served = try routing(defaults)
        #expect(served.count == cliRouting.count)
        for (a, b) in zip(served, cliRouting) {
            #expect(a.map { $0["experts"] as? [Int] } == b.map { $0["experts"] as? [Int] })
        }
    }

    /// `routing ablate`: JSON as documented, the CSV's columns, --layers narrowing the rows, and
    /// a dense layer refused naming the MoE layers.
    @Test func ablateWritesItsRowsAndRefusesADenseLayer() throws {
        let ids = "52,117,36,54,12,72,72,70,92"
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("ablate-\(UUID().uuidString).csv").path
        let r = try CLI.run(["routing", "ablate", "--model", CLI.model(name), "--ids", ids, "--layers", "3", "--json", "--csv", csv])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json, "\(r.stdout)")
        #expect(json["tokens"] as? Int == 9)
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 8 && rows.allSatisfy { $0["layer"] as? Int == 3 })
        #expect(rows.first.map { Array($0.keys).sorted() } == ["delta", "expert", "layer", "mean_nll", "saliency", "share"])
        #expect((json["shared"] as? [[String: Any]])?.map { $0["layer"] as? Int } == [3])
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "layer,expert,mean_nll,delta,share,saliency" && lines.count == 9)
        let dense = try CLI.run(["routing", "ablate", "--model", CLI.model(name), "--ids", ids, "--layers", "0-2"])
        #expect(dense.status != 0 && dense.stderr.contains("layer 0 is not an MoE layer; the MoE layers are 2, 3"), "\(dense.stderr)")
        // The analyses are still `nekochat routing` without a subcommand, now with the hot set.
        let analysis = try CLI.run(["routing", "--model", CLI.model(name), "--ids", ids, "--json"])
        #expect((analysis.json?["hot_set"] as? [String: Any])?["slots"] as? Int == 16, "\(analysis.stderr)")
    }

    /// SGLang's `return_routed_experts`, decoded as SGLang's own helper does
    /// (`extract_routed_experts_from_meta_info`: base64 → int32 → [tokens, layers, k]): the
    /// rows are nekochat's routing record from `routed_experts_start_len` on, dense layers zero,
    /// the last axis N under `--experts-per-token`; streamed, in a chunk of its own.
    @Test func sglangsRoutedExpertsAreTheRoutingRecord() throws {
        let server = try ServerProcess(["--experts-per-token", "3"])
        defer { server.stop() }
        func request(_ extra: [String: Any], stream: Bool = false) throws -> Data {
            var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
            request.httpMethod = "POST"
            var body: [String: Any] = ["prompt": "ROMEO:", "max_tokens": 6, "temperature": 0, "nekochat": ["routing": true], "stream": stream]
            for (k, v) in extra { body[k] = v }
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            return try ServeTests.send(request)
        }
        func decode(_ base64: String) throws -> [Int32] {
            let data = try #require(Data(base64Encoded: base64))
            let bytes = [UInt8](data)
            var out: [Int32] = []
            for i in stride(from: 0, to: bytes.count, by: 4) {
                var u = UInt32(bytes[i])
                u |= UInt32(bytes[i + 1]) << 8
                u |= UInt32(bytes[i + 2]) << 16
                u |= UInt32(bytes[i + 3]) << 24
                out.append(Int32(bitPattern: u))
            }
            return out
        }
        let layers = 6, k = 3   // the demo: 6 layers (dense 0-1, MoE 2-5); 3 experts per token here
        for start in [0, 2] {
            let reply = try #require(try JSONSerialization.jsonObject(with: request(["return_routed_experts": true,
                                                                                     "routed_experts_start_len": start])) as? [String: Any])
            let record = try #require((reply["nekochat"] as? [String: Any])?["routing"] as? [[[String: Any]]], "\(reply)")
            let encoded = try #require((reply["sglext"] as? [String: Any])?["routed_experts"] as? String, "\(reply)")
            let values = try decode(encoded)
            #expect(values.count == (record.count - start) * layers * k)
            for t in start..<record.count {
                for layer in 0..<layers {
                    let row = Array(values[((t - start) * layers + layer) * k..<((t - start) * layers + layer + 1) * k]).map(Int.init)
                    let want = record[t].first { $0["layer"] as? Int == layer }?["experts"] as? [Int] ?? [0, 0, 0]
                    #expect(row == want, "token \(t) layer \(layer)")
                }
            }
        }
        // Streamed: one chunk with no choices carries it, and it decodes to the same rows.
        let stream = String(decoding: try request(["return_routed_experts": true], stream: true), as: UTF8.self)
        let chunks = stream.split(separator: "\n").filter { $0.hasPrefix("data: {") }.compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as? [String: Any]
        }
        let ext = chunks.compactMap { ($0["sglext"] as? [String: Any])?["routed_experts"] as? String }
        #expect(ext.count == 1)
        #expect(chunks.first { $0["sglext"] != nil }.map { ($0["choices"] as? [Any])?.isEmpty } == true)
        let whole = try #require(try JSONSerialization.jsonObject(with: request(["return_routed_experts": true])) as? [String: Any])
        #expect(try ext.first.map(decode) == decode(try #require((whole["sglext"] as? [String: Any])?["routed_experts"] as? String)))
        // Without asking: no sglext; a start past the prompt: a 400 naming the field.
        let plain = try #require(try JSONSerialization.jsonObject(with: request([:])) as? [String: Any])
        #expect(plain["sglext"] == nil)
        let bad = try #require(try JSONSerialization.jsonObject(with: request(["return_routed_experts": true, "routed_experts_start_len": 999])) as? [String: Any])
        #expect((bad["error"] as? [String: Any])?["param"] as? String == "routed_experts_start_len", "\(bad)")
    }
}
