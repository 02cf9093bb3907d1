import Foundation
@testable import NekoTokenizer
import Testing

/// Writes a tokenizer.json built from parts, for behaviour the real files do not pin down.
func makeTokenizer(vocab: [String], merges: [String] = [], model: [String: String] = [:],
                   normalizer: String = "null", preTokenizer: String = "null", decoder: String = "null",
                   postProcessor: String = "null", added: String = "[]") throws -> Tokenizer {
    func quote(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.fragmentsAllowed])
        let text = String(decoding: data, as: UTF8.self)
        return String(text.dropFirst().dropLast())
    }
    let vocabJSON = vocab.enumerated().map { "\(quote($0.element)): \($0.offset)" }.joined(separator: ", ")
    let mergesJSON = merges.map(quote).joined(separator: ", ")
    let options = model.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ")
    let json = """
        {"version": "1.0", "added_tokens": \(added), "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer),
         "post_processor": \(postProcessor), "decoder": \(decoder),
         "model": {"type": "BPE", "vocab": {\(vocabJSON)}, "merges": [\(mergesJSON)]\(options.isEmpty ? "" : ", " + options)}}
        """
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString).json").path
    try json.write(toFile: path, atomically: true, encoding: .utf8)
    return try Tokenizer(path: path)
}

@Suite struct TokenizerUnitTests {
    @Test func mergesApplyByRankAndIgnoreMergesTakesWholeWords() throws {
        let vocab = ["a", "b", "c", "ab", "bc", "abc", "ca"]
        let t = try makeTokenizer(vocab: vocab, merges: ["b c", "a b", "ab c"])
        #expect(t.encode("abc") == [0, 4])            // "b c" ranks first: a + bc, and "a bc" is no merge
        let u = try makeTokenizer(vocab: vocab, merges: ["a b", "ab c"])
        #expect(u.encode("abc") == [5])
        let ignoring = try makeTokenizer(vocab: vocab, merges: ["b c"], model: ["ignore_merges": "true"])
        #expect(ignoring.encode("abc") == [5])          // in the vocabulary as a whole word
        #expect(ignoring.encode("cab") == [2, 0, 1])
    }

    @Test func mergesAsPairs() throws {
        let json = try makeTokenizer(vocab: ["a", "b", "ab"], merges: [])
        #expect(json.encode("ab") == [0, 1])
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tok-pairs.json").path
        try #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Tokenizer(path: path).encode("ab") == [2])
    }

    @Test func unknownTokensFuseOnlyWhenAsked() throws {
        let fused = try makeTokenizer(vocab: ["<unk>", "a"], model: ["unk_token": "\"<unk>\"", "fuse_unk": "true"])
        #expect(fused.encode("xya") == [0, 1])
        let apart = try makeTokenizer(vocab: ["<unk>", "a"], model: ["unk_token": "\"<unk>\""])
        #expect(apart.encode("xya") == [0, 0, 1])
        let none = try makeTokenizer(vocab: ["a"])
        #expect(none.encode("xya") == [0])              // no unk_token: unknown characters are dropped
    }

