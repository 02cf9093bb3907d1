import CNcursesw
import Foundation
import NekoChat
@testable import NekoTUI
import Testing

/// The chat screen driven key by key, in-process: a scripted backend answers, the screen is
/// rendered into a grid and read as text. One test per thing a new user ran into.
final class Harness {
    let app: ChatApp
    let backend: ScriptedBackend
    let store: TranscriptStore
    var width: Int, height: Int

    init(replies: [String] = ["Good morrow, friend."], width: Int = 100, height: Int = 30, contextSize: Int = 4096,
         experts: Int = 8, layers: [Int] = [2, 3, 4, 5], k: Int = 2, delay: Double = 0) {
        nk_setlocale_all()
        backend = ScriptedBackend(replies: replies, delay: delay, contextSize: contextSize, experts: experts,
                                  expertsPerToken: k, moeLayers: layers)
        store = TranscriptStore(directory: FileManager.default.temporaryDirectory
            .appendingPathComponent("tui-\(UUID().uuidString)").path)
        let controller = ChatController(backend: backend, transcript: TranscriptWriter(store: store, header: TranscriptHeader(backend.info)))
        app = ChatApp(controller: controller, theme: .fallback, noColor: true)
        self.width = width
        self.height = height
        app.size = (width, height)
    }

    func type(_ text: String) { for c in text { app.handle(c == "\n" ? .newline : .char(c)) } }
    func press(_ keys: Key...) { for k in keys { app.handle(k) } }
    /// Types a line and presses Enter, then waits for the reply (if one started) to end.
    func send(_ text: String) {
        type(text)
        press(.enter)
        waitIdle()
    }
    func waitIdle() {
        let deadline = Date().addingTimeInterval(20)
        app.pump()
        while app.controller.isBusy, Date() < deadline { app.pump(waiting: 0.05) }
        app.pump()
    }
    var screen: String { ChatView.render(app.state, width: width, height: height).text }
    var lines: [String] { screen.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
    var lastNotice: String { app.state.notices.last?.text ?? "" }
}

@Suite(.serialized) struct AppTests {
    // 1. Scrolling stays inside the conversation; half pages; Home/End; a true "more below".
    @Test func scrollingIsClampedAndTheMarkerTellsTheTruth() {
        let h = Harness(replies: [(1...60).map { "line \($0)" }.joined(separator: "\n")], height: 24)
        h.send("go")
        for _ in 0..<50 { h.press(.pageUp) }
        let top = h.screen
        #expect(top.contains("you") && top.contains("go") && !top.contains("line 60"), "\(top)")
        let back = h.app.state.scrollBack
        #expect(back > 0 && top.contains("\(back) more lines below"))
        h.press(.pageUp)
        #expect(h.app.state.scrollBack == back)   // no blank pane past the top
        h.press(.pageDown)
        #expect(h.app.state.scrollBack == back - h.app.pageStep && h.app.pageStep >= 9)
        h.press(.end)   // empty input: End jumps to the bottom
        #expect(h.app.state.scrollBack == 0 && h.screen.contains("line 60") && !h.screen.contains("more lines below"))
        h.press(.home)
        #expect(h.app.state.scrollBack == back)
        h.type("draft")
        h.press(.home)   // with text in the box, Home edits the line
        #expect(h.app.state.input.cursor == 0 && h.app.state.scrollBack == back)
        h.press(.ctrlEnd)
        #expect(h.app.state.scrollBack == 0)
    }

    // 4. The inspector never swallows a command, highlights its token, and shows at 80 columns.
    @Test func theInspectorLetsCommandsThroughAndShowsItsToken() {
        let h = Harness(replies: ["It is the east"], width: 80, height: 24, experts: 32, layers: Array(2..<18), k: 4)
        h.send("hi")
        h.press(.ctrl("o"))
        #expect(h.app.state.inspector != nil)
        h.press(.left)
        let shown = ChatView.render(h.app.state, width: 80, height: 24)
        #expect(shown.text.contains("token 3/4") && shown.text.contains("L2 ") && shown.text.contains("e"), "\(shown.text)")
        // The token under the cursor is drawn in the selected style inside the reply.
        let selected = shown.cells.enumerated().filter { $0.element.style == .selected && $0.offset / 80 > 1 }
        #expect(!selected.isEmpty)
        h.type("/quit")
        #expect(h.app.state.inspector == nil && h.app.state.input.string == "/quit")
        h.press(.enter)
        #expect(h.app.quit)
    }

