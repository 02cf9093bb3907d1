import CNcursesw
import Foundation
import NekoChat
@testable import NekoTUI
import Testing

/// What daily users of terminal chats expect: markdown, edit and branch, the conversation
/// browser, the clipboard and the external editor — key by key on the in-memory screen.
@Suite(.serialized) struct ChatFeatureTests {
    // MARK: markdown

    func render(_ md: String, width: Int = 60) -> [Line] {
        nk_setlocale_all()
        return Markdown.render(md, width: width)
    }
    func text(_ lines: [Line]) -> [String] { lines.map { $0.map(\.text).joined() } }
    func styles(_ lines: [Line], of word: String) -> Set<String> {
        Set(lines.flatMap { $0 }.filter { $0.text.contains(word) }.map { "\($0.style)" })
    }

    @Test func markdownBlocksAndInlines() {
        let md = """
            # Title
            Some **bold**, *em*, `code` and a [link](https://x.y).
            - one
            - two that is long enough to wrap around the narrow width here
            3. three
            > quoted
            ---
            | a | bb |
            |---|---|
            | 1 | 22 |
            """
        let lines = render(md, width: 30)
        let t = text(lines)
        #expect(t[0] == "Title" && styles(lines, of: "Title") == ["heading"])
        #expect(styles(lines, of: "bold") == ["bold"] && styles(lines, of: "em") .contains("italic") && styles(lines, of: "code") == ["code"])
        #expect(t.joined(separator: " ").contains("link (https://x.y)") && styles(lines, of: "link").contains("link"))
        #expect(t.contains("• one") && t.contains { $0.hasPrefix("  ") && !$0.hasPrefix("   ") })   // hanging indent
        #expect(t.contains("3. three") && t.contains("│ quoted") && t.contains { $0.hasPrefix("────") })
        #expect(t.contains("│ a │ bb │") && t.contains("│ 1 │ 22 │"))
        #expect(t.allSatisfy { displayWidth($0) <= 30 })
    }

    /// A long line of openers without closers stays literal, and a pair after them still
    /// renders; each closer is searched for once per line, not once per opener (this line took
    /// minutes when every `[` scanned to the end).
    @Test func unmatchedOpenersStayLiteralOnALongLine() {
        let junk = String(repeating: "[a *b _c ", count: 20_000)
        let spans = Markdown.inline(junk + "**bold** `x`", base: .text)
        #expect(spans == [Span(junk, .text), Span("bold", .bold), Span(" ", .text), Span("x", .code)])
    }

    @Test func codeFencesNeverBreakWhileStreaming() {
        let open = render("Here:\n```swift\nlet x = \"s\" // note\nfor i in 0..<3 {", width: 40)
        let t = text(open)
        #expect(t.contains { $0.hasPrefix("┌ [1] swift …") } && t.contains("│ let x = \"s\" // note") && t.last?.hasPrefix("└") == true)
        #expect(styles(open, of: "let").contains("keyword") && styles(open, of: "\"s\"").contains("string"))
        #expect(styles(open, of: "// note").contains("comment"))
        let closed = text(render("```\nplain\n```\nafter **half", width: 40))
        #expect(closed.contains("┌ [1] code " + String(repeating: "─", count: 29)) && closed.contains("after **half"))
        #expect(Markdown.codeBlocks("a\n```py\nx = 1\n```\n```\ny\n") == ["x = 1", "y"])
    }

    @Test func repliesRenderAsMarkdownUnlessRaw() {
        let h = Harness(replies: ["## Plan\n1. **fast**\n```sh\necho hi\n```"], width: 90, height: 24)
        h.send("plan?")
        #expect(h.screen.contains("  Plan") && h.screen.contains("1. fast") && h.screen.contains("│ echo hi") && !h.screen.contains("**"))
        h.press(.alt("m"))
        #expect(h.screen.contains("## Plan") && h.screen.contains("**fast**"))
        h.type("/raw")
        h.press(.enter)
        #expect(!h.screen.contains("## Plan"))
    }

    // MARK: edit and branch

    @Test func editAnEarlierMessageAsANewBranchAndSwitchBack() {
        let h = Harness(replies: ["first reply", "second reply", "edited reply"])
        h.send("question one")
        h.send("question two")
        h.press(.ctrlUp)                   // the last reply
        h.press(.up)                       // "question two"
        #expect(h.app.state.selected == h.app.controller.conversation.path[2].id)
        h.press(.char("e"))
        #expect(h.app.state.input.string == "question two" && h.app.state.editing != nil)
        h.press(.ctrl("u"))
        h.send("question two, better")
        let c = h.app.controller.conversation
        #expect(c.path.map(\.content) == ["question one", "first reply", "question two, better", "edited reply"])
        #expect(h.screen.contains("‹ 2/2 ›"))
        // Back to the first version: its reply comes with it.
        h.press(.ctrlUp, .up, .left)
        #expect(h.app.controller.conversation.path.map(\.content) == ["question one", "first reply", "question two", "second reply"])
        #expect(h.screen.contains("‹ 1/2 ›"))
        h.press(.escape)
        #expect(h.app.state.selected == nil)
    }

