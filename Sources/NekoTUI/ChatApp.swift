import CNcursesw
import Dispatch
import Foundation
import NekoChat

/// The chat UI loop: keys → commands to the generation actor; its events → the screen.
/// Runs on the calling (main) thread, the only one that touches curses.
public final class ChatApp {
    let engine: ChatEngine
    var state: ScreenState
    var theme: Theme
    let themeNoColor: Bool
    var sampling: SamplingParameters
    var maxTokens: Int
    var transcript: Transcript?
    let modelPath: String
    let fingerprint: String
    var decoder = KeyDecoder()
    var quit = false
    var confirmQuit = false
    private let signals = SignalFlag()
    /// Commands reach the actor through one consumer, in the order they were given.
    private let commands: AsyncStream<ChatCommand>.Continuation
    private let consumer: Task<Void, Never>
    private var transcriptError: String?

    public init(engine: ChatEngine, state: ScreenState, theme: Theme, noColor: Bool, sampling: SamplingParameters,
                maxTokens: Int, transcript: Transcript?, modelPath: String, fingerprint: String) {
        self.engine = engine
        self.state = state
        self.theme = theme
        themeNoColor = noColor
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.transcript = transcript
        self.modelPath = modelPath
        self.fingerprint = fingerprint
        let (stream, continuation) = AsyncStream<ChatCommand>.makeStream()
        commands = continuation
        consumer = Task { for await command in stream { await engine.handle(command) } }
    }

    deinit { commands.finish() }

