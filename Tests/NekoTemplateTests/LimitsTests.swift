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
