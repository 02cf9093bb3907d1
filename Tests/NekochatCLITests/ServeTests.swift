import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NekoChat
import NekoRemote
import Testing

/// A `nekochat serve` process on a free loopback port, stopped at the end.
final class ServerProcess {
    let process = Process()
    private(set) var port = 0
    let errors = Pipe()

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = try #require(CLI.binary)
        process.arguments = ["serve", "--port", "0", "--threads", "2"] + arguments
        var env = ProcessInfo.processInfo.environment
        env["NEKOCHAT_MODEL"] = nil
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // "serving ID at http://127.0.0.1:PORT/v1 …" on stderr once it listens.
        var seen = ""
        let deadline = Date().addingTimeInterval(30)
        while port == 0, Date() < deadline, process.isRunning {
            let data = errors.fileHandleForReading.availableData
            if data.isEmpty { Thread.sleep(forTimeInterval: 0.05); continue }
            seen += String(decoding: data, as: UTF8.self)
            if let r = seen.range(of: #"http://127\.0\.0\.1:(\d+)/v1"#, options: .regularExpression) {
                port = Int(seen[r].split(separator: ":").last!.split(separator: "/").first!) ?? 0
            }
        }
        if port == 0 { Issue.record("the server did not start: \(seen)") }
    }

    var url: String { "http://127.0.0.1:\(port)" }

    /// SIGTERM (the server's graceful stop), then SIGKILL if it is still there after 5 s.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
    deinit { stop() }
}

/// The order in which replies came back, each as "NAME STATUS".
final class ReplyOrder: @unchecked Sendable {
    let lock = NSLock()
    var names: [String] = []
    func add(_ name: String) { lock.lock(); names.append(name); lock.unlock() }
}

/// A Python with the `openai` package: $NEKOCHAT_TEST_PYTHON, the venv `.ci/run` makes, or
/// the developer's.
enum TestPython {
    static let path: String? = {
        let candidates: [String?] = [ProcessInfo.processInfo.environment["NEKOCHAT_TEST_PYTHON"],
                                     CLI.repo.appendingPathComponent(".build/test-venv/bin/python").path, "/work/venv/bin/python"]
        return candidates.compactMap { $0 }.first { (p: String) -> Bool in
            guard FileManager.default.isExecutableFile(atPath: p) else { return false }
            let r = try? run(p, ["-c", "import openai"])
            return r?.status == 0
        }
    }()

    static func run(_ python: String, _ args: [String], timeout: Double = 300) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

@Suite(.serialized) struct ServeTests {
    static let reference = CLI.repo.appendingPathComponent("Tests/Reference/serve")

    /// The official client from PyPI against our server: streaming and not, stop strings,
    /// usage, seeds, concurrent streams, a client that disconnects, bad requests, the key.
    @Test(.enabled(if: TestPython.path != nil)) func theOpenAIClientGetsWhatOpenAIPromises() throws {
        let server = try ServerProcess(["--api-key-env", "NEKOCHAT_TEST_KEY", "--parallel", "4"], environment: ["NEKOCHAT_TEST_KEY": "s3cret"])
        defer { server.stop() }
        let r = try TestPython.run(TestPython.path!, [Self.reference.appendingPathComponent("check_openai_client.py").path,
                                                      "--base", server.url + "/v1", "--model", "nekomind-demo", "--api-key", "s3cret"])
        #expect(r.status == 0, "\(r.output)")
    }

    /// `generate --server` prints what the local command prints (greedy: the same text).
    @Test func generateThroughTheServerEqualsGenerateHere() throws {
        let server = try ServerProcess([])
        defer { server.stop() }
        let args = ["generate", "--chat", "--prompt", "Speak, friend.", "--temperature", "0", "--max-tokens", "12", "--json", "--threads", "1"]
        let local = try #require(try CLI.run(args).json)
        let remote = try CLI.run(args + ["--server", server.url, "--routing"])
        #expect(remote.status == 0, "\(remote.stderr)")
        let json = try #require(remote.json)
        #expect(json["text"] as? String == local["text"] as? String && !(local["text"] as? String ?? "").isEmpty)
        #expect(json["finish_reason"] as? String == local["finish_reason"] as? String, "\(json) vs \(local)")
        let routing = try #require(json["routing"] as? [[[String: Any]]])
        #expect(routing.count == (json["prompt_tokens"] as? Int ?? 0) + (json["completion_tokens"] as? Int ?? 0) - 1)
        #expect(routing.first?.map { $0["layer"] as? Int } == [2, 3, 4, 5])
        #expect(json["ids"] == nil)   // a server gives text, not our ids
    }

