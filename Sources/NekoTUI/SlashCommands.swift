import Foundation
import NekoChat

/// A slash command: its name, what it takes, one line of help, and what it does. `/help`, Tab
/// completion and the dispatcher all read this one table. Every command answers in one line
/// (the returned text, or an error).
struct SlashCommand: Sendable {
    let name: String
    var aliases: [String] = []
    let usage: String
    let help: String
    let run: @Sendable (ChatApp, String, _ force: Bool) throws -> String?

    static func named(_ name: String) -> SlashCommand? { all.first { $0.name == name || $0.aliases.contains(name) } }

    static let all: [SlashCommand] = [
        SlashCommand(name: "help", aliases: ["?"], usage: "/help", help: "keys and commands") { app, _, _ in
            app.notice(ChatApp.helpText(app))
            return nil
        },
        SlashCommand(name: "quit", aliases: ["q", "exit"], usage: "/quit", help: "leave (the chat is saved)") { app, _, _ in
            app.quit = true
            return nil
        },
        SlashCommand(name: "new", usage: "/new", help: "start a new chat (in a new file; system prompt and settings stay)") { app, _, _ in
            app.stopReply()
            try app.controller.newChat()
            return "new chat"
        },
        SlashCommand(name: "system", usage: "/system [TEXT | none]", help: "show, set or clear the system prompt") { app, arg, _ in
            if arg.isEmpty {
                return app.controller.conversation.system.map { "the system prompt is: \($0) (/system none clears it)" }
                    ?? "there is no system prompt (/system TEXT sets one)"
            }
            try app.controller.setSystem(arg == "none" ? nil : arg)
            return arg == "none" ? "system prompt cleared" : "system prompt set (\(arg.count) characters); it applies from the next reply"
        },
        SlashCommand(name: "regen", aliases: ["r"], usage: "/regen", help: "write the last reply again (the old one stays: ‹ › switch)") { app, _, _ in
            try app.controller.regenerate()
            return nil
        },
        SlashCommand(name: "continue", usage: "/continue", help: "go on with the last reply where the token limit (or Esc) cut it") { app, _, _ in
            try app.controller.continueReply()
            return nil
        },
        SlashCommand(name: "set", usage: "/set [NAME VALUE]", help: "change a setting; alone: list them with their values") { app, arg, _ in
            let settings = app.controller.conversation.settings
            if arg.isEmpty {
                return (["settings (/set NAME VALUE)"] + SettingSpec.all.map { "\($0.name)\t\($0.display(settings)) · \($0.help); \($0.accepts)" })
                    .joined(separator: "\n")
            }
            let kv = arg.split(separator: " ", maxSplits: 1).map(String.init)
            guard kv.count == 2 else {
                guard let spec = SettingSpec.named(kv[0]) else {
                    throw ChatError("unknown setting '\(kv[0])'; settings: \(SettingSpec.all.map(\.name).joined(separator: ", "))")
                }
                return "\(spec.name) = \(spec.display(settings)): \(spec.help); /set \(spec.name) VALUE with \(spec.accepts)"
            }
            return try app.controller.set(kv[0], kv[1])
        },
        SlashCommand(name: "experts", usage: "/experts [mask L:E… | force L:E… | k N | shared on|off | reset | compare]",
                     help: "mask or force experts, change experts per token, drop the shared expert; compare: the reply with and without; alone: what is in force") { app, arg, _ in
            try app.controller.experts(arg)
        },
        SlashCommand(name: "show", usage: "/show", help: "the model, the backend and the settings") { app, _, _ in
            let info = app.controller.backend.info
            let settings = app.controller.conversation.settings
            var parts = ["model \(info.modelName) (\(info.location))", "\(info.kind) backend", "context \(info.contextSize)"]
            if let kv = info.kvCache { parts.append("KV cache \(kv)") }
            if !info.moeLayers.isEmpty { parts.append("\(info.moeLayers.count) MoE layers × \(info.experts) experts, top-\(info.expertsPerToken)") }
            parts.append(SettingSpec.all.map { "\($0.name) \($0.display(settings))" }.joined(separator: ", "))
            if !settings.experts.isEmpty { parts.append("experts: " + settings.experts.summary) }
            if let path = app.controller.transcript?.path { parts.append("saved to \(path)") }
            return parts.joined(separator: " · ")
        },
        SlashCommand(name: "mode", usage: "/mode chat|complete", help: "chat template, or plain continuation of the text") { app, arg, _ in
            guard !arg.isEmpty else { return "mode \(app.controller.conversation.settings.mode.rawValue) (/mode chat|complete)" }
            try app.controller.set("mode", arg)
            return arg == "chat" ? "chat mode: the chat template frames the conversation"
                : "complete mode: the model continues the plain text of the conversation"
        },
        SlashCommand(name: "tokens", usage: "/tokens", help: "the prompt as the model sees it, token by token") { app, _, _ in
            try app.controller.describePrompt()
        },
        SlashCommand(name: "inspect", usage: "/inspect", help: "walk the last reply's tokens and see each one's experts (Ctrl-O)") { app, _, _ in
            app.inspect()
            return nil
        },
        SlashCommand(name: "routing", usage: "/routing [SCOPE|VIEW|layer N|colour on|off|export[!] FILE]",
                     help: "the panel: last|reply|session, heat|coactivation|flow|table, on|off; colours; export .csv/.json") { app, arg, force in
            let parts = arg.split(separator: " ", maxSplits: 1).map(String.init)
            let word = parts.first ?? "", rest = parts.count > 1 ? parts[1] : ""
            if let scope = LiveRouting.Scope(rawValue: word) {
                app.state.routingScope = scope
                if app.state.panel == .hidden { app.state.panel = .shown }
                return "routing panel counts \(scope.rawValue == "last" ? "the last token" : scope.rawValue == "reply" ? "this reply" : "the session")"
            }
            if let view = RoutingView.View(rawValue: word) {
                app.state.panelView = view
                if app.state.panel == .hidden { app.state.panel = .shown }
                return "routing panel: \(view.rawValue)\(view == .heat || view == .table ? "" : " of L\(app.chosenLayer)")"
            }
            switch word {
            case "off": app.state.panel = .hidden; return "routing panel hidden (/routing on shows it)"
            case "on": app.state.panel = .shown; return "routing panel shown"
            case "layer":
                guard let n = Int(rest), let slot = app.state.moeLayers.firstIndex(of: n) else {
                    throw ChatError("/routing layer takes a MoE layer: \(app.state.moeLayers.map(String.init).joined(separator: ", "))")
                }
                app.state.chosenSlot = slot
                return "layer \(n) chosen (for coactivation, flow and token colours)"
            case "colour", "color":
                guard rest == "on" || rest == "off" else { throw ChatError("/routing colour on|off") }
                app.state.colourTokens = rest == "on"
                return app.state.colourTokens ? "tokens coloured by their top-1 expert at L\(app.chosenLayer)" : "token colours off"
            case "export", "export!":   // export! (or /routing! export) overwrites, as /save! does
                guard !rest.isEmpty else { throw ChatError("/routing export needs a file: FILE.csv (rows) or FILE.json (the analysis)") }
                return try app.controller.exportRouting(to: rest, overwrite: force || word == "export!")
            case "":
                return "routing panel: \(app.state.panelView.rawValue), \(app.state.routingScope.rawValue), layer L\(app.chosenLayer); /help lists the keys"
            default:
                throw ChatError("/routing takes last, reply, session, heat, coactivation, flow, table, on, off, layer N, colour on|off or export FILE")
            }
        },
        SlashCommand(name: "theme", usage: "/theme [NAME]", help: "change the colours (dark, light, mono or a file)") { app, arg, _ in
            guard !arg.isEmpty else {
                return "theme \(app.state.themeName); themes: \(Theme.available().joined(separator: ", ")) (/theme NAME)"
            }
            app.effects.append(.theme(arg))
            return nil
        },
        SlashCommand(name: "save", usage: "/save [FILE]", help: "write a copy of the whole chat (/save! overwrites)") { app, arg, force in
            guard !arg.isEmpty else {
                return "this chat saves itself to \(app.controller.transcript?.path ?? "a new file when you send a message"); /save FILE writes a copy"
            }
            return try app.controller.save(to: arg, overwrite: force)
        },
        SlashCommand(name: "export", usage: "/export FILE.md", help: "the chat as Markdown (/export! overwrites)") { app, arg, force in
            guard !arg.isEmpty else { throw ChatError("/export needs a file name: /export FILE.md") }
            return try app.controller.export(to: arg, overwrite: force)
        },
        SlashCommand(name: "load", usage: "/load FILE", help: "open a saved chat here (it goes on in that file)") { app, arg, _ in
            guard !arg.isEmpty else {
                throw ChatError("/load needs a file: a chat saved by nekochat, or OpenAI-style JSON (saved chats are in \(TranscriptStore.standard().directory))")
            }
            return try app.controller.load(arg)
        },
        SlashCommand(name: "title", usage: "/title TEXT", help: "name this chat") { app, arg, _ in
            guard !arg.isEmpty else { return app.controller.conversation.title.map { "title: \($0)" } ?? "no title yet (/title TEXT)" }
            app.controller.setTitle(arg)
            return "title set"
        },
        SlashCommand(name: "mouse", usage: "/mouse on|off", help: "wheel scrolling, or the terminal's own selection") { app, arg, _ in
            guard arg == "on" || arg == "off" else { return "mouse \(app.mouse ? "on" : "off") (/mouse on|off)" }
            app.mouse = arg == "on"
            app.effects.append(.mouse(app.mouse))
            return app.mouse ? "mouse on: the wheel scrolls (Shift-drag selects in most terminals)" : "mouse off: select text with the mouse; PgUp/PgDn scroll"
        },
        SlashCommand(name: "chats", usage: "/chats", help: "browse and search the saved chats: open, rename, delete (Alt-C)") { app, _, _ in
            app.openBrowser()
            return nil
        },
        SlashCommand(name: "copy", usage: "/copy [N]", help: "copy the last reply, or its N-th code block, to the clipboard") { app, arg, _ in
            try app.copyCommand(arg)
        },
        SlashCommand(name: "raw", usage: "/raw", help: "show replies as written, or render their Markdown again (Alt-M)") { app, _, _ in
            app.state.rawText.toggle()
            return app.state.rawText ? "replies shown as written" : "replies rendered as Markdown"
        },
        SlashCommand(name: "edit", usage: "/edit", help: "edit the input in $VISUAL / $EDITOR (Ctrl-X Ctrl-E)") { app, _, _ in
            app.effects.append(.editor)
            return nil
        },
    ]
}

