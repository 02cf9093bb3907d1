import CNcursesw
import Foundation
import NekoChat
@testable import NekoTUI
import Testing

func demoInfo(experts: Int = 8, layers: [Int] = [2, 3], k: Int = 2, context: Int = 2048) -> BackendInfo {
    BackendInfo(kind: "local", modelName: "demo", location: "/m", fingerprint: "f", contextSize: context,
                experts: experts, expertsPerToken: k, moeLayers: layers, reportsRouting: true)
}

func finished(_ id: Int, parent: Int, _ text: String, _ reason: FinishReason) -> ChatMessage {
    var m = ChatMessage(id: id, parent: parent, role: .assistant, content: text)
    m.finishReason = reason
    return m
}

func sampleState() -> ScreenState {
    nk_setlocale_all()
    var s = ScreenState(backend: demoInfo())
    s.apply(.messageAdded(ChatMessage(id: 1, role: .user, content: "What light through yonder window breaks?")))
    s.apply(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "")))
    s.apply(.prefillProgress(done: 20, total: 20))
    s.apply(.textDelta(messageID: 2, text: "It is the east, and Juliet is the sun. 日本語 😀"))
    s.apply(.routing(messageID: 2, step: RoutingStep(layers: [2, 3], experts: [[0, 5], [7, 5]], weights: [[0.6, 0.4], [0.5, 0.5]])))
    s.apply(.routing(messageID: 2, step: RoutingStep(layers: [2, 3], experts: [[0, 1], [7, 6]], weights: [[0.6, 0.4], [0.5, 0.5]])))
    var stats = GenerationStats(prefillTokensPerSecond: 512.3, decodeTokensPerSecond: 41.7, contextUsed: 31, contextSize: 2048)
    stats.contextUsed = 31
    s.apply(.stats(stats))
    s.input.insert("thou art more lovely")
    return s
}

@Suite struct ScreenTests {
    @Test func wrapsByDisplayWidth() {
        nk_setlocale_all()
        #expect(wrap("hello world foo", width: 11) == ["hello world", "foo"])
        #expect(wrap("日本語日本語", width: 7) == ["日本語", "日本語"])   // two columns each
        #expect(wrap("abcdefghij", width: 4) == ["abcd", "efgh", "ij"])
        #expect(wrap("a\n\nb", width: 5) == ["a", "", "b"])
        #expect(displayWidth("😀") == 2 && displayWidth("é") == 1 && displayWidth("e\u{301}") == 1)
    }

