import Foundation
import NekoChat
import Testing

/// Drives the real chat UI in tmux as a person would: type, watch the reply stream with its
/// tok/s and routing rows, resize, /save, /quit, and reopen the transcript.
@Suite(.serialized) struct ChatE2ETests {
    static let tmuxAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux")
    /// A tmux server of our own; the reopen step uses a fresh one, as the first may still be exiting.
    var socket = "nekochat-test-\(getpid())"

    @discardableResult
    func tmux(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/tmux")
        p.arguments = ["-L", socket] + args
        // The first command starts the tmux server, which would inherit (and hold open) a pipe:
        // only capture-pane's output is read.
        let capture = args.first == "capture-pane" || args.first == "show-buffer"
        let out = Pipe()
        p.standardOutput = capture ? out : FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // new-session's client exits at once, but the server it forks keeps Foundation's
        // child-monitoring descriptor open, so waitUntilExit would never return: don't wait.
        if args.first == "new-session" { return "" }
        let data = capture ? out.fileHandleForReading.readDataToEndOfFile() : Data()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    func screen() throws -> String { try tmux(["capture-pane", "-t", "chat", "-p"]) }

    /// Polls the screen until `condition` holds (at most `seconds`).
    func waitFor(_ what: String, seconds: Double = 20, _ condition: (String) -> Bool) throws -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var last = ""
        while Date() < deadline {
            last = try screen()
            if condition(last) { return last }
            Thread.sleep(forTimeInterval: 0.2)
        }
        Issue.record("timed out waiting for \(what); the screen:\n\(last)")
        return last
    }

    @Test(.enabled(if: tmuxAvailable)) mutating func chatInTmux() throws {
        let model = try TinyTextModel.make()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let transcript = dir + "/chat.jsonl", saved = dir + "/saved.jsonl"
        let binary = try #require(CLI.binary).path
        func start() throws {
            // A plain relative transcript name, as a user types it.
            try tmux(["new-session", "-d", "-s", "chat", "-x", "100", "-y", "30",
                      "cd \(dir) && XDG_DATA_HOME=\(dir) TERM=xterm-256color \(binary) --model \(model) --transcript chat.jsonl --max-tokens 12 --temperature 0 --threads 1; echo EXITED $?; sleep 60"])
        }
        defer { _ = try? tmux(["kill-server"]) }   // the reopen server
        try start()
        let welcome = try waitFor("the input box") { $0.contains("Enter sends") }
        #expect(welcome.contains("/help") && welcome.contains("ready"))
        try tmux(["send-keys", "-t", "chat", "the cat", "Enter"])
        let replied = try waitFor("a reply with tok/s and routing rows") {
            $0.contains("neko") && $0.contains("decode") && $0.contains("L2 ") && $0.contains(" idle ")
        }
        #expect(replied.contains("you") && replied.contains("the cat"))
        #expect(!replied.contains("decode 0.0 tok/s"))

        try tmux(["resize-window", "-t", "chat", "-x", "50", "-y", "14"])
        let small = try waitFor("the small layout") {
            $0.split(separator: "\n").allSatisfy { $0.count <= 50 } && $0.split(separator: "\n").first?.contains("idle") == true
        }
        #expect(small.contains("idle") && small.contains("tok/s"))
        try tmux(["resize-window", "-t", "chat", "-x", "100", "-y", "30"])

        try tmux(["send-keys", "-t", "chat", "/save \(saved)", "Enter"])
        _ = try waitFor("the save notice") { $0.contains("saved") }
        #expect(FileManager.default.fileExists(atPath: saved))
        try tmux(["send-keys", "-t", "chat", "/quit", "Enter"])
        let exited = try waitFor("the exit") { $0.contains("EXITED 0") }
        // The hint works as printed: this binary, the model it ran, the file.
        let resolved = URL(fileURLWithPath: binary).resolvingSymlinksInPath().path
        #expect(exited.replacingOccurrences(of: "\n", with: "").contains("resume it with: \(resolved) --model \(model) --transcript \(transcript)"),
                "\(exited)")
        try tmux(["kill-server"])
        socket += "-reopen"

