import Foundation
import NekoJSON
@testable import NekoTemplate
import Testing

/// Tests/Fixtures/templates/goldens.json: renders by jinja2 through transformers' own
/// machinery (Tests/Reference/templates/make_template_goldens.py), with `strftime_now` pinned.
enum Goldens {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures/templates")
    /// ../shared/chat_templates: read only when present (the templates we may not redistribute).
    static let shared = repo.deletingLastPathComponent().appendingPathComponent("shared/chat_templates")

    static func json(_ url: URL) throws -> JSONValue { try JSONValue.parse([UInt8](Data(contentsOf: url))) }

    static let document: JSONValue? = try? json(fixtures.appendingPathComponent("goldens.json"))
    static let renders: [JSONValue] = document?["renders"]?.array ?? []
    static let conversations: [String: JSONValue] = {
        var out: [String: JSONValue] = [:]
        for c in (try? json(fixtures.appendingPathComponent("conversations.json")))?.array ?? [] {
            if let name = c["name"]?.string { out[name] = c }
        }
        return out
    }()

    /// 2025-01-15 10:30:00, the clock the goldens were made with.
    static let clock: Date = {
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute) = (2025, 1, 15, 10, 30)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: c)!
    }()

    static var templateNames: [String] { Array(Set(renders.compactMap { $0["template"]?.string })).sorted() }

    static func templateURL(_ render: JSONValue) -> URL? {
        guard let name = render["template"]?.string else { return nil }
        let dir = render["source"]?.string == "shared" ? shared : fixtures.appendingPathComponent("local")
        let url = dir.appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}

/// Where we knowingly differ from jinja2, and how: each must still differ exactly so (a fix
/// shows up as a failure here, to be removed from the list).
let knownDifferences: [String: String] = [
    // Python integers are unbounded; ours are 64-bit and refuse to overflow rather than wrap.
    "hand_numbers_clock.jinja": "integer result beyond 64 bits",
]

@Suite struct GoldenTests {
    @Test func goldensArePresent() {
        #expect(Goldens.renders.count > 1000)
        #expect(Goldens.templateNames.count > 60)
    }

    @Test(arguments: Goldens.templateNames)
    func rendersAsJinja2Does(template name: String) throws {
        let renders = Goldens.renders.filter { $0["template"]?.string == name }
        guard let url = Goldens.templateURL(renders[0]) else { return }   // a shared template, absent here
        let source = try String(contentsOf: url, encoding: .utf8)
        let compileError = renders.first { $0["error"]?["stage"]?.string == "compile" }
        let template: Template
        do {
            template = try Template(source, name: name)
        } catch let e as TemplateError {
            #expect(compileError != nil, "\(name): we fail to parse what jinja2 parses: \(e)")
            if let line = compileError?["error"]?["lineno"]?.int {
                #expect(e.line == line, "\(name): error on line \(e.line), jinja2 says line \(line): \(e)")
            }
            #expect(e.description.hasPrefix("\(name):\(e.line):\(e.column): "))
            return
        }
        #expect(compileError == nil, "\(name): jinja2 rejects it (\(compileError?["error"]?["message"]?.string ?? "")) but we parse it")
        var failures = 0
        if let expected = knownDifferences[name] {
            for r in renders {
                var variables: [String: Value] = [:]
                for (k, v) in r["variables"]?.members ?? [] { variables[k] = Value(json: v) }
                #expect(throws: TemplateError.self) { try template.render(variables, clock: { Goldens.clock }) }
                do { _ = try template.render(variables, clock: { Goldens.clock }) } catch let e as TemplateError {
                    #expect(e.message.contains(expected), "\(name): \(e)")
                }
            }
            return
        }
        for r in renders {
            let conversation = r["conversation"]?.string ?? ""
            var variables: [String: Value] = [:]
            for (k, v) in r["variables"]?.members ?? [] { variables[k] = Value(json: v) }
            let messages = Goldens.conversations[conversation]?["messages"]?.array ?? []
            let continueFinal = r["continue_final_message"]?.bool ?? false
            let label = "\(name) / \(conversation) / add_generation_prompt \(r["add_generation_prompt"]?.bool ?? false)"
                + (continueFinal ? " / continue_final_message" : "")
            let chat = ChatTemplate(template: template, origin: name)
            let result: Result<String, Error> = Result {
                try chat.render(messages: messages, addGenerationPrompt: r["add_generation_prompt"]?.bool ?? false,
                                continueFinalMessage: continueFinal, extra: variables, clock: { Goldens.clock })
            }
            switch (result, r["output"]?.string, r["error"]) {
            case let (.success(got), want?, _):
                if Array(got.unicodeScalars) != Array(want.unicodeScalars) {
                    failures += 1
                    if failures <= 3 { Issue.record("\(label): output differs\n--- want\n\(want.debugDescription.prefix(800))\n--- got\n\(got.debugDescription.prefix(800))") }
                }
            case let (.failure(e), want?, _):
                failures += 1
                if failures <= 3 { Issue.record("\(label): we raise \(e) where jinja2 renders \(want.debugDescription.prefix(200))") }
            case let (.success(got), nil, error?):
                failures += 1
                if failures <= 3 { Issue.record("\(label): jinja2 raises \(error["type"]?.string ?? ""): \(error["message"]?.string ?? "") but we render \(got.debugDescription.prefix(200))") }
            case let (.failure(e), nil, error?):
                // raise_exception messages must be the template's own.
                if error["type"]?.string == "TemplateError", let message = error["message"]?.string, let te = e as? TemplateError, te.kind == .raised {
                    #expect(te.message == message, "\(label)")
                }
            default:
                Issue.record("\(label): malformed golden")
            }
        }
        #expect(failures == 0, "\(name): \(failures) of \(renders.count) renders differ")
    }
}

