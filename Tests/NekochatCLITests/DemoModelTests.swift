import Foundation
import Testing

/// The built-in demo model, through the binary with no --model: what a new user runs first.
@Suite struct DemoModelTests {
    static let fixtures = CLI.repo.appendingPathComponent("Tests/Fixtures/demo")

    /// `nekochat score` reproduces the float64 PyTorch reference's perplexity on held-out text
    /// (Tests/Reference/demo/evaluate_demo.py) to 1e-3 relative, and encodes it to the same ids.
    @Test func scoreMatchesTheReference() throws {
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("expected_score.json"))) as? [String: Any])
        let file = Self.fixtures.appendingPathComponent("heldout_sample.txt").path
        let r = try CLI.run(["score", "--file", file, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["tokens"] as? Int == expected["tokens"] as? Int)
        let ppl = try #require(json["perplexity"] as? Double), want = try #require(expected["perplexity"] as? Double)
        #expect(abs(ppl / want - 1) < 1e-3, "perplexity \(ppl), reference \(want)")

        let ids = try #require(expected["ids"] as? [Int])
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let line = String(decoding: try JSONSerialization.data(withJSONObject: [text]), as: UTF8.self).dropFirst().dropLast()
        let tokenized = try CLI.run(["tokenize", "--jsonl"], stdin: line + "\n")
        let got = try #require(try JSONSerialization.jsonObject(with: Data(tokenized.stdout.utf8)) as? [String: Any])
        #expect(got["ids"] as? [Int] == ids)
    }

    @Test func chatRepliesEndAtTheEndOfTurn() throws {
        let r = try CLI.run(["generate", "--chat", "--prompt", "Good morrow, sir.", "--max-tokens", "200", "--seed", "7", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        let text = try #require(json["text"] as? String)
        #expect(!text.isEmpty && !text.contains("<|im_end|>") && !text.contains("<|im_start|>"))
        #expect(["eos", "stop", "length"].contains(json["finish_reason"] as? String ?? ""))
    }
}
