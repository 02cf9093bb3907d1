import Foundation
import Testing

/// A copy of a tiny engine fixture (NekoMind's by default; any family's) with a character-level
/// tokenizer that fits its 128-token vocabulary: ids 0–2 `<unk> <s> </s>`, then printable ASCII,
/// then a few merges.
enum TinyTextModel {
    static let chars = (32...126).map { String(UnicodeScalar(UInt8($0))) }
    static let merges = [("t", "h"), ("th", "e"), ("e", " "), ("i", "n"), ("o", "u")]
    static var vocab: [String] { ["<unk>", "<s>", "</s>"] + chars + merges.map { $0.0 + $0.1 } }

    static func make(from fixture: String = "neko_mini_bf16") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-text-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: CLI.model(fixture), toPath: dir.path)
        func q(_ s: String) -> String {
            String(decoding: try! JSONSerialization.data(withJSONObject: [s]), as: UTF8.self).dropFirst().dropLast().description
        }
        let vocabJSON = vocab.enumerated().map { "\(q($0.element)): \($0.offset)" }.joined(separator: ", ")
        let mergesJSON = merges.map { q($0.0 + " " + $0.1) }.joined(separator: ", ")
        let tokenizer = """
            {"version": "1.0",
             "added_tokens": [{"id": 0, "content": "<unk>", "special": true, "normalized": false},
                              {"id": 1, "content": "<s>", "special": true, "normalized": false},
                              {"id": 2, "content": "</s>", "special": true, "normalized": false}],
             "normalizer": null, "pre_tokenizer": null,
             "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
             "decoder": {"type": "Fuse"},
             "model": {"type": "BPE", "unk_token": "<unk>", "vocab": {\(vocabJSON)}, "merges": [\(mergesJSON)]}}
            """
        try tokenizer.write(toFile: dir.path + "/tokenizer.json", atomically: true, encoding: .utf8)
        try #"{"bos_token": "<s>", "eos_token": "</s>"}"#.write(toFile: dir.path + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        return dir.path
    }
}

@Suite struct TextCLITests {
    @Test func generateFromTextStreamsTheSameTextAsJSON() throws {
        let model = try TinyTextModel.make()
        let args = ["generate", "--model", model, "--prompt", "the cat", "--temperature", "0", "--max-tokens", "12"]
        let json = try #require(try CLI.run(args + ["--json"]).json)
        let ids = try #require(json["ids"] as? [Int])
        #expect((json["prompt_ids"] as? [Int])?.first == 1)
        let vocab = TinyTextModel.vocab
        let expectedText = ids.filter { $0 != 2 }.map { $0 < vocab.count && $0 > 2 ? vocab[$0] : "" }.joined()
        #expect(json["text"] as? String == expectedText)
        let streamed = try CLI.run(args)
        #expect(streamed.status == 0)
        #expect(streamed.stdout == expectedText + "\n")
    }

    @Test func promptIsEncodedWithTheTokenizersSpecialTokens() throws {
        let model = try TinyTextModel.make()
        let json = try #require(try CLI.run(["generate", "--model", model, "--prompt", "the in", "--max-tokens", "0", "--json"]).json)
        // <s>, then the characters with the merges applied.
        let vocab = TinyTextModel.vocab
        let prompt = try #require(json["prompt_ids"] as? [Int])
        #expect(prompt.first == 1)
        #expect(prompt.dropFirst().map { vocab[$0] }.joined() == "the in")
        #expect(prompt.count < 7)   // merges applied
    }

    @Test func stopStringsCutTheText() throws {
        let model = try TinyTextModel.make()
        let base = ["generate", "--model", model, "--prompt", "the cat", "--temperature", "0", "--max-tokens", "12", "--json"]
        let full = try #require(try CLI.run(base).json?["text"] as? String)
        try #require(full.count >= 4, "the greedy text is too short to cut: \(full.debugDescription)")
        let stop = String(full.dropFirst(2).prefix(2))
        let json = try #require(try CLI.run(base + ["--stop", stop]).json)
        #expect(json["finish_reason"] as? String == "stop")
        let text = try #require(json["text"] as? String)
        #expect(!text.contains(stop) && full.hasPrefix(text) && full.dropFirst(text.count).hasPrefix(stop))
    }