extension ChatApp {
    /// The keys, as (keys, what they do): `/help` shows them as a table.
    static let keys: [(String, String)] = [
        ("Enter", "send · Alt-Enter or Ctrl-J: a newline"),
        ("Esc, Ctrl-C", "stop a reply (it is kept, marked stopped); /continue goes on with it"),
        ("Ctrl-C, Ctrl-D", "quit (Ctrl-C when idle, Ctrl-D on an empty line); the chat is saved"),
        ("Ctrl-Z", "suspend to the shell; fg comes back"),
        ("PgUp, PgDn", "scroll half a page; Home/End (empty input) or Ctrl-Home/End: top, bottom"),
        ("↑, ↓", "the lines of the draft, then the input history"),
        ("Tab", "complete a /command; otherwise cycle the routing scope (token, reply, session)"),
        ("Ctrl-T", "routing panel beside the chat, full screen, or hidden"),
        ("Ctrl-R", "routing view: heat, coactivation, flow, table; Ctrl-←/→ its layer"),
        ("Ctrl-G", "colour the tokens by their top-1 expert"),
        ("Ctrl-O", "inspect a reply token by token (←/→)"),
        ("Alt-↑, Ctrl-↑", "pick a message: ↑/↓ move, ←/→ versions, e edit, r reply again, y copy, Esc"),
        ("Alt-C", "the saved chats: search, open, rename, delete"),
        ("Alt-M", "Markdown or the raw text"),
        ("Ctrl-X Ctrl-E", "edit the draft in $VISUAL / $EDITOR"),
        ("//text", "send a message that starts with /"),
    ]

    /// `/help`: the keys, then the commands, as tables (a tab between the term and its text).
    static func helpText(_ app: ChatApp) -> String {
        var lines = ["keys"] + keys.map { "\($0.0)\t\($0.1)" }
        lines += ["commands"] + SlashCommand.all.map { "\($0.usage)\t\($0.help)" }
        if let path = app.controller.transcript?.path { lines.append("this chat is saved to \(path)") }
        return lines.joined(separator: "\n")
    }
}
