@testable import NekoTemplate
import Testing

/// Hostile templates end with an error naming the limit: never a hang, a stack overflow or
/// memory exhaustion (each of these hung or crashed before the limits).
@Suite struct LimitsTests {
    func render(_ source: String) throws -> String { try Template(source).render([:]) }

    func fails(_ source: String, saying words: String) {
        do {
            let out = try render(source)
            Issue.record("rendered \(out.count) characters instead of failing")
        } catch let e as TemplateError {
            #expect(e.description.contains(words), "\(e)")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func nestingIsBounded() throws {
        fails("{{ " + String(repeating: "(", count: 20_000) + "1" + String(repeating: ")", count: 20_000) + " }}", saying: "nests deeper")
        fails(String(repeating: "{% if 1 %}", count: 5_000) + "x" + String(repeating: "{% endif %}", count: 5_000), saying: "nests deeper")
        fails("{{ " + String(repeating: "not ", count: 5_000) + "1 }}", saying: "nests deeper")
        fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", saying: "recursion")
        // A recursive loop that calls loop() on itself for ever (it overflowed the stack).
        fails("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", saying: "recursion")
        #expect(try render("{% for x in [[1, [[2, []]]]] recursive %}{{ x[0] }}{{ loop(x[1]) }}{% endfor %}") == "12")
        #expect(try render("{{ " + String(repeating: "(", count: 100) + "1" + String(repeating: ")", count: 100) + " }}") == "1")
    }

    @Test func workAndSizeAreBounded() throws {
        fails("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", saying: "steps")
        fails("{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}", saying: "steps")
        fails("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", saying: "output")
        fails("{% set ns = namespace(s='a') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", saying: "string longer")
        fails("{{ 'a' | center(1000000000) }}", saying: "center width")
        fails("{{ range(1000000000) | list }}", saying: "Range too big")
        fails("{{ 'a' * 10 ** 9 }}", saying: "repetition too large")
    }

    @Test func integersStayExactOrFail() throws {
        fails("{{ 99999999999999999999 }}", saying: "beyond 64 bits")
        fails("{{ -(-9223372036854775807 - 1) }}", saying: "beyond 64 bits")
        fails("{{ 2 ** 64 }}", saying: "beyond 64 bits")
        #expect(try render("{{ 1 ** 1000000000000000000 }}|{{ 3 ** 39 }}|{{ (-2) ** 63 }}|{{ 0 ** 9 }}|{{ 2 ** -1 }}")
                == "1|4052555153018976267|-9223372036854775808|0|0.5")
    }
}

/// The classes a structure-aware fuzz of real templates found (21 crashes and a hang in 1,118
/// cases): each fails cleanly now, naming the limit, and renders within a second.
@Suite struct HostileTemplateTests {
    func render(_ source: String) throws -> String { try Template(source).render([:]) }

    func fails(_ source: String, saying words: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let start = ContinuousClock.now
        do {
            let out = try render(source)
            Issue.record("rendered \(out.count) characters instead of failing", sourceLocation: sourceLocation)
        } catch let e as TemplateError {
            #expect(e.description.contains(words), "\(e)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
        #expect(ContinuousClock.now - start < .seconds(5), "too slow: \(source.prefix(60))", sourceLocation: sourceLocation)
    }

    /// 100,000 links of every chain the parser builds in a loop (not by recursion): each is a
    /// level of nesting, so each is an error naming the limit — not an AST whose evaluation or
    /// freeing overflows the stack.
    @Test(arguments: [
        ("'a'", " ~ 'a'"), ("1", " + 1"), ("1", " - 1"), ("2", " * 1"), ("1", " // 1"), ("2", " ** 1"),
        ("true", " or true"), ("true", " and true"), ("x", "[0]"), ("x", ".a"), ("x", "()"),
        ("'a'", "|upper"), ("1", " is number"), ("'a'", "|trim|lower"),
    ])
    func longChainsAreBounded(head: String, link: String) {
        fails("{{ " + head + String(repeating: link, count: 100_000) + " }}", saying: "nests deeper")
    }

    @Test func chainsOfRealLengthStillRender() throws {
        #expect(try render("{{ 'a'" + String(repeating: " ~ 'a'", count: 400) + " }}") == String(repeating: "a", count: 401))
        #expect(try render("{{ 1" + String(repeating: " + 1", count: 400) + " }}") == "401")
        #expect(try render("{% set x = {'a': {'a': {'a': 1}}} %}{{ x.a.a.a }}{{ ('a' " + String(repeating: "|upper", count: 300) + ") }}") == "1A")
        // Chains inside nesting inside chains: still bounded, still fine at sizes people write.
        let inner = "(" + String(repeating: "1 + ", count: 100) + "1)"
        #expect(try render("{{ " + Array(repeating: inner, count: 50).joined(separator: " + ") + " }}") == "5050")
    }

    @Test func integerExtremesFailCleanly() {
        fails("{{ (-9223372036854775807 - 1) | abs }}", saying: "beyond 64 bits")
        fails("{{ (-9223372036854775807 - 1) // -1 }}", saying: "beyond 64 bits")
        fails("{{ 'a\nb' | indent(9223372036854775807) }}", saying: "indent width")
        fails("{{ 'a\nb' | indent(30000000) }}", saying: "longer than")
        fails("{{ [1, [2]] | tojson(indent=9223372036854775807) }}", saying: "tojson indent")
        fails("{{ '%9223372036854775807d' % 1 }}", saying: "format width")
        fails("{{ '%99999999999999999999999d' % 1 }}", saying: "format width")
        fails("{{ '%.9999999999f' % 1.5 }}", saying: "format precision")
        fails("{{ '{:>9223372036854775807}'.format(1) }}", saying: "format width")
        fails("{{ '{:.99999}f'.format(1.5) }}", saying: "format precision")
        fails("{{ 1.5 | round(9223372036854775807) }}", saying: "round precision")
        fails("{{ 1.5 | round(-9223372036854775807 - 1) }}", saying: "round precision")
        fails("{{ 'a\tb'.expandtabs(9223372036854775807) }}", saying: "tab size")
        fails("{{ 'a'.center(10, 'xy') }}", saying: "exactly one character")
    }

    @Test func extremesThatPythonAnswersAreAnsweredTheSame() throws {
        #expect(try render("{{ (-9223372036854775807 - 1) % -1 }}") == "0")
        #expect(try render("{{ [1, [2]] | tojson(indent=-3) }}") == "[\n1,\n[\n2\n]\n]")
        #expect(try render("{{ (10.0 ** 400) }}") == "inf")
        #expect(try render("{{ (10.0 ** 400) | int }}") == "0")
        #expect(try render("{{ '%5d|%-4s|%.2f' % (7, 'ab', 1.234) }}") == "    7|ab  |1.23")
    }

    /// A width of 10⁹ hung for seconds building a gigabyte of spaces before the output limit.
    @Test func aHugeWidthFailsAtOnce() {
        fails("{{ '%1000000000d' % 1 }}", saying: "format width")
        fails("{{ '{:1000000000}'.format(1) }}", saying: "format width")
    }
}
