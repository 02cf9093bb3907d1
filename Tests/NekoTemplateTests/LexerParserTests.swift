@testable import NekoTemplate
import Testing

/// The Jinja lexer and parser on their own (the golden tests cover whole templates).
@Suite struct LexerTests {
    func kinds(_ source: String) throws -> [Token.Kind] { try Lexer.tokenize(source).map(\.kind) }

    @Test func textVariablesAndBlocks() throws {
        #expect(try kinds("Hello {{ name }}!") == [.text("Hello "), .variableBegin, .name("name"), .variableEnd, .text("!"), .eof])
        #expect(try kinds("{% if x %}y{% endif %}") == [.blockBegin, .name("if"), .name("x"), .blockEnd, .text("y"),
                                                          .blockBegin, .name("endif"), .blockEnd, .eof])
        #expect(try kinds("a{# a comment #}b") == [.text("a"), .text("b"), .eof])
    }

    @Test func literalsAndOperators() throws {
        #expect(try kinds("{{ 'it\\'s' ~ \"\\n\" }}") == [.variableBegin, .string("it's"), .op("~"), .string("\n"), .variableEnd, .eof])
        #expect(try kinds("{{ 12 + 3.5e1 ** 2 // 7 }}") == [.variableBegin, .integer(12), .op("+"), .float(35), .op("**"), .integer(2),
                                                              .op("//"), .integer(7), .variableEnd, .eof])
        #expect(try kinds("{{ a == b != c <= d }}") == [.variableBegin, .name("a"), .op("=="), .name("b"), .op("!="), .name("c"),
                                                          .op("<="), .name("d"), .variableEnd, .eof])
    }

    /// transformers' settings: trim_blocks and lstrip_blocks on, `-` strips, `+` keeps.
    @Test func whitespaceControl() throws {
        #expect(try kinds("  {% if x %}\nA\n  {%- endif %}") == [.blockBegin, .name("if"), .name("x"), .blockEnd, .text("A"),
                                                                  .blockBegin, .name("endif"), .blockEnd, .eof])
        #expect(try kinds("a  {{- x -}}  b") == [.text("a"), .variableBegin, .name("x"), .variableEnd, .text("b"), .eof])
        #expect(try kinds("  {%+ if x %}") == [.text("  "), .blockBegin, .name("if"), .name("x"), .blockEnd, .eof])
        #expect(try kinds("x\r\n") == [.text("x"), .eof])   // newlines normalised, one trailing newline dropped
    }

    @Test func errorsNameTheirPlace() throws {
        #expect(throws: TemplateError.self) { try Lexer.tokenize("{{ 'open }}") }
        do { _ = try Lexer.tokenize("line one\n{{ 'open }}") } catch let e as TemplateError {
            #expect(e.kind == .syntax && e.line == 2)
        }
        #expect(throws: TemplateError.self) { try Lexer.tokenize("{{ x") }
    }
}

@Suite struct ParserTests {
    /// A compact form of the tree, to compare.
    func show(_ e: Expr) -> String {
        switch e {
        case let .literal(v): return v.str.isEmpty ? "''" : v.str
        case let .name(n): return n
        case let .list(items): return "[" + items.map(show).joined(separator: " ") + "]"
        case let .tuple(items): return "(tuple " + items.map(show).joined(separator: " ") + ")"
        case let .dict(pairs): return "{" + pairs.map { show($0.0) + ":" + show($0.1) }.joined(separator: " ") + "}"
        case let .attribute(b, n): return "(. \(show(b)) \(n))"
        case let .item(b, k): return "([] \(show(b)) \(show(k)))"
        case let .slice(b, x, y, z): return "(slice \(show(b)) \([x, y, z].map { $0.map(show) ?? "_" }.joined(separator: " ")))"
        case let .call(f, args, kw): return "(call \(show(f))" + (args.map(show) + kw.map { "\($0.0)=\(show($0.1))" }).map { " " + $0 }.joined() + ")"
        case let .filter(b, n, args, _): return "(|\(n) \(show(b))" + args.map { " " + show($0) }.joined() + ")"
        case let .test(b, n, args, neg): return "(is\(neg ? "not" : "") \(n) \(show(b))" + args.map { " " + show($0) }.joined() + ")"
        case let .unary(op, x): return "(\(op) \(show(x)))"
        case let .binary(op, a, b): return "(\(op) \(show(a)) \(show(b)))"
        case let .and(a, b): return "(and \(show(a)) \(show(b)))"
        case let .or(a, b): return "(or \(show(a)) \(show(b)))"
        case let .compare(a, rest): return "(cmp \(show(a))" + rest.map { " \($0.0) \(show($0.1))" }.joined() + ")"
        case let .conditional(a, c, o): return "(if \(show(c)) \(show(a)) \(o.map(show) ?? "_"))"
        case let .located(inner, _): return show(inner)
        }
    }