    @Test func redoAnEarlierReplyAndEscCancelsAnEdit() {
        let h = Harness(replies: ["A", "B", "C"])
        h.send("one")
        h.send("two")
        h.press(.ctrlUp, .up, .up)         // the reply "A"
        h.press(.char("r"))
        h.waitIdle()
        #expect(h.app.controller.conversation.path.map(\.content) == ["one", "C"])
        #expect(h.app.controller.conversation.children(of: h.app.controller.conversation.path[0].id).count == 2)
        h.type("my draft")
        h.press(.ctrlUp, .up, .char("e"))
        #expect(h.app.state.input.string == "one")
        h.press(.escape)
        #expect(h.app.state.editing == nil && h.app.state.input.string == "my draft")
    }

    // MARK: browser

    @Test func theBrowserSearchesOpensRenamesAndDeletes() throws {
        let h = Harness(replies: ["a reply about whales", "a reply about ships", "third"])
        h.send("tell me about the sea")
        h.send("/new")
        h.send("and rivers")
        #expect(h.store.list().count == 2)
        h.press(.alt("c"))
        #expect(h.screen.contains("chats · 2 of 2") && h.screen.contains("and rivers") && h.screen.contains("tell me about the sea"))
        h.type("whal")
        #expect(h.screen.contains("chats · 1 of 2") && h.screen.contains("whales"))
        h.press(.enter)
        #expect(h.app.state.browser == nil && h.app.controller.conversation.path.first?.content == "tell me about the sea")
        // Rename the other chat, then delete it and undo.
        h.press(.alt("c"))
        h.type("river")
        h.press(.ctrl("r"))
        h.type("Rivers")
        h.press(.enter)
        #expect(h.screen.contains("Rivers"))
        h.press(.ctrl("u"))
        h.type("Rivers")
        h.press(.delete)
        #expect(h.store.list().count == 1 && h.lastNotice.contains("Ctrl-Z"))
        h.press(.ctrl("z"))
        #expect(h.store.list().count == 2)
        h.press(.escape)
        let other = try #require(h.store.list().first { $0 != h.app.controller.transcript?.path })
        #expect(try Transcript.load(path: other).conversation.title == "Rivers")
    }

    // MARK: a reply cut by the token limit

    /// A reply cut at max_tokens is marked as such and says /continue; /continue makes a new
    /// version that starts with the cut text and goes on (the cut one stays a sibling).
    @Test func aCutReplyIsMarkedAndCanBeContinued() throws {
        let h = Harness(replies: ["one two three four five six", "seven eight"])
        _ = try h.app.controller.set("max_tokens", "3")
        h.send("count")
        #expect(h.screen.contains("neko (cut at the token limit)"), "\(h.screen)")
        #expect(h.app.state.notices.contains { $0.text.contains("/continue") })
        h.send("/continue")
        let reply = try #require(h.app.controller.conversation.path.last)
        #expect(reply.content == "one two three seven eight" && reply.finishReason == .eos, "\(reply.content)")
        #expect(h.app.controller.conversation.siblingPosition(of: reply.id).count == 2 && h.screen.contains("‹ 2/2 ›"))
        let request = try #require(h.backend.requests.last)
        #expect(request.continuing && request.messages.last?.content == "one two three ")
        h.send("/continue")
        #expect(h.lastNotice.contains("ended by itself"))
    }

    // MARK: clipboard and editor

    @Test func copySendsOSC52AndSaysWhenItCannot() throws {
        let h = Harness(replies: ["Use this:\n```\nmake all\n```\nand this:\n```\nmake test\n```"])
        h.app.environment = ["TERM": "xterm-256color"]
        h.send("how?")
        h.type("/copy 2")
        h.press(.enter)
        let effect = try #require(h.app.takeEffects().first)
        #expect(effect == .raw("\u{1B}]52;c;\(Data("make test".utf8).base64EncodedString())\u{07}"))
        #expect(h.lastNotice.contains("code block 2"))
        h.type("/copy 3")
        h.press(.enter)
        #expect(h.lastNotice.contains("from 1 to 2"))
        h.app.environment = ["TERM": "linux"]
        h.type("/copy")
        h.press(.enter)
        #expect(h.lastNotice.contains("cannot take a clipboard write") && h.app.takeEffects().isEmpty)
    }

    @Test func theExternalEditorReplacesTheInput() {
        let h = Harness()
        h.app.environment = ["EDITOR": "printf 'written in the editor\\n' >"]
        h.type("draft")
        h.press(.ctrl("x"), .ctrl("e"))
        let driver = MemoryDriver()
        for e in h.app.takeEffects() { h.app.perform(e, driver) }
        #expect(h.app.state.input.string == "written in the editor")
        h.app.environment = ["EDITOR": "false"]
        h.press(.ctrl("u"))
        h.type("/edit")
        h.press(.enter)
        for e in h.app.takeEffects() { h.app.perform(e, driver) }
        #expect(h.lastNotice.contains("exited with status 1") && h.app.state.input.string.isEmpty)
    }
}