    /// Runs until /quit, Ctrl-C (idle), Ctrl-D (empty input), SIGTERM or SIGHUP; the terminal
    /// is restored on every way out.
    public func run() throws {
        var terminal = try Terminal(theme: theme)
        defer { terminal.close() }
        signals.install([SIGTERM, SIGHUP, SIGINT])
        if let t = transcript { state.notice("autosaving to \(t.path)") }
        var dirty = true
        while !quit {
            if signals.raised { break }
            if dirty {
                let (w, h) = terminal.size
                let grid = ChatView.render(state, width: w, height: h)
                let (cx, cy) = cursor(width: w, height: h)
                terminal.draw(grid, cursorX: cx, cursorY: cy)
                dirty = false
            }
            if let (code, isKey) = terminal.read() {
                var keys: [Key] = []
                if isKey {
                    switch Int32(code) {
                    case nk_key_resize(): keys = [.resize]
                    case nk_key_mouse(): let w = terminal.mouseWheel(); keys = w != 0 ? [.wheel(w)] : []
                    case KEY_UP: keys = [.up]
                    case KEY_DOWN: keys = [.down]
                    case KEY_LEFT: keys = [.left]
                    case KEY_RIGHT: keys = [.right]
                    case KEY_HOME: keys = [.home]
                    case KEY_END: keys = [.end]
                    case KEY_PPAGE: keys = [.pageUp]
                    case KEY_NPAGE: keys = [.pageDown]
                    case KEY_BACKSPACE: keys = [.backspace]
                    case KEY_DC: keys = [.delete]
                    case KEY_ENTER: keys = [.enter]
                    default: keys = []
                    }
                } else {
                    keys = decoder.feed(character: code)
                }
                for key in keys {
                    if key == .resize { terminal.invalidate() }
                    if case let .theme(name)? = handle(key), let t = try? Theme.named(name, noColor: themeNoColor) {
                        theme = t
                        terminal.close()
                        terminal = try Terminal(theme: t)
                        state.themeName = name
                    }
                    dirty = true
                }
            } else {
                let escape = decoder.flushEscape()
                for key in escape { _ = handle(key); dirty = true }
            }
            for event in engine.events.drain() {
                state.apply(event)
                record(event)
                dirty = true
            }
            if let e = transcript?.lastError, e != transcriptError {
                transcriptError = e
                state.notice(e, error: true)
                dirty = true
            }
        }
        // Stop a reply in progress and wait (briefly) for its end, so the transcript keeps it.
        if state.isBusy {
            engine.stop()
            let deadline = Date().addingTimeInterval(2)
            while state.isBusy, Date() < deadline {
                for event in engine.events.drain() { state.apply(event); record(event) }
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
    }

    enum Effect { case theme(String) }

    func cursor(width: Int, height: Int) -> (Int, Int) {
        let lines = ChatView.wrapInput(state.input, width: width - 2)
        let inputHeight = min(5, max(1, lines.count), height - 3) + 1
        let row = height - inputHeight + min(lines.count, 5)
        return (min(width - 1, 2 + displayWidth(lines.last ?? "")), max(0, min(height - 1, row)))
    }

    func record(_ event: ChatEvent) {
        guard let transcript else { return }
        switch event {
        case let .messageAdded(m) where m.role == .user: transcript.append(m)
        // A reply that /new took off the screen is not part of the conversation any more.
        case let .finished(m, _) where state.messages.contains(where: { $0.id == m.id }): transcript.append(m)
        default: break
        }
    }

    func send(_ command: ChatCommand) {
        switch command {
        case .send, .regenerate: engine.clearStop()
        default: break
        }
        commands.yield(command)
    }

    /// Handles one key; returns an effect the loop must carry out (a theme change).
    func handle(_ key: Key) -> Effect? {
        if key != .ctrl("c") { confirmQuit = false }
        if state.inspector != nil, key != .escape, key != .ctrl("c") {
            switch key {
            case .left, .up: state.moveInspector(-1)
            case .right, .down: state.moveInspector(1)
            case .home: state.moveInspector(-1_000_000)
            case .end: state.moveInspector(1_000_000)
            default: state.inspector = nil
            }
            return nil
        }
        switch key {
        case .escape:
            if state.inspector != nil { state.inspector = nil } else if state.isBusy { engine.stop() }
        case .ctrl("c"):
            state.inspector = nil
            if state.isBusy {
                engine.stop()
            } else if !state.input.isEmpty {
                // The only unsaved work is a draft (the chat itself autosaves): keep it until asked twice.
                if confirmQuit { quit = true } else {
                    confirmQuit = true
                    state.notice("the input box has unsent text: Ctrl-C again quits, anything else keeps it")
                }
                return nil
            } else {
                quit = true
            }
        case .ctrl("d"):
            if state.input.isEmpty { quit = true } else { state.input.deleteForward() }
        case .enter:
            let text = state.input.string.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty else { break }
            if text.hasPrefix("/") {
                _ = state.input.submit()
                return command(text)
            }
            if state.isBusy {
                state.notice("still answering: press Esc to stop it first")
                break
            }
            _ = state.input.submit()
            state.scrollBack = 0
            send(.send(text))
        case .newline, .ctrl("j"): state.input.insert("\n")
        case let .paste(text): state.input.insert(text)
        case let .char(c): state.input.insert(String(c))
        case .backspace, .ctrl("h"): state.input.backspace()
        case .delete: state.input.deleteForward()
        case .left, .ctrl("b"): state.input.left()
        case .right, .ctrl("f"): state.input.right()
        case .home, .ctrl("a"): state.input.home()
        case .end, .ctrl("e"): state.input.end()
        case .ctrl("k"): state.input.killToEnd()
        case .ctrl("u"): state.input.killToStart()
        case .ctrl("w"): state.input.deleteWord()
        case .up, .ctrl("p"): state.input.historyUp()
        case .down, .ctrl("n"): state.input.historyDown()
        case .pageUp: state.scrollBack += 10
        case .pageDown: state.scrollBack = max(0, state.scrollBack - 10)
        case let .wheel(d): state.scrollBack = max(0, state.scrollBack - 3 * d)
        case .tab:
            let scopes: [RoutingCounts.Scope] = [.last, .reply, .session]
            state.routingScope = scopes[((scopes.firstIndex(of: state.routingScope) ?? 0) + 1) % scopes.count]
        case .ctrl("t"): state.showRouting.toggle()
        case .ctrl("o"):
            if !state.startInspector() { state.notice("no routing to inspect yet: send a message first") }
        case .ctrl("l"): break
        default: break
        }
        return nil
    }

    static let help = """
        Enter sends · Alt-Enter or Ctrl-J: newline · Esc or Ctrl-C: stop the reply · Ctrl-C (idle) or Ctrl-D (empty): quit
        PgUp/PgDn or the wheel: scroll · Tab: routing for the last token / this reply / the session · Ctrl-T: routing panel
        Ctrl-O or /inspect: walk the last reply's tokens (←/→) and see each one's experts and weights · /tokens: the prompt's ids
        /new · /system TEXT · /regen · /set temperature|top_k|top_p|min_p|repeat_penalty|max_tokens|seed VALUE
        /save [FILE] · /load FILE · /export FILE.md · /theme NAME · /routing last|reply|session|off · /mode chat|complete · /quit
        """

    func command(_ line: String) -> Effect? {
        let parts = line.dropFirst().split(separator: " ", maxSplits: 1).map(String.init)
        let name = parts.first ?? "", arg = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        switch name {
        case "help":
            state.notice(Self.help + (transcript.map { "\nautosave: \($0.path)" } ?? ""))
        case "quit", "q", "exit": quit = true
        case "new":
            engine.stop()
            send(.newChat)
            state.messages.removeAll { $0.kind != .system }
            transcript?.appendEvent("new")
            state.notice("new conversation")
        case "system":
            send(.setSystem(arg))
            state.messages.removeAll { $0.kind == .system }
            state.messages.insert(DisplayMessage(id: 0, kind: .system, text: arg), at: 0)
            transcript?.appendEvent("system", [("content", .string(arg))])
        case "regen":
            guard !state.isBusy else { state.notice("still answering: press Esc first"); break }
            if let i = state.messages.lastIndex(where: { $0.kind == .assistant }) { state.messages.remove(at: i) }
            transcript?.appendEvent("regen")
            send(.regenerate)
        case "set":
            let kv = arg.split(separator: " ").map(String.init)
            guard kv.count == 2 else { state.notice("usage: /set NAME VALUE", error: true); break }
            guard setParameter(kv[0], kv[1]) else { state.notice("cannot set \(kv[0]) to \(kv[1])", error: true); break }
            send(.setSampling(sampling, maxTokens: maxTokens))
            transcript?.appendEvent("set", [("name", .string(kv[0])), ("value", .string(kv[1]))])
            state.notice("\(kv[0]) = \(kv[1])")
        case "tokens":
            send(.showPrompt)
        case "inspect":
            if !state.startInspector() { state.notice("no routing to inspect yet: send a message first") }
        case "mode":
            guard let mode = ChatMode(rawValue: arg) else { state.notice("usage: /mode chat|complete", error: true); break }
            send(.setMode(mode))
            state.notice(mode == .chat ? "chat mode: the chat template frames the conversation"
                                       : "complete mode: the model continues the plain text of the conversation")
        case "routing":
            if let scope = RoutingCounts.Scope(rawValue: arg) {
                state.routingScope = scope
                state.showRouting = scope != .off
            } else {
                state.notice("usage: /routing last|reply|session|off", error: true)
            }
        case "theme":
            guard (try? Theme.named(arg, noColor: themeNoColor)) != nil else { state.notice("no theme named '\(arg)'", error: true); break }
            return .theme(arg)
        case "save", "export", "load":
            fileCommand(name, arg)
        default:
            state.notice("unknown command /\(name) (try /help)", error: true)
        }
        return nil
    }

    func setParameter(_ key: String, _ value: String) -> Bool {
        switch key {
        case "temperature": guard let v = Float(value), v >= 0 else { return false }; sampling.temperature = v
        case "top_k": guard let v = Int(value) else { return false }; sampling.topK = v
        case "top_p": guard let v = Float(value), v > 0, v <= 1 else { return false }; sampling.topP = v
        case "min_p": guard let v = Float(value), v >= 0, v <= 1 else { return false }; sampling.minP = v
        case "repeat_penalty": guard let v = Float(value), v > 0 else { return false }; sampling.repeatPenalty = v
        case "max_tokens": guard let v = Int(value), v > 0 else { return false }; maxTokens = v
        case "seed": guard let v = UInt64(value) else { return false }; sampling.seed = v
        default: return false
        }
        return true
    }

    func fileCommand(_ name: String, _ arg: String) {
        // The screen's own copy of the conversation: asking the actor would wait for a reply in
        // progress, which may itself be waiting for this thread to drain its events.
        let messages = state.conversation
        do {
            switch name {
            case "save":
                guard !arg.isEmpty else {
                    state.notice("this chat autosaves to \(transcript?.path ?? "(nowhere)"); /save FILE writes a copy")
                    return
                }
                try Transcript.save(messages, to: arg, model: modelPath, fingerprint: fingerprint)
                state.notice("saved \(messages.count) messages to \(arg)")
            case "export":
                guard !arg.isEmpty else { state.notice("usage: /export FILE.md", error: true); return }
                let md = messages.map { "**\($0.role.rawValue)**\n\n\($0.content)\n" }.joined(separator: "\n")
                try Data(md.utf8).write(to: URL(fileURLWithPath: arg), options: .atomic)
                state.notice("exported to \(arg)")
            default:
                let loaded = try Transcript.load(path: arg)
                guard !state.isBusy else { state.notice("still answering: press Esc first"); return }
                send(.load(loaded))
                state.show(loaded)
                transcript?.appendEvent("load", [("from", .string(arg)), ("messages", .array(loaded.map { Transcript.line($0) }))])
                state.notice("loaded \(loaded.count) messages from \(arg); the context is rebuilt with the next message")
            }
        } catch {
            state.notice("\(error)", error: true)
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