    func show(_ n: Node) -> String {
        switch n {
        case let .text(t): return "'\(t)'"
        case let .output(e): return "{\(show(e))}"
        case let .ifBlock(branches, otherwise):
            return "(if" + branches.map { " \(show($0.0)) [\($0.1.map(show).joined(separator: " "))]" }.joined()
                + (otherwise.isEmpty ? "" : " else [\(otherwise.map(show).joined(separator: " "))]") + ")"
        case let .forLoop(t, it, filter, body, otherwise, _):
            return "(for \(show(t)) \(show(it))" + (filter.map { " if \(show($0))" } ?? "")
                + " [\(body.map(show).joined(separator: " "))]" + (otherwise.isEmpty ? "" : " else [\(otherwise.map(show).joined(separator: " "))]") + ")"
        case let .set(t, e): return "(set \(show(t)) \(show(e)))"
        case let .setBlock(t, _, body): return "(setblock \(show(t)) [\(body.map(show).joined(separator: " "))])"
        case let .macro(m): return "(macro \(m.name) \(m.parameters.map(\.0).joined(separator: ",")) [\(m.body.map(show).joined(separator: " "))])"
        case let .callBlock(e, _, body): return "(callblock \(show(e)) [\(body.map(show).joined(separator: " "))])"
        case let .filterBlock(f, body): return "(filter \(f.map(\.0).joined(separator: "|")) [\(body.map(show).joined(separator: " "))])"
        case let .with(pairs, body): return "(with \(pairs.map { show($0.0) + "=" + show($0.1) }.joined(separator: " ")) [\(body.map(show).joined(separator: " "))])"
        case .breakLoop: return "break"
        case .continueLoop: return "continue"
        case let .generation(body): return "(generation [\(body.map(show).joined(separator: " "))])"
        case let .located(inner, _): return show(inner)
        }
    }

    func show(_ t: Target) -> String {
        switch t {
        case let .name(n): return n
        case let .attribute(a, b): return "\(a).\(b)"
        case let .tuple(ts): return "(" + ts.map(show).joined(separator: ",") + ")"
        }
    }

    func parse(_ source: String) throws -> String { try Parser.parse(source).map(show).joined(separator: " ") }

    @Test func operatorPrecedenceFollowsJinja() throws {
        #expect(try parse("{{ 1 + 2 * 3 }}") == "{(+ 1 (* 2 3))}")
        #expect(try parse("{{ -2 ** 2 }}") == "{(** (- 2) 2)}")   // jinja2: (-2) ** 2 = 4, unlike Python
        #expect(try parse("{{ a ~ b + c }}") == "{(+ (~ a b) c)}")   // jinja2: ~ binds tighter than +
        #expect(try parse("{{ not a in b and c or d }}") == "{(or (and (not (cmp a in b)) c) d)}")
        #expect(try parse("{{ a < b <= c }}") == "{(cmp a < b <= c)}")
        #expect(try parse("{{ x if y else z }}") == "{(if y x z)}")
    }

    @Test func postfixFiltersAndTests() throws {
        #expect(try parse("{{ m['content'][1:] | trim | replace('a', 'b') }}")
                == "{(|replace (|trim (slice ([] m content) 1 _ _)) a b)}")
        #expect(try parse("{{ x is not defined }}") == "{(isnot defined x)}")
        #expect(try parse("{{ ns.f(1, k=2).y }}") == "{(. (call (. ns f) 1 k=2) y)}")
        #expect(try parse("{{ [1, 2] + {'a': b}|list }}") == "{(+ [1 2] (|list {a:b}))}")
    }

    @Test func statements() throws {
        #expect(try parse("{% for m in ms if m.role != 'system' %}{{ m }}{% else %}none{% endfor %}")
                == "(for m ms if (cmp (. m role) != system) [{m}] else ['none'])")
        #expect(try parse("{% if a %}1{% elif b %}2{% else %}3{% endif %}") == "(if a ['1'] b ['2'] else ['3'])")
        #expect(try parse("{% set ns.x, y = 1, 2 %}") == "(set (ns.x,y) (tuple 1 2))")
        #expect(try parse("{% macro f(a, b=1) %}{{ a }}{% endmacro %}") == "(macro f a,b [{a}])")
        #expect(try parse("{% set t %}x{% endset %}") == "(setblock t ['x'])")
        #expect(try parse("{% for a, b in d.items() %}{% break %}{% endfor %}") == "(for (a,b) (call (. d items)) [break])")
    }

    @Test func syntaxErrorsNameTheirPlace() throws {
        for bad in ["{% for x in y %}", "{% if %}", "{% endif %}", "{{ 1 + }}", "{% frobnicate %}", "{{ a[ }}"] {
            #expect(throws: TemplateError.self, "\(bad)") { try Parser.parse(bad) }
        }
        do { _ = try Parser.parse("ok\n\n{% for x in y %}") } catch let e as TemplateError {
            #expect(e.kind == .syntax && e.line == 3, "\(e)")
        }
    }
}