        let log = try String(contentsOfFile: transcript, encoding: .utf8)
        #expect(log.contains("\"type\":\"header\"") && log.contains("\"role\":\"user\",\"content\":\"the cat\"")
                && log.contains("\"role\":\"assistant\""))

        try start()
        let reopened = try waitFor("the reopened conversation", seconds: 40) { $0.contains("the cat") && $0.contains("Enter sends") }
        #expect(reopened.contains("neko"))
        try tmux(["send-keys", "-t", "chat", "C-d"])
        _ = try waitFor("the exit") { $0.contains("EXITED 0") }
    }

    /// Markdown, edit-and-branch, the browser's search and the clipboard, in a real terminal,
    /// with a scripted backend (fixed replies) so the screen is predictable.
    @Test(.enabled(if: tmuxAvailable)) mutating func chatFeaturesInTmux() throws {
        socket += "-features"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-f-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let replies = ["# Heading\nSome **bold** text\n```python\nprint('hi')\n```", "second", "edited answer", "another"]
        let file = dir + "/replies.json"
        try String(decoding: try JSONSerialization.data(withJSONObject: replies), as: UTF8.self).write(toFile: file, atomically: true, encoding: .utf8)
        let binary = try #require(CLI.binary).path
        try tmux(["new-session", "-d", "-s", "chat", "-x", "100", "-y", "30",
                  "XDG_DATA_HOME=\(dir) TERM=xterm-256color \(binary) --scripted-replies \(file); echo EXITED $?; sleep 60"])
        defer { _ = try? tmux(["kill-server"]) }
        _ = try waitFor("the input box") { $0.contains("Enter sends") }
        try tmux(["set", "-s", "set-clipboard", "on"])
        func send(_ text: String) throws { try tmux(["send-keys", "-t", "chat", "-l", text]); try tmux(["send-keys", "-t", "chat", "Enter"]) }
        try send("first question")
        let md = try waitFor("the markdown reply") { $0.contains("print('hi')") && $0.contains(" idle ") }
        #expect(md.contains("Heading") && !md.contains("# Heading") && !md.contains("**") && md.contains("┌ [1] python"), "\(md)")
        try send("second question")
        _ = try waitFor("the second reply") { $0.contains("second\n") || $0.contains("  second ") }
        // Pick the second question, edit it, send it as a new branch.
        try tmux(["send-keys", "-t", "chat", "M-Up", "Up", "e", "C-u"])
        try send("better question")
        let branched = try waitFor("the edited branch") { $0.contains("edited answer") && $0.contains("‹ 2/2 ›") }
        #expect(branched.contains("better question") && !branched.contains("second question"))
        try send("/new")
        try send("another chat")
        _ = try waitFor("the new chat's reply") { $0.contains("another") && $0.contains(" idle ") }
        // The browser finds the first chat by a word of its edited branch.
        try tmux(["send-keys", "-t", "chat", "M-c"])
        _ = try waitFor("the browser") { $0.contains("chats · 2 of 2") }
        try tmux(["send-keys", "-t", "chat", "-l", "better"])
        _ = try waitFor("the search") { $0.contains("chats · 1 of 2") }
        try tmux(["send-keys", "-t", "chat", "Enter"])
        let opened = try waitFor("the opened chat") { $0.contains("better question") && $0.contains("loaded") }
        #expect(opened.contains("edited answer"))
        try send("/copy")
        _ = try waitFor("the copy notice") { $0.contains("copied the last reply") }
        let buffer = try tmux(["show-buffer"])
        #expect(buffer == "edited answer", "\(buffer)")
        try send("/quit")
        _ = try waitFor("the exit") { $0.contains("EXITED 0") }
    }

    /// The same screen against `nekochat serve`: streaming text, the routing panel from the
    /// server's extension, stop, and a server that goes away mid-chat.
    @Test(.enabled(if: tmuxAvailable)) mutating func chatAgainstAServerInTmux() throws {
        socket += "-remote"
        let server = try ServerProcess([])
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-r-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let binary = try #require(CLI.binary).path
        try tmux(["new-session", "-d", "-s", "chat", "-x", "100", "-y", "30",
                  "XDG_DATA_HOME=\(dir) TERM=xterm-256color \(binary) --server \(server.url) --max-tokens 16 --temperature 0; echo EXITED $?; sleep 60"])
        defer { _ = try? tmux(["kill-server"]) }
        let start = try waitFor("the input box") { $0.contains("Enter sends") }
        #expect(start.contains("replies come from \(server.url)/v1"))
        try tmux(["send-keys", "-t", "chat", "Speak, friend.", "Enter"])
        let replied = try waitFor("a reply with routing") { $0.contains("neko ·") && $0.contains(" idle ") && $0.contains("L2 ") }
        #expect(replied.contains("decode") && (replied.contains(" H1.") || replied.contains(" H2.") || replied.contains(" H3.")), "\(replied)")
        server.stop()
        try tmux(["send-keys", "-t", "chat", "Again?", "Enter"])
        let failed = try waitFor("the error") { $0.contains("connection refused") || $0.contains("closed the connection") }
        #expect(failed.contains("neko (failed)"))
        try tmux(["send-keys", "-t", "chat", "/quit", "Enter"])
        let exited = try waitFor("the exit") { $0.contains("EXITED 0") }
        // The hint resumes against the same server, not the local model.
        #expect(exited.replacingOccurrences(of: "\n", with: "").contains("--server \(server.url) --transcript "), "\(exited)")
        // The transcript says where the replies came from.
        let file = try #require(try FileManager.default.contentsOfDirectory(atPath: dir + "/nekochat").first { $0.hasSuffix(".jsonl") })
        let log = try String(contentsOfFile: dir + "/nekochat/" + file, encoding: .utf8)
        #expect(log.contains("\"backend\":\"remote\"") && log.contains(server.url))
    }

    /// SIGKILL at random moments mid-reply, again and again on the same transcript: every
    /// message that was on the screen is in the file, and the file always loads.
    @Test(.enabled(if: tmuxAvailable)) mutating func killedMidReplyLosesNothing() throws {
        socket += "-kill"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-k-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let replies = (0..<3).map { r in (0..<150).map { "word\(r)-\($0)" }.joined(separator: " ") }
        try String(decoding: try JSONSerialization.data(withJSONObject: replies), as: UTF8.self)
            .write(toFile: dir + "/replies.json", atomically: true, encoding: .utf8)
        let binary = try #require(CLI.binary).path
        let transcript = dir + "/chat.jsonl", pidFile = dir + "/pid"
        var rng = SystemRandomNumberGenerator()
        defer { _ = try? tmux(["kill-server"]) }
        for round in 0..<8 {
            try? FileManager.default.removeItem(atPath: pidFile)
            try tmux(["new-session", "-d", "-s", "chat", "-x", "100", "-y", "30",
                      "echo $$ > \(pidFile); XDG_DATA_HOME=\(dir) TERM=xterm-256color exec \(binary) --scripted-replies \(dir)/replies.json --transcript \(transcript)"])
            _ = try waitFor("the chat") { $0.contains("Enter sends") }
            try tmux(["send-keys", "-t", "chat", "-l", "message \(round)"])
            try tmux(["send-keys", "-t", "chat", "Enter"])
            _ = try waitFor("the reply starting") { $0.contains("word") }
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.4, using: &rng))
            let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            kill(pid, SIGKILL)
            Thread.sleep(forTimeInterval: 0.2)
            _ = try? tmux(["kill-session", "-t", "chat"])
            let loaded = try Transcript.load(path: transcript).conversation
            let users = loaded.messages.filter { $0.role == .user }.map(\.content)
            #expect(users == (0...round).map { "message \($0)" }, "round \(round): \(users)")
            // Every reply in the file is whole: one of the scripted texts, or a prefix cut at a word.
            for reply in loaded.messages where reply.role == .assistant {
                #expect(replies.contains { $0.hasPrefix(reply.content) } && reply.finishReason != nil)
            }
        }
    }

    /// A model of another family (OLMoE's 64 experts, top-8, no shared expert) at 80×24: the reply,
    /// the routing panel beside it with every layer (4 experts a cell), and the inspector.
    @Test(.enabled(if: tmuxAvailable)) mutating func anOLMoEChatInTmux() throws {
        socket += "-olmoe"
        let model = try TinyTextModel.make(from: "hf_olmoe64_top8")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-o-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let binary = try #require(CLI.binary).path
        try tmux(["new-session", "-d", "-s", "chat", "-x", "80", "-y", "24",
                  "XDG_DATA_HOME=\(dir) TERM=xterm-256color \(binary) --model \(model) --max-tokens 8 --temperature 0 --threads 1; echo EXITED $?; sleep 60"])
        defer { _ = try? tmux(["kill-server"]) }
        _ = try waitFor("the input box") { $0.contains("Enter sends") }
        try tmux(["send-keys", "-t", "chat", "-l", "the cat"])
        try tmux(["send-keys", "-t", "chat", "Enter"])
        let replied = try waitFor("the reply and the panel") { $0.contains(" idle ") && $0.contains("L2 ") }
        #expect(replied.contains("heat · reply · H ≤ 6.0 · 4/cell") && replied.contains("L0 ") && replied.contains("│"), "\(replied)")
        try tmux(["send-keys", "-t", "chat", "C-o"])
        let inspected = try waitFor("the inspector") { $0.contains("token ") && $0.contains("Esc leaves") }
        // Each layer's 8 experts with their weights (the ones a narrow panel cannot fit are counted "+N").
        let l0 = try #require(inspected.split(separator: "\n").first { $0.hasPrefix("L0  e") || $0.contains("│L0  e") })
        let shown = l0.split(separator: " ").filter { $0.hasPrefix("e") || $0.contains("│L0") }.count
        let counted = l0.split(separator: " ").first { $0.hasPrefix("+") }.flatMap { Int($0.dropFirst()) } ?? 0
        #expect(shown + counted >= 8, "8 experts a layer:\n\(inspected)")
        try tmux(["send-keys", "-t", "chat", "Escape"])
        Thread.sleep(forTimeInterval: 0.3)   // else Esc and "/" arrive as one Alt-/
        try tmux(["send-keys", "-t", "chat", "/quit", "Enter"])
        _ = try waitFor("the exit") { $0.contains("EXITED 0") }
    }

    /// The external editor owns the terminal while it runs (an editor that reads from /dev/tty,
    /// as vim does, was stopped by SIGTTIN and hung the chat); Ctrl-Z suspends the chat to the
    /// shell and `fg` brings it back.
    @Test(.enabled(if: tmuxAvailable)) mutating func theEditorAndCtrlZBehaveAsJobs() throws {
        socket += "-jobs"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-j-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let editor = dir + "/editor.sh"
        try """
            #!/bin/sh
            stty -echo < /dev/tty          # an editor configures the terminal…
            stty echo < /dev/tty
            printf 'EDITOR READY> ' > /dev/tty
            read line < /dev/tty           # …and reads from it
            printf '%s\\n' "$line" > "$1"
            """.write(toFile: editor, atomically: true, encoding: .utf8)
        chmod(editor, 0o755)
        try """
            ["first reply"]
            """.write(toFile: dir + "/replies.json", atomically: true, encoding: .utf8)
        let binary = try #require(CLI.binary).path
        // An interactive shell, so that job control (Ctrl-Z, fg) works as a user has it.
        try tmux(["new-session", "-d", "-s", "chat", "-x", "100", "-y", "30", "bash --norc --noprofile -i"])
        defer { _ = try? tmux(["kill-server"]) }
        Thread.sleep(forTimeInterval: 0.5)
        // (No "; echo" after it: bash drops the rest of a command list whose job was stopped.)
        try tmux(["send-keys", "-t", "chat", "-l",
                  "XDG_DATA_HOME=\(dir) VISUAL=\(editor) TERM=xterm-256color \(binary) --scripted-replies \(dir)/replies.json"])
        try tmux(["send-keys", "-t", "chat", "Enter"])
        _ = try waitFor("the chat") { $0.contains("Enter sends") }
        try tmux(["send-keys", "-t", "chat", "-l", "draft"])
        try tmux(["send-keys", "-t", "chat", "C-x", "C-e"])
        _ = try waitFor("the editor's prompt") { $0.contains("EDITOR READY>") }
        try tmux(["send-keys", "-t", "chat", "-l", "written in the editor"])
        try tmux(["send-keys", "-t", "chat", "Enter"])
        let back = try waitFor("the chat with the edited draft") { $0.contains("Enter sends") && $0.contains("> written in the editor") }
        #expect(!back.contains("EDITOR READY"), "\(back)")

        try tmux(["send-keys", "-t", "chat", "C-z"])
        let stopped = try waitFor("the shell") { $0.contains("Stopped") }
        #expect(!stopped.contains("Enter sends") || stopped.contains("Stopped"))
        try tmux(["send-keys", "-t", "chat", "-l", "fg"])
        try tmux(["send-keys", "-t", "chat", "Enter"])
        let resumed = try waitFor("the chat again") { $0.contains("Enter sends") && $0.contains("> written in the editor") }
        #expect(resumed.contains("scripted"))
        try tmux(["send-keys", "-t", "chat", "C-u", "C-d"])
        Thread.sleep(forTimeInterval: 1)
        try tmux(["send-keys", "-t", "chat", "-l", "echo EXITED $?"])
        try tmux(["send-keys", "-t", "chat", "Enter"])
        _ = try waitFor("the exit") { $0.contains("EXITED 0") }
        try tmux(["send-keys", "-t", "chat", "-l", "exit"])   // the interactive shell would outlive the test
        try tmux(["send-keys", "-t", "chat", "Enter"])
    }
}
