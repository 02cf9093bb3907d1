@testable import NekoTokenizer
import Testing

func split(_ pattern: String, _ text: String) throws -> [String] {
    let scalars = Array(text.unicodeScalars)
    return try ScalarRegex(pattern).matches(in: scalars).map { String(String.UnicodeScalarView(scalars[$0])) }
}

@Suite struct RegexTests {
    static let gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    @Test func gpt2SplitsOnScalarsNotGraphemes() throws {
        // Swift's Regex would keep " é" together; tokenizers (Oniguruma) splits the combining mark off.
        #expect(try split(Self.gpt2, "Hello  world's e\u{301}!!") == ["Hello", " ", " world", "'s", " e", "\u{301}!!"])
        #expect(try split(Self.gpt2, "a   \n b") == ["a", "   \n", " b"])   // as Python's `regex`
    }

    @Test func qwen2CaseInsensitiveContractionsAndDigits() throws {
        #expect(try split(Self.qwen2, "I'M 123abc\r\n\r\nx") == ["I", "'M", " ", "1", "2", "3", "abc", "\r\n\r\n", "x"])
        #expect(try split(Self.qwen2, "$$hello") == ["$$", "hello"])   // [^\r\n\p{L}\p{N}]? takes one, ` ?[^\s…]+` the rest
    }

    @Test func alternationIsLeftmostFirstAndQuantifiersBacktrack() throws {
        #expect(try split("a|ab", "ab") == ["a"])
        #expect(try split("ab|a", "ab") == ["ab"])
        #expect(try split("a.*?b", "aXbYb") == ["aXb"])
        #expect(try split("a.*b", "aXbYb") == ["aXbYb"])
        #expect(try split(#"\d{1,3}"#, "12345") == ["123", "45"])
        #expect(try split(#"\p{N}{1,3}"#, "١٢٣٤") == ["١٢٣", "٤"])
        #expect(try split(#"x(?=y)"#, "xzxy") == ["x"])
        #expect(try split(#"[^a-c\s]+"#, "abXYc d1") == ["XY", "d1"])
        #expect(try split(#"(?i)abc"#, "xABcx") == ["ABc"])
        #expect(try split(#"\bhi\b"#, "hi hip chi hi") == ["hi", "hi"])
    }

    @Test func unicodeClasses() throws {
        #expect(try split(#"\p{L}+"#, "abc日本語 ñ") == ["abc日本語", "ñ"])
        #expect(try split(#"\s+"#, "a\u{a0}\u{3000}b\u{85}c") == ["\u{a0}\u{3000}", "\u{85}"])
        #expect(try split(#"\w+"#, "héllo_wörld-x") == ["héllo_wörld", "x"])
        #expect(try split(#"\P{L}+"#, "ab12cd") == ["12"])
    }

    @Test(arguments: [#"(?<=a)b"#, #"a++"#, "(ab", "ab)", #"\p{Foo}"#, "*a", #"\1"#, "a{3,1}", "a{2000}"])
    func unsupportedOrMalformedPatternsAreErrors(pattern: String) {
        #expect(throws: RegexError.self) { try ScalarRegex(pattern) }
    }

    @Test func hugeRepeatCountsDoNotOverflow() throws {
        // Read as a literal brace (the digits stop counting), never an arithmetic trap.
        _ = try? ScalarRegex("a{99999999999999999999}")
    }

    @Test func nullableLoopsTerminate() throws {
        let r = try split("(a?)*b", "aab")
        #expect(r == ["aab"], "\(r)")
        #expect(try split("(?:a|)+b", "aab") == ["aab"])
    }

    /// Patterns that backtrack exponentially are refused when the tokenizer loads (they hung
    /// `tokenize` for minutes); bounded inner repetitions stay allowed.
    @Test(arguments: ["(a+)+$", "(a*)*b", "(\\w+\\s*)*x", "(?:a{1,}){2,}", "((ab)+c)*", "(?:a{0,1000}){0,1000}", "(?:(?:a{1,2}){3}){2,}"])
    func nestedUnboundedRepetitionsAreRefused(pattern: String) {
        #expect(throws: RegexError.self) { try ScalarRegex(pattern) }
    }

    @Test func boundedInnerRepetitionsAreFine() throws {
        #expect(try split("(?:ab?){2,}", "abaab") == ["abaab"])
        #expect(try split("\\p{N}{1,3}", "12345") == ["123", "45"])
    }

    /// A pattern is a string in tokenizer.json: deep nesting and huge expansions fail with an
    /// error naming the limit (they overflowed the stack or filled memory).
    @Test func nestingAndSizeAreBounded() throws {
        #expect(try split("(?:(?:a{3}){2})+", "aaaaaab") == ["aaaaaa"])
        for (pattern, words) in [(String(repeating: "(", count: 100_000) + "a" + String(repeating: ")", count: 100_000), "nest deeper"),
                                 ("(?:(?:a{1000}){1000}){1000}", "instructions")] {
            do {
                _ = try ScalarRegex(pattern)
                Issue.record("accepted")
            } catch let e as RegexError {
                #expect("\(e)".contains(words), "\(e)")
            }
        }
    }
}