    @Test func layoutAt80x24() {
        let g = ChatView.render(sampleState(), width: 80, height: 24)
        let lines = g.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 24)
        #expect(lines[0].contains("demo") && lines[0].contains("512.3 tok/s") && lines[0].contains("41.7 tok/s") && lines[0].contains("ctx 31/2048"))
        #expect(lines.contains { $0.contains("L2 ") } && lines.contains { $0.contains("L3 ") })
        #expect(lines.contains { $0.hasPrefix("you") } && lines.contains { $0.hasPrefix("neko") })
        #expect(lines.contains { $0.contains("Juliet") })
        #expect(lines[23].hasPrefix("> thou art more lovely"))
        #expect(lines.allSatisfy { displayWidth($0) <= 80 })
    }

    @Test func layoutAt200x60AndAt40x12() {
        let big = ChatView.render(sampleState(), width: 200, height: 60)
        #expect(big.text.contains("L2 ") && big.text.contains("heat · reply"))
        let small = ChatView.render(sampleState(), width: 40, height: 12)
        let lines = small.text.split(separator: "\n", omittingEmptySubsequences: false)
        // Too small for the panel: it says so, and how to see it.
        #expect(lines.count == 12 && !small.text.contains("L2 ") && small.text.contains("Ctrl-T"))
        #expect(small.text.contains("> thou art more lovely") && lines[0].contains("demo"))
        #expect(ChatView.render(sampleState(), width: 10, height: 3).text.contains("too small"))
    }

    @Test func routingPanelShadesByShareAndShowsBalance() {
        var s = sampleState()
        s.routingScope = .last
        let last = ChatView.render(s, width: 100, height: 24).text
        s.routingScope = .reply
        let reply = ChatView.render(s, width: 100, height: 24).text
        #expect(last != reply)
        #expect(reply.contains("H1.5") || reply.contains("H1.0"))   // layer 2: experts 0,0,5,1 → 1.5 bits
    }

    @Test func inspectorWalksTheTokensOfAReply() {
        var s = sampleState()
        s.apply(.routing(messageID: 2, step: RoutingStep(layers: [2, 3], experts: [[4, 1], [0, 2]], weights: [[0.75, 0.25], [0.5, 0.5]], token: " east")))
        let started = s.startInspector()
        #expect(started)
        var text = ChatView.render(s, width: 100, height: 24).text
        #expect(text.contains("token 3/3 \" east\"") && text.contains("e4") && text.contains("0.75") && text.contains("e1") && text.contains("0.25"))
        s.moveInspector(-5)
        text = ChatView.render(s, width: 100, height: 24).text
        #expect(text.contains("token 1/3") && text.contains("e0") && text.contains("0.60"))
        var empty = ScreenState(backend: demoInfo())
        let none = empty.startInspector()
        #expect(!none)
    }

    @Test func finishingAReplyUpdatesTheStatus() {
        var s = sampleState()
        s.notice("a notice")
        s.apply(.finished(finished(2, parent: 1, "It is the east.", .cancelled)))
        #expect(s.conversation.path.map(\.role) == [.user, .assistant] && s.conversation.path[1].stopped)
        #expect(s.status == .stopped && !s.isBusy)
        #expect(ChatView.render(s, width: 100, height: 24).text.contains("neko (stopped)"))
    }

    @Test func scrollBackAndFollow() {
        var s = sampleState()
        for i in 0..<40 { s.notice("notice \(i)") }
        let bottom = ChatView.render(s, width: 80, height: 24).text
        #expect(bottom.contains("notice 39"))
        s.scrollBack = 20
        let up = ChatView.render(s, width: 80, height: 24).text
        #expect(!up.contains("notice 39") && up.contains("more"))
    }

    @Test func tinyHeightsDoNotTrap() {
        var s = sampleState()
        s.input.insert("1\n2\n3\n4\n5\n6")
        for h in 6...8 { #expect(ChatView.render(s, width: 100, height: h).height == h) }
        // At 20 columns the key hint gives way to the input box's border.
        var idle = sampleState()
        idle.apply(.finished(finished(2, parent: 1, "It is the east.", .length)))
        let narrow = ChatView.render(idle, width: 20, height: 6).text.split(separator: "\n")
        let border = narrow.firstIndex { $0.count == 20 && $0.allSatisfy { $0 == "─" } }
        #expect(border != nil && narrow[(border ?? 0) + 1].hasPrefix("> thou"), "\(narrow)")
    }

    @Test func themesAreCheckedWhenLoaded() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("theme-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let bad = dir.appendingPathComponent("bad.json").path
        try #"{"name": "bad", "colors": {}, "routing_glyphs": []}"#.write(toFile: bad, atomically: true, encoding: .utf8)
        #expect(throws: ThemeError.self) { try Theme.load(path: bad, noColor: false) }
        let unknown = dir.appendingPathComponent("unknown.json").path
        try #"{"colors": {"user": "chartreuse-ish"}}"#.write(toFile: unknown, atomically: true, encoding: .utf8)
        #expect(throws: ThemeError.self) { try Theme.load(path: unknown, noColor: false) }
        for name in ["dark", "light", "mono"] { #expect((try? Theme.named(name, noColor: false)) != nil, "\(name)") }
    }

    @Test func editorKeys() {
        var e = LineEditor()
        e.insert("hello world")
        e.deleteWord()
        #expect(e.string == "hello ")
        e.home(); e.insert(">")
        #expect(e.string == ">hello ")
        e.killToEnd()
        #expect(e.string == ">")
        e.insert("a\nb"); e.killToStart()
        #expect(e.string == ">a\n")
        _ = e.submit()
        e.insert("second"); _ = e.submit()
        e.up()
        #expect(e.string == "second")
        e.up()
        #expect(e.string == ">a\n")
        e.down(); e.down()
        #expect(e.string == "")
    }

    @Test func keyDecoderHandlesPasteAltEnterAndArrows() {
        var d = KeyDecoder()
        func feed(_ s: String) -> [Key] { s.unicodeScalars.flatMap { d.feed(character: $0.value) } }
        #expect(feed("\u{1B}[200~line1\r\nline2\u{1B}[201~") == [.paste("line1\nline2")])
        #expect(feed("\u{1B}\r") == [.newline])
        #expect(feed("\u{1B}[A\u{1B}[6~") == [.up, .pageDown])
        #expect(feed("a\u{01}\r") == [.char("a"), .ctrl("a"), .enter])
        #expect(feed("\u{1B}") == [] && d.flushEscape() == [.escape])
    }
}

@Suite struct PrefillProgressTests {
    /// A long prompt on the big model: the status says how far prefill is and how long is left.
    @Test func prefillShowsTokensAndTimeLeft() throws {
        var s = ScreenState(backend: demoInfo(context: 8192))
        s.apply(.messageAdded(ChatMessage(id: 1, role: .user, content: "long")))
        s.apply(.messageAdded(ChatMessage(id: 2, parent: 1, role: .assistant, content: "")))
        s.apply(.prefillProgress(done: 128, total: 4000))
        Thread.sleep(forTimeInterval: 0.2)
        s.apply(.prefillProgress(done: 256, total: 4000))
        let bar = ChatView.render(s, width: 100, height: 24).text.split(separator: "\n")[0]
        #expect(bar.contains("prefill 256/4000") && bar.contains("s left"), "\(bar)")
        s.apply(.prefillProgress(done: 4000, total: 4000))
        #expect(s.status == .generating)
    }
}
