import Foundation
@testable import NekoChat
import NekoTokenizer
import Testing

@Suite struct TextStreamTests {
    static let tokenizer: Tokenizer? = try? Tokenizer.load(
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers/mistral-sp").path)

    func run(_ text: String, stops: [String]) throws -> (pieces: [String], stream: TextStream) {
        let tok = try #require(Self.tokenizer)
        var stream = TextStream(tokenizer: tok, stopStrings: stops)
        var pieces: [String] = []
        for id in tok.encode(text, addSpecialTokens: false) {
            pieces.append(stream.add(id))
            if stream.stopped { break }
        }
        pieces.append(stream.finish())
        return (pieces, stream)
    }

    @Test func withoutStopsTheStreamIsTheDecode() throws {
        let text = "Héllo wörld, 日本語 and 😀 emoji."
        let (pieces, stream) = try run(text, stops: [])
        #expect(pieces.joined() == text && stream.string == text && !stream.stopped)
        #expect(!pieces.contains { $0.unicodeScalars.contains("\u{FFFD}") })
    }

    @Test func aStopStringEndsTheTextBeforeIt() throws {
        let (pieces, stream) = try run("Once upon a time\nUser: hi", stops: ["\nUser:"])
        #expect(stream.stopped)
        #expect(stream.string == "Once upon a time")
        #expect(pieces.joined() == "Once upon a time")   // the held-back "\nUser" was never shown
    }

    @Test func textThatOnlyLooksLikeAStopStringIsReleased() throws {
        let (pieces, stream) = try run("a\nUse the force", stops: ["\nUser:"])
        #expect(!stream.stopped && pieces.joined() == "a\nUse the force")
    }
}