    // 5. The input box follows the cursor; Up moves a line inside a draft before history.
    @Test func theInputBoxFollowsTheCursorAndUpMovesLines() {
        let h = Harness(width: 60, height: 24)
        h.send("earlier message")
        h.type((1...12).map { "row \($0)" }.joined(separator: "\n"))
        #expect(h.screen.contains("row 12") && !h.screen.contains("row 1\n"))
        for _ in 0..<11 { h.press(.up) }
        #expect(h.app.state.input.string.hasPrefix("row 1\n"))   // still the draft: Up walked its lines
        #expect(h.screen.contains("row 1") && !h.screen.contains("row 12"))
        let (_, cy) = ChatView.cursor(h.app.state, width: 60, height: 24)
        #expect(h.lines[cy].contains("row 1"))
        h.press(.up)   // on the first line: history
        #expect(h.app.state.input.string == "earlier message")
        h.press(.down)
        #expect(h.app.state.input.string.hasPrefix("row 1\n"))
    }

    // 8. Every command answers in one line; errors name what is valid.
    @Test func everyCommandAnswers() {
        let h = Harness()
        func run(_ line: String) -> String {
            let before = h.app.state.notices.count
            h.type(line)
            h.press(.enter)
            h.waitIdle()
            return h.app.state.notices.count > before ? h.lastNotice : ""
        }
        #expect(run("/system") .contains("no system prompt"))
        #expect(run("/system Be brief.").contains("system prompt set"))
        #expect(run("/system").contains("Be brief."))
        #expect(run("/system none").contains("cleared"))
        #expect(run("/theme").contains("themes:"))
        #expect(run("/load").contains("/load needs a file"))
        #expect(run("/set").contains("temperature\t0.8") && h.lastNotice.contains("top_k"))
        #expect(run("/set top_p").contains("/set top_p VALUE"))
        #expect(run("/set top_p 7").contains("top_p must be a number in (0, 1]"))
        #expect(run("/regen").contains("nothing to regenerate"))
        #expect(h.app.controller.conversation.isEmpty && h.app.controller.transcript?.path == nil)
        #expect(run("/mode").contains("mode chat"))
        #expect(run("/routing sideways").contains("last, reply, session"))
        #expect(run("/frobnicate").contains("unknown command"))
        #expect(run("/show").contains("scripted"))
        #expect(run("/save").contains("saves itself"))
        #expect(run("/mouse off").contains("mouse off"))
        #expect(run("/title").contains("no title"))
        #expect(run("/help").contains("/regen"))
    }

    // 8b. Tab completes commands.
    @Test func tabCompletesSlashCommands() {
        let h = Harness()
        h.type("/reg")
        h.press(.tab)
        #expect(h.app.state.input.string == "/regen ")
        h.press(.ctrl("u"))
        h.type("/s")
        h.press(.tab)
        #expect(h.lastNotice.contains("/save") && h.lastNotice.contains("/set") && h.lastNotice.contains("/system"))
    }

    // 9. The stats bar: "ready" before anything ran, fresh after /new.
    @Test func theStatsBarIsNeverStale() {
        let h = Harness()
        #expect(h.lines[0].contains("ready") && !h.lines[0].contains("0.0 tok/s"))
        h.send("hi")
        #expect(h.lines[0].contains("decode") && !h.lines[0].contains("ready"))
        h.send("/new")
        #expect(h.lines[0].contains("ready") && h.lines[0].contains("ctx 0/4096"))
        #expect(!h.screen.contains("Good morrow"))
    }

