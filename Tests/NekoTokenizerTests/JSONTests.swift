import NekoJSON
import Testing

@Suite struct JSONTests {
    @Test func keepsKeyOrderAndCanonicallyEquivalentKeysApart() throws {
        let v = try JSONValue.parse(#"{"z": 1, "é": 2, "e\u0301": 3, "a": [true, null, 2.0, -3e2]}"#)
        let members = try #require(v.members)
        #expect(members.map(\.key).map { Array($0.unicodeScalars) } == [["z"], ["é"], ["e", "\u{301}"], ["a"]])
        #expect(v["é"] == .int(2))
        #expect(v["e\u{301}"] == .int(3))
        #expect(v["a"] == .array([.bool(true), .null, .double(2.0), .double(-300)]))
    }

    @Test func aRepeatedKeyReadsAsItsLastValueLikePython() throws {
        let v = try JSONValue.parse(#"{"a": 1, "a": 2}"#)
        #expect(v["a"] == .int(2) && v.members?.count == 2)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#) == .string("a\"\\/\u{8}\u{c}\n\r\té😀"))
        #expect(try JSONValue.parse(#""\ud800x""#) == .string("\u{FFFD}x"))
    }

    @Test(arguments: [("{\"a\": }", 1, 7), ("[1,\n 2,,]", 2, 4), ("\"abc", 1, 5), ("{} x", 1, 4), ("01", 1, 2)])
    func syntaxErrorsHaveLineAndColumn(text: String, line: Int, column: Int) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
        do { _ = try JSONValue.parse(text) } catch let e as JSONSyntaxError {
            #expect(e.line == line && e.column == column, "\(e)")
        } catch {}
    }
}
