import Foundation
import NekoChat
import NekoJSON

/// The chat screen's logic: a key (or a typed command) becomes calls on the chat core and
/// changes of the screen state; the core's events update the state. `run` is the short loop
/// around it with a screen driver; everything else is testable in-process.
public final class ChatApp {
    public let controller: ChatController
    public internal(set) var state: ScreenState
    var theme: Theme
    let noColor: Bool
    public internal(set) var quit = false
    var confirmQuit = false
    /// Ctrl-X was pressed: the next key completes a chord (Ctrl-X Ctrl-E: the editor).
    var chord = false
    var mouse = true
    /// Where sent texts are kept between sessions (nil: not kept).
    let historyPath: String?
    /// The saved chats (for the browser).
    let store: TranscriptStore
    /// The input box's text before an edit of an earlier message took it over.
    var draftBeforeEdit = ""
    /// The environment the app reads (TERM, TMUX, VISUAL, EDITOR); tests replace it.
    public var environment = ProcessInfo.processInfo.environment
    /// Things the loop does with the driver.
    public enum Effect: Equatable {
        case theme(String)
        case mouse(Bool)
        /// Write to the terminal as is (OSC 52 clipboard).
        case raw(String)
        /// Open the external editor on the input box's text.
        case editor
        /// Stop the chat as a shell job (Ctrl-Z).
        case suspend
    }
    var effects: [Effect] = []

    public init(controller: ChatController, theme: Theme, noColor: Bool, historyPath: String? = nil, store: TranscriptStore? = nil) {
        self.controller = controller
        self.store = store ?? controller.transcript?.store ?? TranscriptStore.standard()
        self.theme = theme
        self.noColor = noColor
        self.historyPath = historyPath
        state = ScreenState(backend: controller.backend.info, conversation: controller.conversation)
        state.themeName = theme.name
        state.monochrome = !theme.usesColor
        if let historyPath, let text = try? String(contentsOfFile: historyPath, encoding: .utf8) {
            state.input.history = text.split(separator: "\n").compactMap { (try? JSONValue.parse(String($0)))?.string }
        }
    }

    /// A notice of the screen's own (not part of the conversation).
    public func notice(_ text: String, error: Bool = false) { state.notice(text, error: error) }

    /// Applies what the chat core reported since the last call; says whether anything came.
    @discardableResult public func pump() -> Bool {
        let events = controller.poll()
        for event in events { state.apply(event) }
        return !events.isEmpty
    }

    /// Stops a reply in progress and waits (briefly) for its end, which the screen then shows too.
    func stopReply() {
        guard controller.isBusy else { return }
        controller.stop()
        for event in controller.finish(timeout: 5) { state.apply(event) }
    }

    /// Waits for the backend (at most `timeout`), then applies what it reported.
    public func pump(waiting timeout: Double) {
        for event in controller.poll(waiting: timeout) { state.apply(event) }
    }

    /// The effects the last keys asked for (the loop carries them out).
    public func takeEffects() -> [Effect] {
        defer { effects.removeAll() }
        return effects
    }

    /// Runs until /quit, Ctrl-C (idle), Ctrl-D (empty input), SIGTERM or SIGHUP; the terminal
    /// is restored on every way out.
    public func run(_ driver: ScreenDriver) {
        let signals = SignalFlag()
        signals.install([SIGTERM, SIGHUP, SIGINT])
        var dirty = true
        while !quit {
            if signals.raised { break }
            if pump() { dirty = true }   // events since the last poll (their wake byte is spent)
            if dirty {
                let (w, h) = driver.size
                size = (w, h)
                clampScroll()
                let grid = ChatView.render(state, width: w, height: h)
                let (cx, cy) = ChatView.cursor(state, width: w, height: h)
                driver.draw(grid, cursorX: cx, cursorY: cy)
                dirty = false
            }
            let keys = driver.readKeys(timeout: 0.5, wake: controller.wakeDescriptor)
            for key in keys { handle(key) }
            for effect in takeEffects() { perform(effect, driver) }
            let events = controller.poll()
            for event in events { state.apply(event) }
            dirty = dirty || !keys.isEmpty || !events.isEmpty
        }
        // Stop a reply in progress and wait (briefly) for its end, so the transcript keeps it.
        if controller.isBusy {
            controller.stop()
            for event in controller.finish(timeout: 3) { state.apply(event) }
        }
        saveHistory()
    }

    func perform(_ effect: Effect, _ driver: ScreenDriver) {
        switch effect {
        case let .theme(name):
            do {
                let t = try Theme.named(name, noColor: noColor)
                theme = t
                driver.setTheme(t)
                state.themeName = t.name
                state.monochrome = !t.usesColor
                notice("theme \(t.name)")
            } catch {
                notice(userMessage(error), error: true)
            }
        case let .mouse(on): driver.setMouse(on)
        case let .raw(text): driver.writeRaw(text)
        case .editor: editExternally(driver)
        case .suspend:
            // Ctrl-Z as in any terminal program: back to the shell; `fg` brings the chat back as it was.
            driver.suspend { Platform.suspend() }
        }
    }