    // 11. /regen puts the new reply where the old one was, and keeps the old one.
    @Test func regenerateReplacesInPlaceAndKeepsTheOld() {
        let h = Harness(replies: ["first answer", "second answer"])
        h.send("question")
        h.send("/set temperature 0.5")
        h.send("/regen")
        let screen = h.screen
        #expect(screen.contains("second answer") && !screen.contains("first answer") && screen.contains("‹ 2/2 ›"))
        let lines = h.lines
        let q = lines.firstIndex { $0.contains("question") } ?? 99, a = lines.firstIndex { $0.contains("second answer") } ?? -1
        #expect(a > q && a - q <= 3, "\(screen)")   // right under its question, not below the notices
        #expect(h.app.controller.conversation.messages.filter { $0.role == .assistant }.map(\.content) == ["first answer", "second answer"])
    }

    // 12. A message the context cannot hold is refused before it is stored; the draft stays.
    @Test func aTooLongMessageKeepsItsDraft() {
        let h = Harness(contextSize: 64)
        let long = String(repeating: "word ", count: 30)
        h.type(long)
        h.press(.enter)
        #expect(h.app.state.input.string == long && h.app.controller.conversation.isEmpty)
        #expect(h.lastNotice.contains("more than the context holds"))
        h.press(.ctrl("u"))
        h.send("short")
        #expect(h.app.controller.conversation.path.count == 2)
    }

    // 13. Tabs keep code's indentation; prose is capped at a readable measure at 200 columns.
    @Test func tabsAndTheMeasure() {
        let h = Harness(replies: ["if x:\n\treturn 1\n" + String(repeating: "wide prose ", count: 40)], width: 200, height: 40)
        h.send("code")
        #expect(h.screen.contains("      return 1"))
        let longest = h.lines.filter { $0.contains("wide prose") }.map { line in String(line.prefix { $0 != "│" }).trimmingCharacters(in: .whitespaces).count }.max() ?? 0
        #expect(longest > 50)
        #expect(longest <= MessagesView.measure + 2)
    }

    // 15. Nothing sent: no file. `//` sends a literal slash.
    @Test func noFileUntilSomethingIsSentAndDoubleSlashSendsASlash() {
        let h = Harness()
        h.send("/set temperature 0.3")
        #expect(h.app.controller.transcript?.path == nil && h.store.list().isEmpty)
        h.send("//not a command")
        #expect(h.app.controller.conversation.path.first?.content == "/not a command")
        #expect(h.store.list().count == 1)
    }

    // 15b. Input history survives a restart.
    @Test func inputHistoryIsKeptBetweenSessions() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("hist-\(UUID().uuidString)").path
        let backend = ScriptedBackend(replies: ["ok"])
        do {
            let app = ChatApp(controller: ChatController(backend: backend, transcript: nil), theme: .fallback, noColor: true, historyPath: file)
            for c in "remember me" { app.handle(.char(c)) }
            app.handle(.enter)
            _ = app.controller.finish()
            app.saveHistory()
        }
        let again = ChatApp(controller: ChatController(backend: backend, transcript: nil), theme: .fallback, noColor: true, historyPath: file)
        again.handle(.up)
        #expect(again.state.input.string == "remember me")
    }

    // Ctrl-C with a draft asks before quitting; Esc stops a reply and keeps it.
    @Test func ctrlCAsksAboutADraftAndEscStops() {
        let h = Harness(replies: [String(repeating: "slow ", count: 300)], delay: 0.005)
        h.type("hello")
        h.press(.enter)
        while h.app.state.conversation.pendingReply?.content.isEmpty ?? true { h.app.pump(waiting: 0.05) }
        h.press(.escape)
        h.waitIdle()
        #expect(h.app.controller.conversation.path.last?.stopped == true && h.screen.contains("neko (stopped)"))
        h.type("draft")
        h.press(.ctrl("c"))
        #expect(!h.app.quit && h.lastNotice.contains("Ctrl-C again"))
        h.press(.ctrl("c"))
        #expect(h.app.quit)
    }