@Suite struct TemplateUnitTests {
    func render(_ source: String, _ variables: [String: Value] = [:]) throws -> String {
        try Template(source).render(variables, clock: { Goldens.clock })
    }

    /// The strftime part of hand_numbers_clock.jinja (whose number part needs big integers).
    @Test func strftimeNowReadsTheInjectedClock() throws {
        let source = try String(contentsOf: Goldens.fixtures.appendingPathComponent("local/hand_numbers_clock.jinja"), encoding: .utf8)
        let golden = try #require(Goldens.renders.first { $0["template"]?.string == "hand_numbers_clock.jinja" }?["output"]?.string)
        let marker = "== strftime_now =="
        let part = try #require(source.range(of: marker).map { String(source[$0.lowerBound...]) })
        let want = try #require(golden.range(of: marker).map { String(golden[$0.lowerBound...]) })
        #expect(try render(part, ["bos_token": .string("<s>")]) == want)
    }

    @Test func syntaxErrorsCarryLineAndColumn() {
        for (source, line, column) in [("{% if x %}\nabc", 2, 4), ("hi\n{{ 1 + }}", 2, 8), ("{% frobnicate %}", 1, 4), ("{{ 'unterminated }}", 1, 4)] {
            do {
                _ = try Template(source, name: "t.jinja")
                Issue.record("no error for \(source.debugDescription)")
            } catch let e as TemplateError {
                #expect(e.kind == .syntax && e.line == line && e.column == column, "\(source.debugDescription): \(e)")
                #expect(e.description.hasPrefix("t.jinja:\(e.line):\(e.column): "))
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test func raiseExceptionIsAnErrorWithTheTemplatesMessage() {
        #expect(throws: TemplateError(.raised, "Conversation roles must alternate", line: 1, column: 4)) {
            try render("{{ raise_exception('Conversation roles must alternate') }}")
        }
    }

    @Test func whitespaceControlAsTransformersConfiguresIt() throws {
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        #expect(try render("a\n  {% if true %}\n  b\n  {% endif %}\nc\n") == "a\n  b\nc")
        #expect(try render("a  {%- if true -%}  b  {%- endif -%}  c") == "abc")
        #expect(try render("  {%+ if true %}x{% endif %}") == "  x")
        #expect(try render("{# note #}\nx") == "x")
        #expect(try render("{% raw %}{{ not rendered }}{% endraw %}") == "{{ not rendered }}")
    }

    @Test func pythonPrintingOfValues() throws {
        #expect(try render("{{ none }} {{ true }} {{ 2.0 }} {{ 1e16 }} {{ 1e15 }} {{ 1.5e-7 }} {{ ['a', 1, none] }} {{ {'k': (1,)} }} {{ \"it's\" }}")
                == "None True 2.0 1e+16 1000000000000000.0 1.5e-07 ['a', 1, None] {'k': (1,)} it's")
        #expect(try render("{{ [\"it's\"] }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}")
                == "[\"it's\"] 3 -4 3.5 2 1024")
    }

    @Test func undefinedBehavesAsJinja2sDefault() throws {
        #expect(try render("[{{ missing }}][{{ missing | default('d') }}][{% for x in missing %}x{% endfor %}][{{ missing is defined }}]")
                == "[][d][][False]")
        #expect(throws: TemplateError.self) { try render("{{ missing.attr }}") }
    }

    @Test func hostileValuesAreErrorsNotCrashes() throws {
        #expect(try render("[{{ 'a\nb' | indent(-2) }}]") == "[a\nb]")
        #expect(throws: TemplateError.self) { try render("{{ range(-9000000000000000000, 9000000000000000000) | length }}") }
        #expect(throws: TemplateError.self) { try render("{{ 'a' * 100000000000 }}") }
        #expect(throws: TemplateError.self) { try render("{{ 9223372036854775807 + 1 }}") }
        #expect(throws: TemplateError.self) { try render("{% macro m(x) %}{{ m(x) }}{% endmacro %}{{ m(1) }}") }
    }

    @Test func loopScopingNeedsNamespace() throws {
        let source = "{% set n = 0 %}{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set n = n + 1 %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ n }} {{ ns.n }}"
        #expect(try render(source) == "0 3")
    }
}