    func saveHistory() {
        guard let historyPath else { return }
        let lines = state.input.history.suffix(1000).map { JSONValue.string($0).serialized }.joined(separator: "\n") + "\n"
        try? FileManager.default.createDirectory(atPath: (historyPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try? Transcript.writeAtomically(lines, to: historyPath, overwrite: true)
    }

    /// Keeps the scroll offset inside what there is to scroll.
    func clampScroll() {
        let (width, height) = size
        guard state.scrollBack > 0, width >= ChatView.minWidth, height >= ChatView.minHeight else { return }
        let l = ChatView.layout(state, width: width, height: height)
        state.scrollBack = min(state.scrollBack, MessagesView.maxScroll(state, width: l.messages.w, height: l.messages.h))
    }

    /// The screen's size as last drawn (scrolling is kept inside what there is to scroll).
    public var size = (width: 80, height: 24)

    /// Half the message pane, for PgUp / PgDn.
    var pageStep: Int {
        guard size.width >= ChatView.minWidth, size.height >= ChatView.minHeight else { return 1 }
        return max(1, ChatView.layout(state, width: size.width, height: size.height).messages.h / 2)
    }

    // MARK: - keys

    /// Handles one key.
    public func handle(_ key: Key) {
        if key != .ctrl("c") { confirmQuit = false }
        if chord {
            chord = false
            if key == .ctrl("e") { effects.append(.editor); return }
            notice("Ctrl-X: only Ctrl-X Ctrl-E (edit the input in $EDITOR) is bound")
            return
        }
        if state.browser != nil { return handleBrowser(key) }
        if handleSelection(key) { return }
        if state.inspector != nil {
            switch key {
            case .left, .up: state.moveInspector(-1); return
            case .right, .down: state.moveInspector(1); return
            case .home: state.moveInspector(-1_000_000); return
            case .end: state.moveInspector(1_000_000); return
            case .escape, .ctrl("o"): state.inspector = nil; return
            default: state.inspector = nil   // and the key does what it always does
            }
        }
        switch key {
        case .escape:
            if controller.isBusy { controller.stop() } else if state.editing != nil { cancelEditing() }
        case .ctrl("c"):
            if controller.isBusy {
                controller.stop()
            } else if !state.input.isEmpty {
                // The only unsaved work is a draft (the chat itself autosaves): keep it until asked twice.
                if confirmQuit { quit = true } else {
                    confirmQuit = true
                    notice("the input box has unsent text: Ctrl-C again quits, anything else keeps it")
                }
            } else {
                quit = true
            }
        case .ctrl("d"):
            if state.input.isEmpty { quit = true } else { state.input.deleteForward() }
        case .enter: submit()
        case .newline, .ctrl("j"): state.input.insert("\n")
        case let .paste(text): state.input.insert(text)
        case let .char(c): state.input.insert(String(c))
        case .backspace, .ctrl("h"): state.input.backspace()
        case .delete: state.input.deleteForward()
        case .left, .ctrl("b"): state.input.left()
        case .right, .ctrl("f"): state.input.right()
        case .home, .ctrl("a"):
            if state.input.isEmpty { scrollToTop() } else { state.input.home() }
        case .end, .ctrl("e"):
            if state.input.isEmpty { state.scrollBack = 0 } else { state.input.end() }
        case .ctrlHome: scrollToTop()
        case .ctrlEnd: state.scrollBack = 0
        case .ctrl("k"): state.input.killToEnd()
        case .ctrl("u"): state.input.killToStart()
        case .ctrl("w"): state.input.deleteWord()
        case .up, .ctrl("p"): state.input.up()
        case .down, .ctrl("n"): state.input.down()
        case .pageUp: state.scrollBack += pageStep; clampScroll()
        case .pageDown: state.scrollBack = max(0, state.scrollBack - pageStep)
        case let .wheel(d): state.scrollBack = max(0, state.scrollBack - 3 * d); clampScroll()
        case .tab:
            if state.input.string.hasPrefix("/") { complete() } else { cycleScope() }
        case .backTab: cycleScope()
        case .ctrl("t"):
            switch state.panel {
            case .shown: state.panel = .fullScreen
            case .fullScreen: state.panel = .hidden
            case .hidden: state.panel = .shown
            }
        case .ctrl("o"): inspect()
        case .ctrl("x"): chord = true
        case .ctrl("z"): effects.append(.suspend)
        case .ctrl("r"):
            let views = RoutingView.View.allCases
            state.panelView = views[((views.firstIndex(of: state.panelView) ?? 0) + 1) % views.count]
            if state.panel == .hidden { state.panel = .shown }
        case .ctrl("g"):
            state.colourTokens.toggle()
            notice(state.colourTokens ? "tokens coloured by their top-1 expert at L\(chosenLayer) (Ctrl-←/→ layer, Ctrl-G off)" : "token colours off")
        case .ctrlUp: startSelection()
        case .alt("c"): openBrowser()
        case .alt("m"):
            state.rawText.toggle()
            notice(state.rawText ? "replies shown as written (Alt-M renders Markdown)" : "replies rendered as Markdown")
        case .ctrlLeft, .alt("["): stepLayer(-1)
        case .ctrlRight, .alt("]"): stepLayer(1)
        case .ctrl("l"), .resize: break
        default: break
        }
    }

    var chosenLayer: Int {
        let layers = state.moeLayers
        return layers.isEmpty ? 0 : layers[max(0, min(layers.count - 1, state.chosenSlot))]
    }

    func stepLayer(_ d: Int) {
        let n = state.moeLayers.count
        guard n > 0 else { return }
        state.chosenSlot = ((state.chosenSlot + d) % n + n) % n
    }

    func scrollToTop() {
        state.scrollBack = Int.max / 2
        clampScroll()
    }

    func cycleScope() {
        let scopes = LiveRouting.Scope.allCases
        state.routingScope = scopes[((scopes.firstIndex(of: state.routingScope) ?? 0) + 1) % scopes.count]
    }

    func inspect() {
        if !state.startInspector() { notice("no routing to inspect yet: send a message first") }
    }

    /// Enter: a command, or a message to send (`//…` sends a text that starts with `/`).
    func submit() {
        let raw = state.input.string
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { return }
        if text.hasPrefix("/") && !text.hasPrefix("//") {
            _ = state.input.submit()
            command(text)
            return
        }
        let message = text.hasPrefix("//") ? String(text.dropFirst()) : text
        do {
            if let id = state.editing {
                try controller.edit(id, to: message)
                state.editing = nil
                draftBeforeEdit = ""
            } else {
                try controller.send(message)
            }
            _ = state.input.submit()
            state.scrollBack = 0
        } catch {
            // Refused before anything was stored: the draft stays in the input box.
            notice(userMessage(error), error: true)
        }
        pump()
    }

    /// Tab after `/`: completes a command name (or lists the candidates).
    func complete() {
        let typed = state.input.string.dropFirst()
        guard !typed.contains(" ") else { return }
        let names = SlashCommand.all.flatMap { [$0.name] + $0.aliases }.filter { $0.hasPrefix(typed) }.sorted()
        guard !names.isEmpty else { notice("no command starts with /\(typed)"); return }
        if names.count == 1 { state.input.set("/" + names[0] + " "); return }
        var common = names[0]
        for n in names.dropFirst() { while !n.hasPrefix(common) { common.removeLast() } }
        if common.count > typed.count { state.input.set("/" + common) } else { notice(names.map { "/" + $0 }.joined(separator: "  ")) }
    }

    /// Opens $VISUAL / $EDITOR on the input box's text and takes back what was saved.
    func editExternally(_ driver: ScreenDriver) {
        let env = environment
        let editor = [env["VISUAL"], env["EDITOR"]].compactMap { $0 }.first { !$0.isEmpty } ?? "vi"
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-\(getpid())-\(UUID().uuidString.prefix(8)).md").path
        do {
            try Transcript.writeAtomically(state.input.string, to: file, overwrite: true)
        } catch {
            notice(userMessage(error), error: true)
            return
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        var status: Int32 = -1
        driver.suspend {
            // The editor is the terminal's foreground job while it runs (curses is left meanwhile):
            // in a process group of its own that owns the terminal, so reading or configuring the
            // terminal does not stop it, and Ctrl-Z in it suspends the chat with it.
            status = Platform.runInForeground(["/bin/sh", "-c", "\(editor) \"$1\"", "sh", file]) ?? -1
        }
        guard status == 0 else { notice("the editor (\(editor)) exited with status \(status): the input is unchanged", error: true); return }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { notice("the edited text could not be read back", error: true); return }
        state.input.set(text.hasSuffix("\n") ? String(text.dropLast()) : text)
    }

    // MARK: - commands

    /// Runs a slash command line ("/name args"); every command answers in one line.
    public func command(_ line: String) {
        let parts = line.dropFirst().split(separator: " ", maxSplits: 1).map(String.init)
        var name = parts.first ?? ""
        let arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        let force = name.hasSuffix("!")
        if force { name.removeLast() }
        guard let c = SlashCommand.named(name) else {
            notice("unknown command /\(name) (Tab completes, /help lists them)", error: true)
            return
        }
        do {
            let answer = try c.run(self, arg, force)
            pump()   // the command's events first, so its answer follows what it changed
            if let answer { notice(answer) }
        } catch {
            pump()
            notice(userMessage(error), error: true)
        }
    }
}

/// SIGTERM, SIGHUP and SIGINT become a flag the loop checks, so it can restore the terminal.
final class SignalFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    private var sources: [DispatchSourceSignal] = []
    var raised: Bool { lock.withLock { flag } }

    func install(_ numbers: [Int32]) {
        for n in numbers {
            signal(n, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: n, queue: .global())
            source.setEventHandler { [weak self] in self?.lock.withLock { self?.flag = true } }
            source.resume()
            sources.append(source)
        }
    }
}