    @Test func byteFallbackAndItsDecoding() throws {
        var vocab = ["<unk>", "a"]
        vocab += (0..<256).map { String(format: "<0x%02X>", $0) }
        let t = try makeTokenizer(vocab: vocab, model: ["unk_token": "\"<unk>\"", "byte_fallback": "true"],
                                  decoder: #"{"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}"#)
        let ids = t.encode("aé")
        #expect(ids == [1, 2 + 0xC3, 2 + 0xA9])
        #expect(t.decode(ids) == "aé")
        #expect(t.decode([2 + 0xE2, 2 + 0x82, 1]) == "\u{FFFD}\u{FFFD}a")  // one U+FFFD per invalid byte
    }

    @Test func splitBehaviours() throws {
        let text = "a-b--c"
        func pieces(_ behavior: String, invert: Bool = false) throws -> [String] {
            let r = ComponentReader(file: "t", field: "p", json: try .parse(
                #"{"type": "Split", "pattern": {"String": "-"}, "behavior": "\#(behavior)", "invert": \#(invert)}"#))
            return try PreTokenizers.make(r).split(Piece(text: Array(text.unicodeScalars), atStart: true))
                .map { String(String.UnicodeScalarView($0.text)) }
        }
        // Expected values printed by tokenizers 0.23's pre_tokenizers.Split(…).pre_tokenize_str.
        #expect(try pieces("Removed") == ["a", "b", "c"])
        #expect(try pieces("Isolated") == ["a", "-", "b", "-", "-", "c"])
        #expect(try pieces("MergedWithPrevious") == ["a-", "b-", "-", "c"])
        #expect(try pieces("MergedWithNext") == ["a", "-b", "-", "-c"])
        #expect(try pieces("Contiguous") == ["a", "-", "b", "--", "c"])
        #expect(try pieces("Removed", invert: true) == ["-", "-", "-"])
        #expect(try pieces("MergedWithPrevious", invert: true) == ["a", "-b", "-", "-c"])
        #expect(try pieces("MergedWithNext", invert: true) == ["a-", "b-", "-", "c"])
    }

    @Test(arguments: [
        (#"{"type": "Precompiled", "precompiled_charsmap": ""}"#, "normalizer", "tokenizer.normalizer"),
        (#"{"type": "UnicodeScripts"}"#, "pre_tokenizer", "tokenizer.pre_tokenizer"),
        (#"{"type": "CTC"}"#, "decoder", "tokenizer.decoder"),
        (#"{"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, {"type": "FancyThing"}]}"#, "pre_tokenizer",
         "tokenizer.pre_tokenizer.pretokenizers[1]"),
    ])
    func unsupportedComponentsAreLoadErrorsNamingThem(component: String, key: String, field: String) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString).json").path
        try #"{"\#(key)": \#(component), "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            try Tokenizer(path: path)
        } throws: { error in
            guard case let TokenizerError.unsupported(file, f, _) = error else { return false }
            return file == path && f == field
        }
    }

    @Test func unsupportedModelsAndBadFilesAreErrors() throws {
        let dir = FileManager.default.temporaryDirectory.path
        let wordPiece = dir + "/tok-wp.json", broken = dir + "/tok-broken.json"
        try #"{"model": {"type": "WordPiece", "vocab": {}}}"#.write(toFile: wordPiece, atomically: true, encoding: .utf8)
        try #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}"#.write(toFile: broken, atomically: true, encoding: .utf8)
        #expect(throws: TokenizerError.unsupported(file: wordPiece, field: "tokenizer.model", type: "WordPiece")) {
            try Tokenizer(path: wordPiece)
        }
        #expect(throws: TokenizerError.format(file: broken, field: "tokenizer.model.merges",
                                              message: "merge 0 uses a token missing from the vocabulary")) {
            try Tokenizer(path: broken)
        }
        #expect(throws: TokenizerError.io(path: "/nonexistent/tokenizer.json", message: "cannot read the file")) {
            try Tokenizer(path: "/nonexistent/tokenizer.json")
        }
    }

    @Test func addedTokensMatchLongestFirstAndHonourTheirFlags() throws {
        let added = """
            [{"id": 10, "content": "<x>", "special": true, "normalized": false},
             {"id": 11, "content": "<xy>", "special": true, "normalized": false},
             {"id": 12, "content": "cat", "special": false, "normalized": false, "single_word": true},
             {"id": 13, "content": "<r>", "special": false, "normalized": false, "lstrip": true, "rstrip": true}]
            """
        let t = try makeTokenizer(vocab: ["a", " ", "c", "t"], added: added)
        #expect(t.encode("a<xy>a<x>") == [0, 11, 0, 10])
        #expect(t.encode("a cat a") == [0, 1, 12, 1, 0])
        #expect(t.encode("acat") == [0, 2, 0, 3])       // "cat" inside a word is not the token
        #expect(t.encode("a\u{349}cat").suffix(3) == [2, 0, 3])  // nor after a combining mark (a \w character)
        #expect(t.encode("a  <r>  a") == [0, 13, 0])     // lstrip / rstrip swallow the spaces
        #expect(t.decode([0, 11, 0], skipSpecialTokens: true) == "a a")
    }
}

/// Hostile tokenizer.json files: each is an error naming the field (one crashed `tokenize`,
/// one hung it, two were read as something they were not).
@Suite struct HostileTokenizerTests {
    func refused(_ words: String, _ build: () throws -> Tokenizer) {
        do { _ = try build(); Issue.record("loaded") } catch { #expect("\(error)".contains(words), "\(error)") }
    }

    @Test func addedTokensAreBounded() {
        let long = String(repeating: "x", count: 100_000)
        refused("added_tokens[0].content") {
            try makeTokenizer(vocab: ["a"], added: #"[{"id": 1, "content": "\#(long)", "special": true}]"#)
        }
        refused("added_tokens[0].id") { try makeTokenizer(vocab: ["a"], added: #"[{"id": -5, "content": "<x>"}]"#) }
        refused("added_tokens[0].id") { try makeTokenizer(vocab: ["a"], added: #"[{"id": 1099511627776, "content": "<x>"}]"#) }
    }

    @Test func aTypeThatIsNotAStringIsAnError() {
        refused("model.type") { try makeTokenizer(vocab: ["a"], model: ["type": "5"]) }
        refused("decoder.type") { try makeTokenizer(vocab: ["a"], decoder: #"{"type": ["Fuse"]}"#) }
    }

    @Test func catastrophicPreTokenizerPatternsAreRefused() {
        refused("exponential time") {
            try makeTokenizer(vocab: ["a"], preTokenizer: #"{"type": "Split", "pattern": {"Regex": "(a+)+$"}, "behavior": "Isolated", "invert": false}"#)
        }
    }
}
