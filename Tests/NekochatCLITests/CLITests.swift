import Foundation
import Testing

/// Runs the `nekochat` executable built beside the tests.
enum CLI {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repo.appendingPathComponent("Tests/Fixtures/engine")

    static let binary: URL? = {
        var candidates = [Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("nekochat"),
                          Bundle.main.bundleURL.appendingPathComponent("nekochat")]
        for config in ["debug", "release"] {
            candidates.append(repo.appendingPathComponent(".build/\(config)/nekochat"))
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
        }
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = try #require(binary, "the nekochat binary was not built")
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NEKOCHAT_MODEL"] = nil
        for (k, v) in environment { env[k] = v }
        // Under Tests/Fuzz/sanitizers.sh: a command that ends with exit() leaves what its threads
        // (NIO's event loops, the pool) hold, which LeakSanitizer would print into the stderr that
        // these tests read. Leaks are checked in this test process, which runs the same code.
        if let asan = env["ASAN_OPTIONS"] { env["ASAN_OPTIONS"] = asan + ":detect_leaks=0" }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = Pipe()
        process.standardInput = input
        try process.run()
        // Both pipes drain at once: a child that fills one (a sanitizer's report on stderr, say)
        // while we wait on the other would never exit.
        nonisolated(unsafe) var errData = Data()
        let errDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
        }
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    static func model(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    static func expected(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("\(name)/expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}

@Suite struct CLITests {
    let name = "neko_mini_bf16"

    func isOneErrorLine(_ r: CLI.Result) -> Bool {
        r.stderr.hasPrefix("error: ") && r.stderr.filter { $0 == "\n" }.count == 1
    }

    @Test func generateJSONWithRouting() throws {
        let expected = try CLI.expected(name)
        let prompt = (expected["prompt_ids"] as! [Int]).map(String.init).joined(separator: ",")
        let greedy = expected["greedy_ids"] as! [Int]
        let r = try CLI.run(["generate", "--model", CLI.model(name), "--prompt-ids", prompt, "--temperature", "0",
                             "--max-tokens", "3", "--json", "--routing", "--threads", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json, "stdout is not one JSON document: \(r.stdout)")
        #expect(json["ids"] as? [Int] == Array(greedy.prefix(3)))
        #expect(json["prompt_ids"] as? [Int] == expected["prompt_ids"] as? [Int])
        #expect(json["finish_reason"] as? String == "length")
        #expect((json["decode_tokens_per_s"] as? Double ?? 0) > 0)
        let routing = try #require(json["routing"] as? [[[String: Any]]])
        #expect(routing.count == (expected["prompt_ids"] as! [Int]).count + 3 - 1)
        #expect(routing[0].map { $0["layer"] as? Int } == (expected["moe_layers"] as! [Int]).map { $0 })
    }

    @Test func scoreJSONMatchesTheReference() throws {
        let expected = try CLI.expected(name)
        let ids = (expected["prompt_ids"] as! [Int]).map(String.init).joined(separator: ",")
        let r = try CLI.run(["score", "--model", CLI.model(name), "--ids", ids, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        let nll = try #require(json["nll"] as? [Double])
        let want = expected["nll"] as! [Double]
        #expect(json["tokens"] as? Int == want.count + 1)
        #expect(zip(nll, want).allSatisfy { abs($0 - $1) < 1e-3 })
        let mean = want.reduce(0, +) / Double(want.count)
        #expect(abs((json["perplexity"] as? Double ?? 0) / exp(mean) - 1) < 1e-3)
    }

    @Test func infoJSONSaysWhereTheModelCameFrom() throws {
        let r = try CLI.run(["info", "--json"], environment: ["NEKOCHAT_MODEL": CLI.model(name)])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["path"] as? String == CLI.model(name))
        #expect(json["source"] as? String == "NEKOCHAT_MODEL")
        #expect((json["parameters"] as? Int ?? 0) > (json["active_parameters"] as? Int ?? 0))
        #expect(json["dtype"] as? String == "BF16")
    }

    @Test func usageErrorsAreOneLineAndExitTwo() throws {
        for args in [["generate", "--bogus"], ["generate", "--model", CLI.model(name)],
                     ["score", "--ids", "1,x"], ["generate", "--prompt-ids", "1", "--top-p", "7"]] {
            let r = try CLI.run(args)
            #expect(r.status == 2, "\(args): \(r.status) \(r.stderr)")
            #expect(isOneErrorLine(r), "\(args): \(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        // generate takes 0 (the prompt only), and says so.
        let r = try CLI.run(["generate", "--prompt-ids", "1", "--max-tokens=-1"])
        #expect(r.status == 2 && isOneErrorLine(r) && r.stderr.contains("from 0"), "\(r.stderr)")
    }

    @Test func badModelsAndIdsAreOneLineAndExitOne() throws {
        var r = try CLI.run(["info", "--model", "/nonexistent"])
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.hasPrefix("error: /nonexistent: no such folder"), "\(r.stderr)")
        r = try CLI.run(["score", "--model", CLI.model(name), "--ids", "1,2,128", "--json"])
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("128") && r.stderr.contains("vocab_size"))
        r = try CLI.run(["bench", "--model", CLI.model(name), "--weights", "q5"])
        #expect(r.status == 2 && isOneErrorLine(r) && r.stderr.contains("q5"), "\(r.stderr)")
    }

    /// Careless input gets an answer that says what is wrong: a missing folder, a folder that is
    /// not a model and a file are told apart; a negative number reaches its flag's own check.
    @Test func carelessInputIsAnsweredPrecisely() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("careless-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "x".write(toFile: dir + "/file.txt", atomically: true, encoding: .utf8)
        for (path, says) in [(dir + "/missing", "no such folder"), (dir, "is not a model folder: it has no config.json"),
                             (dir + "/file.txt", "is a file, not a model folder")] {
            let r = try CLI.run(["info", "--model", path])
            #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains(says), "\(path): \(r.stderr)")
        }
        for args in [["generate", "--prompt", "hi", "--max-tokens", "-5"], ["generate", "--prompt", "hi", "--temperature", "-1"]] {
            let r = try CLI.run(args)
            #expect(r.status == 2 && isOneErrorLine(r) && r.stderr.contains(args[3]) && r.stderr.contains("must be")
                    && !r.stderr.contains("Missing value"), "\(args): \(r.stderr)")
        }
        // A transcript of a newer format is refused, naming the version.
        try "{\"type\":\"header\",\"version\":99}\n".write(toFile: dir + "/new.jsonl", atomically: true, encoding: .utf8)
        let r = try CLI.run(["routing", "--transcript", dir + "/new.jsonl"])
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("version 99"), "\(r.stderr)")
    }

    /// `--weights q8|q4` quantise at first use and keep the result beside the model (a copy here,
    /// so the fixture stays as it is); the second run reuses it and gives the same ids.
    @Test func quantisedWeightsAreCachedAndReused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("q-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: CLI.model(name), toPath: dir)
        for format in ["q8", "q4"] {
            let args = ["generate", "--model", dir, "--weights", format, "--prompt-ids", "1,2,3", "--temperature", "0", "--max-tokens", "4", "--json"]
            let first = try CLI.run(args), second = try CLI.run(args)
            #expect(first.status == 0 && second.status == 0, "\(first.stderr) \(second.stderr)")
            #expect((first.json?["ids"] as? [Int])?.count == 4 && first.json?["ids"] as? [Int] == second.json?["ids"] as? [Int])
        }
        let cached = (try? FileManager.default.contentsOfDirectory(atPath: dir + "/.nekochat")) ?? []
        #expect(cached.count >= 2, "\(cached)")
    }

    @Test func infoDefaultsToTheBuiltInDemoModel() throws {
        let r = try CLI.run(["info", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["source"] as? String == "built-in demo model")
        #expect((json["path"] as? String)?.hasSuffix("DemoModel") == true)
        #expect((json["parameters"] as? Int ?? 0) < 50_000_000 && (json["bytes_on_disk"] as? Int ?? .max) <= 40_000_000)
        let moe = try #require(json["moe_layers"] as? [Int])
        let dense = try #require(json["dense_layers"] as? [Int])
        #expect(!moe.isEmpty && !dense.isEmpty)
        let config = try #require(json["config"] as? [String: Any])
        #expect((config["num_experts"] as? Int ?? 0) >= 8 && config["tie_word_embeddings"] as? Bool == true)
    }

    @Test func benchReportsRatesAndMemory() throws {
        let r = try CLI.run(["bench", "--model", CLI.model(name), "--prompt-tokens", "16", "--gen-tokens", "4", "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect((json["prefill_tokens_per_s"] as? Double ?? 0) > 0)
        #expect((json["decode_tokens_per_s"] as? Double ?? 0) > 0)
        #expect((json["peak_rss_bytes"] as? Int ?? 0) > 0)
        #expect(json["weights"] as? String == "bf16")
    }

    @Test func versionAndHelpExitZero() throws {
        let v = try CLI.run(["--version"])
        #expect(v.status == 0 && v.stdout == "0.1.0\n")
        let h = try CLI.run(["generate", "--help"])
        #expect(h.status == 0 && h.stdout.contains("--prompt-ids"))
    }
}

@Suite struct CorruptWeightsTests {
    /// Weights that hold NaN: generate refuses (it printed garbage with exit 0), as score did.
    @Test func nonFiniteWeightsAreAnErrorNotGarbage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nan-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: CLI.model("neko_mini_bf16"), toPath: dir)
        let file = dir + "/model.safetensors"
        var data = try Data(contentsOf: URL(fileURLWithPath: file))
        let header = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        // One NaN (BF16 0x7FC0) in a matrix that q8 and q4 pack: only a kernel that keeps it
        // (a NaN block scale) lets it reach the logits; quantised to a code it became 0.
        let json = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + header))) as? [String: Any])
        let tensor = try #require(json["model.layers.0.mlp.down_proj.weight"] as? [String: Any])
        let offset = 8 + header + (try #require((tensor["data_offsets"] as? [Int])?.first)) + 2 * 100
        data.replaceSubrange(offset..<(offset + 2), with: [0xC0, 0x7F])
        try data.write(to: URL(fileURLWithPath: file))
        for weights in ["bf16", "q8", "q4"] {
            let r = try CLI.run(["generate", "--model", dir, "--weights", weights, "--prompt-ids", "1,2,3", "--max-tokens", "4", "--json"],
                                environment: ["XDG_CACHE_HOME": dir + "/cache"])
            #expect(r.status == 1 && r.stderr.contains("NaN or infinite logits") && r.stdout.isEmpty, "\(weights): \(r.status) \(r.stderr)")
        }
    }
}

/// `nekochat install`: the program, its demo model and themes under a prefix; the installed
/// program runs from anywhere and finds its demo model there; installing again replaces them.
@Suite struct InstallTests {
    @Test func installPutsTheProgramAndItsFilesUnderThePrefix() throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("install-\(UUID().uuidString)").path
        for _ in 0..<2 {
            let r = try CLI.run(["install", "--prefix", prefix])
            #expect(r.status == 0 && r.stdout.contains("installed \(prefix)/bin/nekochat"), "\(r.stderr)")
        }
        for file in ["bin/nekochat", "share/nekochat/DemoModel/config.json", "share/nekochat/DemoModel/model.safetensors",
                     "share/nekochat/themes/dark.json", "share/nekochat/themes/mono.json"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/" + file), "\(file)")
        }
        #expect(FileManager.default.isExecutableFile(atPath: prefix + "/bin/nekochat"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: prefix + "/bin/nekochat")
        p.arguments = ["info", "--json"]
        p.currentDirectoryURL = URL(fileURLWithPath: "/")
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["path"] as? String == prefix + "/share/nekochat/DemoModel")
        try? FileManager.default.removeItem(atPath: prefix)
    }
}