    /// Through the server, a reply ends for the same reason as here — a full context is not
    /// OpenAI's "length" — and stops at every stop string (16), not only OpenAI's first four.
    @Test func theServerSaysWhyAReplyEndedAndHonoursEveryStopString() throws {
        let server = try ServerProcess(["--ctx-size", "24"])
        defer { server.stop() }
        let common = ["generate", "--temperature", "0", "--json", "--threads", "1"]
        let base = common + ["--prompt", "Once upon a time"]
        let long = try #require(try CLI.run(base + ["--max-tokens", "24", "--ctx-size", "24"]).json)
        #expect(long["finish_reason"] as? String == "context", "\(long)")
        let text = try #require(long["text"] as? String)
        // A stop string from the middle of that reply, after 15 that never match.
        let words = text.split(whereSeparator: \.isWhitespace)
        let stop = String(try #require(words.count > 3 ? words[words.count / 2] : nil))
        let stops = (0..<15).flatMap { ["--stop", "never-seen-\($0)"] } + ["--stop", stop]
        let cases: [(args: [String], reason: String)] = [
            (base + ["--max-tokens", "24"], "context"), (base + ["--max-tokens", "3"], "length"), (base + ["--max-tokens", "24"] + stops, "stop"),
            (common + ["--chat", "--prompt", "Speak, friend.", "--max-tokens", "20"], "eos"),
        ]
        // The same text as here: the client starts from the server's sampling defaults (the
        // demo's repetition penalty of 1.1), not from llama.cpp's.
        for (args, reason) in cases {
            let local = try #require(try CLI.run(args + ["--ctx-size", "24"]).json)
            let remote = try CLI.run(args + ["--server", server.url])
            #expect(remote.status == 0, "\(remote.stderr)")
            let json = try #require(remote.json)
            #expect(local["finish_reason"] as? String == reason, "\(local)")
            #expect(json["finish_reason"] as? String == reason && json["text"] as? String == local["text"] as? String,
                    "\(reason): \(json) vs \(local)")
        }
        // A plain OpenAI request sees llama-server's timings, which agree with its usage (this
        // prompt was sent before: part of it comes from that request's cache, `cache_n`).
        var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: ["prompt": "Once upon a time", "max_tokens": 5, "temperature": 0])
        let reply = try #require(try JSONSerialization.jsonObject(with: Self.send(request)) as? [String: Any])
        let usage = try #require(reply["usage"] as? [String: Any]), timings = try #require(reply["timings"] as? [String: Any])
        #expect((timings["prompt_n"] as? Int ?? 0) + (timings["cache_n"] as? Int ?? -1) == usage["prompt_tokens"] as? Int
                && timings["predicted_n"] as? Int == usage["completion_tokens"] as? Int, "\(timings) \(usage)")
        #expect((timings["prompt_per_second"] as? Double ?? 0) > 0 && (timings["predicted_per_second"] as? Double ?? 0) > 0, "\(timings)")
        #expect(reply["nekochat"] == nil, "nekochat's extension sent unasked: \(reply)")
        // Asking for the extension brings the exact finish reason.
        request.httpBody = try JSONSerialization.data(withJSONObject: ["prompt": "Once upon a time", "max_tokens": 5, "temperature": 0,
                                                                       "nekochat": [String: Any]()])
        let asked = try #require(try JSONSerialization.jsonObject(with: Self.send(request)) as? [String: Any])
        #expect((asked["nekochat"] as? [String: Any])?["finish_reason"] as? String == "length", "\(asked)")
    }

    /// A client's large `max_tokens` (many send 4096 by default) is served up to the server's own
    /// limit and ends with `length`, as llama-server does; a prompt the context cannot hold is refused.
    @Test func aLargeMaxTokensIsServedUpToTheServersLimit() throws {
        let server = try ServerProcess(["--max-tokens", "6", "--ctx-size", "64"])
        defer { server.stop() }
        var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: ["prompt": "Once upon a time", "max_tokens": 4000, "temperature": 0,
                                                                       "nekochat": [String: Any]()])
        let reply = try #require(try JSONSerialization.jsonObject(with: Self.send(request)) as? [String: Any])
        let choice = try #require((reply["choices"] as? [[String: Any]])?.first)
        let usage = try #require(reply["usage"] as? [String: Any])
        #expect(usage["completion_tokens"] as? Int == 6 && choice["finish_reason"] as? String == "length", "\(reply)")
        request.httpBody = try JSONSerialization.data(withJSONObject: ["prompt": String(repeating: "word ", count: 200), "max_tokens": 4000])
        let refused = try #require(try JSONSerialization.jsonObject(with: Self.send(request)) as? [String: Any])
        let message = (refused["error"] as? [String: Any])?["message"] as? String ?? ""
        #expect(message.contains("the context holds 64"), "\(refused)")
    }

    /// The chat's stats bar against a server: the context count grows while a reply streams and
    /// ends at the server's usage (prompt + reply tokens) out of the server's context size.
    @Test func aRemoteChatCountsItsContext() throws {
        let server = try ServerProcess(["--ctx-size", "1024"])
        defer { server.stop() }
        let backend = try RemoteBackend.connect(url: server.url)
        #expect(backend.info.contextSize == 1024)
        var settings = backend.serverDefaults ?? ChatSettings()
        settings.maxTokens = 6
        settings.sampling.temperature = 0
        var messages = [ChatMessage(id: 0, role: .user, content: "Tell me a story.")]
        var used: [Int] = []
        for turn in 0..<2 {
            var stats: [GenerationStats] = [], summary: ReplySummary?, text = ""
            backend.reply(ReplyRequest(messages: messages, settings: settings), cancel: CancellationFlag()) { event in
                switch event {
                case let .stats(s): stats.append(s)
                case let .finished(s): summary = s
                case let .textDelta(t): text += t
                default: break
                }
            }
            let s = try #require(summary)
            #expect([.length, .eos, .stop].contains(s.reason) && s.promptTokens > 0, "\(s)")
            let last = try #require(stats.last)
            #expect(last.contextUsed == s.promptTokens + s.completionTokens && last.contextSize == 1024, "\(stats)")
            // While it streams: the last reply's context, plus this one's tokens so far.
            let start = turn == 0 ? 0 : used[0]
            #expect(stats.dropLast().allSatisfy { $0.contextUsed > start && $0.contextUsed <= start + s.completionTokens }, "\(stats)")
            used.append(last.contextUsed)
            messages += [ChatMessage(id: messages.count, parent: messages.count - 1, role: .assistant, content: text),
                         ChatMessage(id: messages.count + 1, parent: messages.count, role: .user, content: "And then?")]
        }
        #expect(used[1] > used[0], "\(used)")
    }

    /// A follow-up that re-sends the conversation prefills only what is new (llama-server's prompt
    /// cache): the timings and usage say how many prompt tokens came from the cache, the reply is
    /// the one a fresh cache gives, and the prompt's routing is complete and the same.
    @Test func aFollowUpReusesTheConversationsKVCache() throws {
        let server = try ServerProcess(["--parallel", "1"])
        defer { server.stop() }
        func chat(_ messages: [[String: String]], experts: [String: Any]? = nil) throws -> [String: Any] {
            var r = URLRequest(url: URL(string: server.url + "/v1/chat/completions")!)
            r.httpMethod = "POST"
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            var ext: [String: Any] = ["routing": true]
            if let experts { ext["experts"] = experts }
            r.httpBody = try JSONSerialization.data(withJSONObject: ["messages": messages, "max_tokens": 6, "temperature": 0, "nekochat": ext])
            return try #require(try JSONSerialization.jsonObject(with: Self.send(r)) as? [String: Any])
        }
        func facts(_ reply: [String: Any]) throws -> (text: String, prompt: Int, cached: Int, prefilled: Int, routing: [[[String: Any]]], tokens: [[String: Any]]) {
            let usage = try #require(reply["usage"] as? [String: Any]), timings = try #require(reply["timings"] as? [String: Any])
            let message = (((reply["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])?["content"] as? String
            let ext = try #require(reply["nekochat"] as? [String: Any])
            #expect((usage["prompt_tokens_details"] as? [String: Any])?["cached_tokens"] as? Int == timings["cache_n"] as? Int)
            return (try #require(message), try #require(usage["prompt_tokens"] as? Int), try #require(timings["cache_n"] as? Int),
                    try #require(timings["prompt_n"] as? Int), try #require(ext["routing"] as? [[[String: Any]]]),
                    try #require(ext["tokens"] as? [[String: Any]]))
        }
        let first: [[String: String]] = [["role": "user", "content": "Tell me of the king."]]
        let follow = first + [["role": "assistant", "content": "The king is dead."], ["role": "user", "content": "And the queen?"]]
        let fresh = try facts(try chat(follow))                  // nothing parked yet
        #expect(fresh.cached == 0 && fresh.prefilled == fresh.prompt, "\(fresh)")
        _ = try chat(first)                                       // a shorter start: reused from `follow`'s cache
        let again = try facts(try chat(follow))                  // `first`'s cache holds the start of this
        #expect(again.cached > 0 && again.cached + again.prefilled == again.prompt, "cache_n \(again.cached), prompt_n \(again.prefilled) of \(again.prompt)")
        #expect(again.text == fresh.text)
        // The prompt's routing, reused tokens included, is every prompt token's, as a fresh cache gives it.
        func promptExperts(_ f: (text: String, prompt: Int, cached: Int, prefilled: Int, routing: [[[String: Any]]], tokens: [[String: Any]])) -> [[[Int]]] {
            zip(f.routing, f.tokens).filter { $0.1["prompt"] as? Bool == true }.map { $0.0.map { $0["experts"] as? [Int] ?? [] } }
        }
        #expect(promptExperts(again).count == again.prompt)
        #expect(promptExperts(again) == promptExperts(fresh))
        // Other interventions made other keys: nothing is reused under them.
        let masked = try facts(try chat(follow, experts: ["mask": ["3": [0]]]))
        #expect(masked.cached == 0, "\(masked.cached)")
    }

    /// One request's body, waited for.
    static func send(_ request: URLRequest) throws -> Data {
        final class Box: @unchecked Sendable { var data: Data? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, _, _ in box.data = data; done.signal() }.resume()
        _ = done.wait(timeout: .now() + 120)
        return try #require(box.data)
    }

    /// Each way a server can fail is one clear `error:` line (and the text so far is kept).
    @Test func failingServersAreReportedPlainly() throws {
        let cases: [(mode: String, says: String)] = [
            ("401", "refused the API key"), ("404", "not found"), ("429", "busy or rate-limited"), ("500", "the server failed"),
            ("malformed", "malformed stream"), ("die", "closed the connection mid-reply"),
        ]
        for (mode, says) in cases {
            let (fake, port) = try Self.fakeServer(mode)
            // SIGKILL: a test runner may have blocked SIGTERM for its children.
            defer { kill(fake.processIdentifier, SIGKILL); fake.waitUntilExit() }
            let r = try CLI.run(["generate", "--server", "http://127.0.0.1:\(port)", "--prompt", "hi", "--chat"])
            #expect(r.status == 1 && r.stderr.hasPrefix("error: ") && r.stderr.contains(says), "\(mode): \(r.stderr)")
            #expect(!r.stderr.contains("NIO") && !r.stderr.contains("Error Domain"), "\(mode): \(r.stderr)")
            if mode == "die" || mode == "malformed" { #expect(r.stdout.hasPrefix("Once"), "\(mode) lost the partial text: \(r.stdout)") }
        }
        let refused = try CLI.run(["generate", "--server", "http://127.0.0.1:1", "--prompt", "hi"])
        #expect(refused.status == 1 && refused.stderr.contains("connection refused"))
        let bad = try CLI.run(["generate", "--server", "ftp://x", "--prompt", "hi"])
        #expect(bad.status == 1 && bad.stderr.contains("not an http:// or https:// URL"))
    }

    /// `Tests/Reference/serve/fake_server.py` in MODE, and the port it listens on.
    static func fakeServer(_ mode: String) throws -> (Process, Int) {
        let fake = Process()
        fake.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        fake.arguments = ["python3", reference.appendingPathComponent("fake_server.py").path, mode]
        let out = Pipe()
        fake.standardOutput = out
        try fake.run()
        var line = ""
        while !line.contains("\n") {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line += String(decoding: d, as: UTF8.self)
        }
        guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            kill(fake.processIdentifier, SIGKILL)
            fake.waitUntilExit()
            struct DidNotStart: Error { let mode: String, output: String }
            throw DidNotStart(mode: mode, output: line)
        }
        return (fake, port)
    }

    /// Another server is sent OpenAI's four stop strings; the client applies the rest itself,
    /// cuts the text there and ends the reply (the fake server ignores every stop string).
    @Test func stopStringsPastOpenAIsFourAreAppliedByTheClient() throws {
        let (fake, port) = try Self.fakeServer("ok")
        defer { kill(fake.processIdentifier, SIGKILL); fake.waitUntilExit() }
        let stops = ["a1", "a2", "a3", "a4", "was"].flatMap { ["--stop", $0] }
        let r = try CLI.run(["generate", "--server", "http://127.0.0.1:\(port)", "--prompt", "hi", "--chat", "--json"] + stops)
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["text"] as? String == "Once upon a time there " && json["finish_reason"] as? String == "stop", "\(json)")
        let plain = try #require(try CLI.run(["generate", "--server", "http://127.0.0.1:\(port)", "--prompt", "hi", "--chat", "--json"]).json)
        #expect(plain["text"] as? String == "Once upon a time there was a server.", "\(plain)")
    }

    @Test func theServerRefusesToStartWithoutItsKeyAndOnABusyPort() throws {
        let r = try CLI.run(["serve", "--api-key-env", "NEKOCHAT_UNSET_KEY_VAR"])
        #expect(r.status == 1 && r.stderr.contains("NEKOCHAT_UNSET_KEY_VAR"))
        let server = try ServerProcess([])
        defer { server.stop() }
        let busy = try CLI.run(["serve", "--port", String(server.port)])
        #expect(busy.status == 1 && busy.stderr.hasPrefix("error: cannot serve on 127.0.0.1:\(server.port)"), "\(busy.stderr)")
    }

    /// A burst of 40 requests at a server with one slot: the queue holds at most
    /// max(16, 8 × 1) = 16 of them, the rest get 503 with a message that says why, and the
    /// accepted ones still finish.
    @Test func aBurstPastTheQueueGets503() throws {
        let server = try ServerProcess(["--parallel", "1"])
        defer { server.stop() }
        let config = URLSessionConfiguration.ephemeral
        config.httpMaximumConnectionsPerHost = 64
        config.timeoutIntervalForRequest = 120
        let session = URLSession(configuration: config)
        let body = try JSONSerialization.data(withJSONObject: ["prompt": "Once upon a time", "max_tokens": 64, "temperature": 0])
        final class Replies: @unchecked Sendable {
            let lock = NSLock()
            var statuses: [Int] = [], refusals: [String] = []
        }
        let replies = Replies()
        let done = DispatchGroup()
        let tasks = (0..<40).map { _ -> URLSessionDataTask in
            var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
            done.enter()
            return session.dataTask(with: request) { data, response, _ in
                replies.lock.lock()
                let status = (response as? HTTPURLResponse)?.statusCode ?? -1
                replies.statuses.append(status)
                if status == 503, let data { replies.refusals.append(String(decoding: data, as: UTF8.self)) }
                replies.lock.unlock()
                done.leave()
            }
        }
        tasks.forEach { $0.resume() }
        #expect(done.wait(timeout: .now() + 180) == .success, "not every request was answered")
        replies.lock.lock()
        defer { replies.lock.unlock() }
        let statuses = replies.statuses, refusals = replies.refusals
        let refused = statuses.filter { $0 == 503 }.count, ok = statuses.filter { $0 == 200 }.count
        #expect(refused + ok == 40, "statuses: \(statuses.sorted())")
        // One running and 16 waiting are taken (17 served, 23 refused in every run here); a
        // reply takes ~0.1 s, so at most a couple end during the burst and free a place.
        #expect((17...19).contains(ok), "\(refused) refused, \(ok) served")
        #expect(refusals.allSatisfy { $0.contains("the server is busy") && $0.contains("waiting for 1 slots") }, "\(refusals.first ?? "")")
    }

    /// Requests still being received and tokenised count against the queue: of 24 sent at once
    /// with 400 KB prompts, 8 are refused on arrival, before any prompt is prepared (each of the
    /// others ends in a 400: the prompt is longer than the context). With the bound counting
    /// only prepared requests, all 24 bodies were taken in and held, and none refused.
    @Test func requestsBeingPreparedCountAgainstTheQueue() throws {
        let server = try ServerProcess(["--parallel", "1"])
        defer { server.stop() }
        let config = URLSessionConfiguration.ephemeral
        config.httpMaximumConnectionsPerHost = 64
        config.timeoutIntervalForRequest = 300
        let session = URLSession(configuration: config)
        let body = try JSONSerialization.data(withJSONObject: ["prompt": String(repeating: "word ", count: 80_000), "max_tokens": 1])
        let order = ReplyOrder()
        let done = DispatchGroup()
        for _ in 0..<24 {
            var request = URLRequest(url: URL(string: server.url + "/v1/completions")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = body
            done.enter()
            session.dataTask(with: request) { data, response, _ in
                let status = (response as? HTTPURLResponse)?.statusCode ?? -1
                let text = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
                order.add(status == 503 && !text.contains("the server is busy") ? "503 without the reason: \(text)" : "\(status)")
                done.leave()
            }.resume()
        }
        #expect(done.wait(timeout: .now() + 300) == .success, "not every request was answered")
        order.lock.lock()
        defer { order.lock.unlock() }
        #expect(order.names.filter { $0 == "503" }.count == 8 && order.names.filter { $0 == "400" }.count == 16, "\(order.names)")
        #expect(order.names.prefix(8).allSatisfy { $0 == "503" }, "a refusal came after a prepared request: \(order.names)")
    }

    /// Two requests with a few MB of prompt to tokenise do not hold up the rest: /health, asked
    /// after them, answers before either of them (it waited for one to finish when their work
    /// ran on Swift's task pool, one thread per core).
    @Test func largePromptsDoNotStallOtherRequests() throws {
        let server = try ServerProcess(["--ctx-size", "4096"])
        defer { server.stop() }
        let session = URLSession(configuration: .default)
        let big = try JSONSerialization.data(withJSONObject: [
            "messages": [["role": "user", "content": String(repeating: "word ", count: 800_000)]], "max_tokens": 1,
        ])
        let order = ReplyOrder()
        let done = DispatchGroup()
        func send(_ request: URLRequest, as name: String) {
            done.enter()
            session.dataTask(with: request) { _, response, _ in
                order.add("\(name) \((response as? HTTPURLResponse)?.statusCode ?? -1)")
                done.leave()
            }.resume()
        }
        for i in 0..<2 {
            var request = URLRequest(url: URL(string: server.url + "/v1/chat/completions")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = big
            request.timeoutInterval = 300
            send(request, as: "big\(i)")
        }
        Thread.sleep(forTimeInterval: 0.5)   // both bodies (4 MB each) are in and being tokenised
        send(URLRequest(url: URL(string: server.url + "/health")!), as: "health")
        #expect(done.wait(timeout: .now() + 300) == .success)
        order.lock.lock()
        defer { order.lock.unlock() }
        // The prompts are longer than the context: each big one ends in a 400 naming that.
        #expect(order.names.first == "health 200" && order.names.filter { $0.hasSuffix(" 400") }.count == 2, "\(order.names)")
    }

    /// A short chat request sent while one long prompt is being tokenised is answered first:
    /// it does not queue behind it.
    @Test func aShortRequestDoesNotWaitBehindALongPrompt() throws {
        let server = try ServerProcess(["--ctx-size", "4096"])
        defer { server.stop() }
        let session = URLSession(configuration: .default)
        let order = ReplyOrder()
        let done = DispatchGroup()
        func send(_ content: String, as name: String) throws {
            var request = URLRequest(url: URL(string: server.url + "/v1/chat/completions")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: [
                "messages": [["role": "user", "content": content]], "max_tokens": 1,
            ])
            request.timeoutInterval = 300
            done.enter()
            session.dataTask(with: request) { _, response, _ in
                order.add("\(name) \((response as? HTTPURLResponse)?.statusCode ?? -1)")
                done.leave()
            }.resume()
        }
        try send(String(repeating: "word ", count: 800_000), as: "long")
        Thread.sleep(forTimeInterval: 0.5)   // its 4 MB are in and being tokenised
        try send("Hello", as: "short")
        #expect(done.wait(timeout: .now() + 300) == .success)
        order.lock.lock()
        defer { order.lock.unlock() }
        #expect(order.names == ["short 200", "long 400"], "\(order.names)")
    }
}
