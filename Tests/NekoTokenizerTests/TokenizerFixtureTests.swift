import Foundation
import NekoJSON
@testable import NekoTokenizer
import Testing

/// Tests/Fixtures/tokenizers: tokenizer files and what the `tokenizers` library makes of
/// strings.json with them (Tests/Reference/tokenizers/make_tokenizer_fixtures.py).
enum TokenizerFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers")

    static let families: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent("\($0)/expected.json").path) }.sorted()
    }()

    static func json(_ relative: String) throws -> JSONValue {
        try JSONValue.parse([UInt8](Data(contentsOf: root.appendingPathComponent(relative))))
    }

    static let strings: [String] = ((try? json("strings.json"))?.array ?? []).compactMap(\.string)

    /// An id list stored as a JSON list or as a space-separated string.
    static func ids(_ v: JSONValue) -> [Int] {
        if let s = v.string { return s.split(separator: " ").compactMap { Int($0) } }
        return v.array?.compactMap(\.int) ?? []
    }
}

@Suite struct TokenizerFixtureTests {
    @Test func atLeastThreeFamiliesAndAThousandStrings() {
        #expect(TokenizerFixtures.families.count >= 3, "\(TokenizerFixtures.families)")
        #expect(TokenizerFixtures.strings.count >= 1000)
    }

    @Test(arguments: TokenizerFixtures.families)
    func encodeAndDecodeMatchTheTokenizersLibrary(family: String) throws {
        let tokenizer = try Tokenizer.load(TokenizerFixtures.root.appendingPathComponent(family).path)
        let expected = try TokenizerFixtures.json("\(family)/expected.json")
        let ids = try #require(expected["ids"]?.array), plain = try #require(expected["ids_no_special"]?.array)
        let decoded = try #require(expected["decoded"]?.array)
        #expect(ids.count == TokenizerFixtures.strings.count)
        var failures = 0
        for (i, s) in TokenizerFixtures.strings.enumerated() where i < ids.count {
            let want = TokenizerFixtures.ids(ids[i])
            let got = tokenizer.encode(s)
            let gotPlain = tokenizer.encode(s, addSpecialTokens: false)
            let text = tokenizer.decode(want)
            let ok = got == want && gotPlain == TokenizerFixtures.ids(plain[i])
                && Array(text.unicodeScalars) == Array((decoded[i].string ?? "").unicodeScalars)
            if !ok {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(family) string \(i) \(s.debugDescription.prefix(60)): ids \(got.prefix(12)) want \(want.prefix(12)); decoded \(text.debugDescription.prefix(60))")
                }
            }
        }
        #expect(failures == 0, "\(family): \(failures) of \(TokenizerFixtures.strings.count) strings differ")
    }

    @Test(arguments: TokenizerFixtures.families)
    func decodeEdgeCases(family: String) throws {
        let tokenizer = try Tokenizer.load(TokenizerFixtures.root.appendingPathComponent(family).path)
        let cases = try TokenizerFixtures.json("\(family)/expected.json")["decode_cases"]?.array ?? []
        for c in cases {
            let ids = TokenizerFixtures.ids(c["ids"] ?? .null)
            let skip = c["skip_special"]?.bool ?? false
            let text = tokenizer.decode(ids, skipSpecialTokens: skip)
            #expect(Array(text.unicodeScalars) == Array((c["text"]?.string ?? "").unicodeScalars),
                    "\(family) \(ids) skip \(skip): \(text.debugDescription)")
        }
    }

    /// Streaming: each piece extends a prefix of the full decode, and all pieces add up to it.
    @Test(arguments: TokenizerFixtures.families)
    func streamingDetokenizerNeverEmitsBrokenText(family: String) throws {
        let tokenizer = try Tokenizer.load(TokenizerFixtures.root.appendingPathComponent(family).path)
        let expected = try TokenizerFixtures.json("\(family)/expected.json")
        let all = try #require(expected["ids"]?.array).map(TokenizerFixtures.ids)
        var checked = 0
        for ids in all.prefix(400) {
            let full = Array(tokenizer.decode(ids).unicodeScalars)
            var stream = StreamingDetokenizer(tokenizer: tokenizer)
            var text: [Unicode.Scalar] = []
            for id in ids {
                text += stream.add(id).unicodeScalars
                #expect(full.starts(with: text), "\(family) \(ids): streamed \(String(String.UnicodeScalarView(text)).debugDescription)")
            }
            text += stream.finish().unicodeScalars
            #expect(text == full, "\(family) \(ids)")
            checked += 1
        }
        #expect(checked > 0)
    }
}