    @Test func scoreFileEqualsScoreOfItsIds() throws {
        let model = try TinyTextModel.make()
        let file = model + "/sample.txt"
        try "the quick fox".write(toFile: file, atomically: true, encoding: .utf8)
        let byFile = try #require(try CLI.run(["score", "--model", model, "--file", file, "--json"]).json)
        let ids = try #require(try CLI.run(["generate", "--model", model, "--prompt", "the quick fox", "--max-tokens", "0", "--json"])
            .json?["prompt_ids"] as? [Int])
        let byIds = try #require(try CLI.run(["score", "--model", model, "--ids", ids.map(String.init).joined(separator: ","), "--json"]).json)
        #expect(byFile["tokens"] as? Int == ids.count)
        #expect(byFile["nll"] as? [Double] == byIds["nll"] as? [Double])
    }

    @Test func tokenizeMatchesTheTokenizersLibrary() throws {
        let family = CLI.repo.appendingPathComponent("Tests/Fixtures/tokenizers/qwen2-bytelevel").path
        let strings = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: CLI.repo
            .appendingPathComponent("Tests/Fixtures/tokenizers/strings.json"))) as? [String])
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: family + "/expected.json"))) as? [String: Any])
        let n = 40
        let input = strings.prefix(n).map { String(decoding: try! JSONSerialization.data(withJSONObject: [$0]), as: UTF8.self).dropFirst().dropLast() }
            .joined(separator: "\n") + "\n"
        let r = try CLI.run(["tokenize", "--tokenizer", family, "--jsonl"], stdin: input)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == n)
        let wantIds = try #require(expected["ids"] as? [Any])
        for (i, line) in lines.enumerated() {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let want: [Int] = (wantIds[i] as? [Int]) ?? ((wantIds[i] as? String)?.split(separator: " ").compactMap { Int($0) } ?? [])
            #expect(obj["ids"] as? [Int] == want, "string \(i)")
        }
        let bad = try CLI.run(["tokenize", "--tokenizer", family, "--jsonl"], stdin: "\"ok\"\nnot json\n")
        #expect(bad.status == 1 && bad.stderr == "error: stdin line 2: not a JSON string\n")
    }
}

/// What scripts need (the first hour, item 14): stdin, plain lines, the tokens, tidy numbers.
@Suite struct ScriptingTests {
    @Test func promptAndFileFromStandardInput() throws {
        let model = try TinyTextModel.make()
        let viaArg = try #require(try CLI.run(["generate", "--model", model, "--prompt", "the cat", "--temperature", "0", "--max-tokens", "5", "--json"]).json)
        let viaStdin = try #require(try CLI.run(["generate", "--model", model, "--prompt", "-", "--temperature", "0", "--max-tokens", "5", "--json"],
                                                stdin: "the cat").json)
        #expect(viaStdin["prompt_ids"] as? [Int] == viaArg["prompt_ids"] as? [Int] && viaStdin["ids"] as? [Int] == viaArg["ids"] as? [Int])
        let scored = try #require(try CLI.run(["score", "--model", model, "--file", "-", "--json"], stdin: "the quick fox").json)
        #expect((scored["ids"] as? [Int])?.count == scored["tokens"] as? Int && (scored["nll"] as? [Double])?.count == (scored["tokens"] as! Int) - 1)
        let text = try CLI.run(["score", "--model", model, "--file", "-"], stdin: "the quick fox")
        #expect(text.stdout.range(of: #"perplexity: \d+\.\d{3}\n"#, options: .regularExpression) != nil, "\(text.stdout)")
    }

    @Test func tokenizeReadsPlainLines() throws {
        let model = try TinyTextModel.make()
        let r = try CLI.run(["tokenize", "--tokenizer", model], stdin: "the\nin the\n")
        let lines = r.stdout.split(separator: "\n").map { $0.split(separator: " ").compactMap { Int($0) } }
        let json = try CLI.run(["tokenize", "--tokenizer", model, "--jsonl"], stdin: "\"the\"\n\"in the\"\n")
        let ids = json.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.map { $0["ids"] as? [Int] }
        #expect(r.status == 0 && lines.count == 2 && lines.map(Optional.some) == ids)
    }

    @Test func greedyRunsPrintNoSeedAndSampledRunsDo() throws {
        let model = try TinyTextModel.make()
        let greedy = try CLI.run(["generate", "--model", model, "--prompt", "the", "--temperature", "0", "--max-tokens", "3"])
        #expect(!greedy.stderr.contains("seed") && greedy.json == nil)
        let sampled = try CLI.run(["generate", "--model", model, "--prompt", "the", "--temperature", "0.8", "--max-tokens", "3", "--seed", "5", "--json"])
        #expect(sampled.json?["seed"] as? Int == 5)
    }
}