    // The loop itself, on the in-memory screen: keys in, frames out, quit.
    @Test func theRunLoopDrawsAndQuits() {
        let backend = ScriptedBackend(replies: ["Good morrow."])
        let app = ChatApp(controller: ChatController(backend: backend, transcript: nil), theme: .fallback, noColor: true)
        let driver = MemoryDriver(width: 90, height: 20, script: ["hi".map { Key.char($0) } + [.enter], [], [], []])
        // Empty batches wait for the backend (until it reports, or half a second).
        driver.script += Array(repeating: [], count: 6) + [Array("/quit").map { Key.char($0) } + [.enter]]
        app.run(driver)
        #expect(app.quit && driver.frames > 1 && driver.text.contains("Good morrow.") && driver.text.contains("you"))
    }
}

/// `/help` and `/set` read as tables at 80 columns: each term in one column, its text beside it,
/// and text that wraps stays under its text (never back under the terms).
@Suite(.serialized) struct HelpLayoutTests {
    @Test(arguments: ["/help", "/set"]) func helpAndSetAreAlignedTablesAt80Columns(command: String) throws {
        let h = Harness(width: 80, height: 200)
        h.app.state.panel = .hidden
        h.send(command)
        let lines = h.lines.filter { !$0.isEmpty }
        let name = command == "/help" ? "/continue" : "repeat_penalty"
        let row = try #require(lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(name) })
        // Where the text column starts: the first letter after the term and its padding.
        let term = try #require(row.range(of: name))
        let rest = row[term.upperBound...]
        let column = row.distance(from: row.startIndex, to: rest.firstIndex { $0 != " " } ?? rest.endIndex)
        let termIndent = row.prefix { $0 == " " }.count
        #expect(column > 10 && column < 36, "\(row)")
        // Every line of the table starts with a term or at that column (a hanging indent).
        let table = lines.drop { !$0.contains(command == "/help" ? "Enter" : "temperature") }.dropFirst()
            .prefix { !$0.hasPrefix("───") && !$0.contains("this chat is saved") }
        #expect(table.count > 8)
        for line in table {
            let indent = line.prefix { $0 == " " }.count
            #expect(indent == column || indent == termIndent, "'\(line)'\n\(h.screen)")
        }
        #expect(lines.allSatisfy { displayWidth($0) <= 80 })
    }
}

/// A selection is unmistakable in every theme, mono and NO_COLOR included: reverse video and a
/// marker, never colour alone (the picked message, the inspected token, the chosen chat).
@Suite(.serialized) struct SelectionVisibilityTests {
    @Test func theSelectedLookIsReverseVideoInEveryTheme() throws {
        for name in ["dark", "light", "mono"] {
            for noColor in [false, true] {
                let look = try #require(try Theme.named(name, noColor: noColor).looks[.selected], "\(name)")
                #expect(look.reverse, "\(name) noColor \(noColor)")
            }
        }
        #expect(Theme.fallback.looks[.selected]?.reverse == true)
    }

    @Test func thePickedMessageAndTheChosenChatCarryAMarker() throws {
        let h = Harness(replies: ["first answer", "second answer"], width: 80, height: 24)
        h.send("question one")
        h.send("question two")
        h.press(.ctrlUp, .up)   // the last reply, then the question before it
        let text = h.screen
        #expect(text.contains("▶ you ") && text.contains("▌ question two"), "\(text)")
        let grid = ChatView.render(h.app.state, width: 80, height: 24)
        let row = try #require(h.lines.firstIndex { $0.hasPrefix("▶ you") })
        #expect(grid[0, row].style == .selected && grid[2, row].style == .selected)
        h.press(.escape)
        // Two chats in the store: the chosen row in the browser is marked.
        h.send("/new")
        h.send("another chat")
        h.press(.alt("c"))
        #expect(h.lines.filter { $0.hasPrefix("▶ ") }.count == 1, "\(h.screen)")
    }
}
