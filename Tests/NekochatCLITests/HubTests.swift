import Foundation
import NekoHub
import Testing

/// The stand-in Hub (`Tests/Hub/stand_in_hub.py`) on loopback, serving the demo model's files as
/// repositories in several moods; its request log says what each client asked.
final class StandInHub {
    let process = Process()
    let dir: String
    var hubPort = 0, cdnPort = 0
    var endpoint: String { "http://127.0.0.1:\(hubPort)" }
    static let demo = CLI.repo.appendingPathComponent("Sources/nekochat/Resources/DemoModel").path
    static let commit = "0123456789abcdef0123456789abcdef01234567"
    static let python: String? = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var available: Bool { python != nil }

    /// `repos`: name → mode (nil: a plain repository). Each holds the demo model's files.
    init(_ repos: [String: String?], token: String = "hf_secret") throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("hub-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let files = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        var config: [String: Any] = [:]
        for (name, mode) in repos {
            var repo: [String: Any] = ["files": Dictionary(uniqueKeysWithValues: files.map { ($0, Self.demo + "/" + $0) }),
                                       "lfs": ["model.safetensors"], "commit": Self.commit,
                                       "refs": ["main": Self.commit, "v1.0": Self.commit], "token": token]
            if let mode { repo["mode"] = mode }
            config[name] = repo
        }
        let path = dir + "/config.json"
        try JSONSerialization.data(withJSONObject: ["repos": config]).write(to: URL(fileURLWithPath: path))
        process.executableURL = URL(fileURLWithPath: try #require(Self.python))
        process.arguments = [CLI.repo.appendingPathComponent("Tests/Hub/stand_in_hub.py").path, path, "--log", dir + "/requests.jsonl"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        let ports = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Int])
        hubPort = ports["hub"] ?? 0
        cdnPort = ports["cdn"] ?? 0
    }

    deinit { stop() }

    func stop() {
        // SIGKILL: a child of the test runner inherits a signal mask that blocks SIGTERM.
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// Every request so far: server ("hub" or "cdn"), method, path, auth (bool), range.
    var requests: [[String: Any]] {
        let text = (try? String(contentsOfFile: dir + "/requests.jsonl", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func clearLog() { try? FileManager.default.removeItem(atPath: dir + "/requests.jsonl") }

    /// The environment of a user of this Hub, with the cache in a folder of the test's own.
    func environment(cache: String, token: String? = nil, offline: Bool = false) -> [String: String] {
        var env = ["HF_ENDPOINT": endpoint, "HF_HUB_CACHE": cache, "HF_HOME": dir + "/hf-home",
                   "XDG_CACHE_HOME": dir + "/xdg-cache", "XDG_DATA_HOME": dir + "/xdg-data", "HF_TOKEN": token ?? ""]
        if offline { env["HF_HUB_OFFLINE"] = "1" }
        return env
    }

    static func sha256(_ path: String) throws -> String {
        var d = Digest(gitSize: nil)
        d.update(try Data(contentsOf: URL(fileURLWithPath: path)))
        return d.finish()
    }
}

/// The hashes downloads are checked with, against Python's hashlib (FIPS 180-4's vectors).
@Suite struct DigestTests {
    func hex(_ data: Data, gitSize: Int64? = nil, chunks: Int = 0) -> String {
        var d = Digest(gitSize: gitSize)
        if chunks > 0 {
            var i = 0
            while i < data.count { let n = min(chunks, data.count - i); d.update(data[i..<i + n]); i += n }
        } else {
            d.update(data)
        }
        return d.finish()
    }

    @Test func sha256AndSHA1MatchTheirVectors() {
        #expect(hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Data(repeating: 0x61, count: 1_000_000)
        #expect(hex(long) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(hex(long, chunks: 63) == hex(long) && hex(long, chunks: 64) == hex(long) && hex(long, chunks: 1000) == hex(long))
        // 55 and 56 bytes: the padding's two cases.
        #expect(hex(Data(repeating: 0x61, count: 55)) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(hex(Data(repeating: 0x61, count: 56)) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        // git's blob sha1: `printf 'hello\n' | git hash-object --stdin`.
        #expect(hex(Data("hello\n".utf8), gitSize: 6) == "ce013625030ba8dba906f756967f9e9ca394464a")
        #expect(hex(Data(), gitSize: 0) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")
    }
}

@Suite(.serialized, .enabled(if: StandInHub.available)) struct HubTests {
    func temp() -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("hubcache-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    /// The command ended with one `error:` line (after any progress lines of a download).
    func isOneErrorLine(_ r: CLI.Result) -> Bool {
        let lines = r.stderr.split(separator: "\n")
        return lines.last?.hasPrefix("error: ") == true && lines.filter { $0.hasPrefix("error: ") }.count == 1
    }

    /// A pull writes the layout every other tool reads: blobs named by their etags, relative
    /// links in the snapshot, refs/main without a newline, .no_exist markers; a second pull
    /// downloads nothing; the model then runs by its name, offline, without a request.
    @Test func aPullWritesTheHuggingFaceCacheLayoutAndTheModelRunsByName() throws {
        let hub = try StandInHub(["acme/neko-demo": nil])
        let cache = temp()
        let r = try CLI.run(["pull", "acme/neko-demo", "--json"], environment: hub.environment(cache: cache, token: "hf_secret"))
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(r.json)
        #expect(json["commit"] as? String == StandInHub.commit && json["repo"] as? String == "acme/neko-demo")
        let files = try #require(json["files"] as? [[String: Any]])
        #expect(Set(files.compactMap { $0["path"] as? String }) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        #expect(files.allSatisfy { $0["downloaded"] as? Bool == true })
        let repo = cache + "/models--acme--neko-demo"
        let sha = try StandInHub.sha256(StandInHub.demo + "/model.safetensors")
        let snapshot = repo + "/snapshots/" + StandInHub.commit
        #expect(json["path"] as? String == snapshot)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: snapshot + "/model.safetensors") == "../../blobs/" + sha)
        #expect(try StandInHub.sha256(repo + "/blobs/" + sha) == sha)
        #expect(try String(contentsOfFile: repo + "/refs/main", encoding: .utf8) == StandInHub.commit)
        #expect(FileManager.default.fileExists(atPath: repo + "/.no_exist/" + StandInHub.commit + "/chat_template.jinja"))
        #expect(FileManager.default.fileExists(atPath: cache + "/.locks/models--acme--neko-demo/" + sha + ".lock"))
        #expect(!((try? FileManager.default.contentsOfDirectory(atPath: repo + "/blobs")) ?? []).contains { $0.hasSuffix(".incomplete") })
        // The token went to the Hub, never to the CDN.
        let requests = hub.requests
        #expect(requests.contains { $0["server"] as? String == "cdn" } && requests.filter { $0["server"] as? String == "cdn" }.allSatisfy { $0["auth"] as? Bool == false })
        #expect(requests.filter { $0["server"] as? String == "hub" }.allSatisfy { $0["auth"] as? Bool == true })

        hub.clearLog()
        let again = try #require(try CLI.run(["pull", "acme/neko-demo", "--json"], environment: hub.environment(cache: cache)).json)
        #expect((again["files"] as? [[String: Any]])?.allSatisfy { $0["downloaded"] as? Bool == false } == true)
        #expect(!hub.requests.contains { $0["server"] as? String == "cdn" || $0["method"] as? String == "GET" && ($0["path"] as? String ?? "").contains("/resolve/") })

        hub.clearLog()
        let offline = try CLI.run(["generate", "--model", "acme/neko-demo", "--prompt", "Romeo", "--max-tokens", "3", "--temperature", "0", "--json"],
                                  environment: hub.environment(cache: cache, offline: true))
        #expect(offline.status == 0, "\(offline.stderr)")
        #expect(hub.requests.isEmpty, "offline made requests: \(hub.requests)")
        let info = try #require(try CLI.run(["info", "--model", "acme/neko-demo@\(StandInHub.commit)", "--json"],
                                            environment: hub.environment(cache: cache, offline: true)).json)
        #expect(info["hub_model"] as? String == "acme/neko-demo" && info["hub_commit"] as? String == StandInHub.commit, "\(info)")
        let pulledAgain = try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: cache, offline: true))
        #expect(pulledAgain.stdout.split(separator: "\n").last.map(String.init) == snapshot)
    }

    /// A transfer that breaks halfway is resumed with a Range request and verified; a part left
    /// by an interrupted run (Ctrl-C) is continued from where it stopped.
    @Test func brokenTransfersResumeFromThePartAlreadyThere() throws {
        let hub = try StandInHub(["acme/flaky": "break", "acme/neko-demo": nil])
        let cache = temp()
        var r = try CLI.run(["pull", "acme/flaky"], environment: hub.environment(cache: cache))
        #expect(r.status == 0, "\(r.stderr)")
        let sha = try StandInHub.sha256(StandInHub.demo + "/model.safetensors")
        #expect(try StandInHub.sha256(cache + "/models--acme--flaky/blobs/" + sha) == sha)
        let ranges = hub.requests.compactMap { $0["range"] as? String }
        #expect(ranges.count == 1 && ranges.first?.hasPrefix("bytes=") == true && ranges.first != "bytes=0-", "\(hub.requests)")

        // An interrupted run's part: the next one asks only for the rest.
        let blobs = cache + "/models--acme--neko-demo/blobs"
        try FileManager.default.createDirectory(atPath: blobs, withIntermediateDirectories: true)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: StandInHub.demo + "/model.safetensors"))
        try bytes.prefix(5_000_000).write(to: URL(fileURLWithPath: blobs + "/" + sha + ".incomplete"))
        hub.clearLog()
        r = try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: cache))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(hub.requests.contains { $0["range"] as? String == "bytes=5000000-" }, "\(hub.requests)")
        #expect(try StandInHub.sha256(blobs + "/" + sha) == sha)
    }

    /// Bytes that do not match the Hub's checksum are an error naming the file; they never
    /// become the cached file, and nothing is linked.
    @Test func aCorruptDownloadIsRefusedAndNeverCached() throws {
        let hub = try StandInHub(["acme/corrupt": "corrupt"])
        let cache = temp()
        let r = try CLI.run(["info", "--model", "acme/corrupt"], environment: hub.environment(cache: cache))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("acme/corrupt/model.safetensors") && r.stderr.contains("do not match"), "\(r.stderr)")
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/models--acme--corrupt/blobs")) ?? []
        let sha = try StandInHub.sha256(StandInHub.demo + "/model.safetensors")
        #expect(!blobs.contains { $0.hasPrefix(sha) }, "\(blobs)")
        #expect(!FileManager.default.fileExists(atPath: cache + "/models--acme--corrupt/snapshots/\(StandInHub.commit)/model.safetensors"))
    }

    /// Gated, missing, offline, unreachable, rate-limited: each as a user can act on it.
    @Test func everyFailureSaysWhatToDo() throws {
        let hub = try StandInHub(["acme/gated": "gated", "acme/busy": "ratelimit", "acme/neko-demo": nil])
        let cache = temp()
        var r = try CLI.run(["info", "--model", "acme/gated"], environment: hub.environment(cache: cache))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("accept its licence") && r.stderr.contains("HF_TOKEN"), "\(r.stderr)")
        r = try CLI.run(["info", "--model", "acme/gated"], environment: hub.environment(cache: cache, token: "hf_other"))
        #expect(r.status == 1 && r.stderr.contains("HF_TOKEN has no access"), "\(r.stderr)")
        r = try CLI.run(["info", "--model", "acme/gated"], environment: hub.environment(cache: cache, token: "hf_secret"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(hub.requests.filter { $0["server"] as? String == "cdn" }.allSatisfy { $0["auth"] as? Bool == false })

        r = try CLI.run(["info", "--model", "acme/missing"], environment: hub.environment(cache: cache))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("no model acme/missing on the Hub") && r.stderr.contains("no local folder named acme/missing"), "\(r.stderr)")
        r = try CLI.run(["info", "--model", "acme/neko-demo@nope"], environment: hub.environment(cache: cache))
        #expect(r.status == 1 && r.stderr.contains("no revision 'nope'"), "\(r.stderr)")

        hub.clearLog()
        r = try CLI.run(["info", "--model", "acme/neko-demo"], environment: hub.environment(cache: cache, offline: true))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("HF_HUB_OFFLINE") && hub.requests.isEmpty, "\(r.stderr)")

        // A rate-limited Hub is waited out (Retry-After), then answers.
        r = try CLI.run(["pull", "acme/busy"], environment: hub.environment(cache: cache))
        #expect(r.status == 0, "\(r.stderr)")

        // The Hub gone: a cached model opens at once with a note; an uncached one is an error.
        _ = try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: cache))
        hub.stop()
        let start = Date()
        r = try CLI.run(["info", "--model", "acme/neko-demo"], environment: hub.environment(cache: cache))
        #expect(r.status == 0 && r.stderr.contains("cannot be reached") && Date().timeIntervalSince(start) < 15, "\(r.stderr)")
        r = try CLI.run(["info", "--model", "acme/other"], environment: hub.environment(cache: cache))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("cannot be reached"), "\(r.stderr)")
    }

    /// What is a path and what is a Hub id; a local folder of the id's name wins.
    @Test func pathsAndHubIdsAreToldApart() throws {
        let hub = try StandInHub(["acme/neko-demo": nil])
        let cache = temp(), work = temp()
        for path in ["./acme/neko-demo", "/nonexistent/model", "~/nonexistent-model", "a/b/c", "nonexistent"] {
            let r = try CLI.run(["info", "--model", path], environment: hub.environment(cache: cache))
            #expect(r.status == 1 && r.stderr.contains("no such folder"), "\(path): \(r.stderr)")
        }
        #expect(hub.requests.isEmpty)
        // A folder named acme/neko-demo where the command runs is that folder, not the Hub's.
        try FileManager.default.createDirectory(atPath: work + "/acme", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: CLI.model("neko_mini_bf16"), toPath: work + "/acme/neko-demo")
        let p = Process()
        p.executableURL = try #require(CLI.binary)
        p.arguments = ["info", "--model", "acme/neko-demo", "--json"]
        p.currentDirectoryURL = URL(fileURLWithPath: work)
        p.environment = ProcessInfo.processInfo.environment.merging(hub.environment(cache: cache)) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let info = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect((info["path"] as? String)?.hasSuffix("/acme/neko-demo") == true && info["hub_model"] is NSNull)
        #expect(hub.requests.isEmpty)
    }

    /// The disk space a download needs is checked before it starts.
    @Test(.enabled(if: SmallDisk.available)) func aDownloadThatCannotFitDoesNotStart() throws {
        let hub = try StandInHub(["acme/neko-demo": nil])
        let disk = SmallDisk(megabytes: 8)
        let r = try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: disk.path + "/hub"))
        #expect(r.status == 1 && isOneErrorLine(r) && r.stderr.contains("not enough disk space"), "\(r.stderr)")
        #expect(!hub.requests.contains { $0["server"] as? String == "cdn" })
    }

    /// `nekochat models` lists the cached model with its family, size and caches.
    @Test func modelsListsTheCache() throws {
        let hub = try StandInHub(["acme/neko-demo": nil])
        let cache = temp()
        _ = try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: cache))
        _ = try CLI.run(["info", "--model", "acme/neko-demo", "--weights", "q8"], environment: hub.environment(cache: cache, offline: true))
        let r = try CLI.run(["models", "--json"], environment: hub.environment(cache: cache, offline: true))
        let models = try #require(r.json?["models"] as? [[String: Any]])
        let m = try #require(models.first { $0["id"] as? String == "acme/neko-demo" }, "\(r.stdout)")
        #expect(m["family"] as? String == "NekoMind" && m["loadable"] as? Bool == true)
        #expect((m["bytes"] as? Int ?? 0) > 20_000_000)
        let caches = m["caches"] as? [String] ?? []
        #expect(caches.count == 1 && caches[0].contains("/nekochat/hub/models--acme--neko-demo/") && !caches[0].hasPrefix(cache), "\(caches)")
    }

    // MARK: huggingface_hub as the other peer

    static let venvPython = CLI.repo.appendingPathComponent(".build/test-venv/bin/python").path
    static let hasHuggingFaceHub: Bool = {
        guard FileManager.default.isExecutableFile(atPath: venvPython) else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: venvPython)
        p.arguments = ["-c", "import huggingface_hub"]
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }()

    func python(_ script: String, environment: [String: String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.venvPython)
        p.arguments = ["-c", script]
        p.environment = ProcessInfo.processInfo.environment.merging(environment.merging(["HF_HUB_DISABLE_TELEMETRY": "1"]) { $1 }) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// huggingface_hub downloads into a cache that nekochat then reads offline, and reads
    /// nekochat's cache with `local_files_only=True`.
    @Test(.enabled(if: hasHuggingFaceHub)) func huggingFaceHubAndNekochatShareTheCache() throws {
        let hub = try StandInHub(["acme/neko-demo": nil])
        let theirs = temp()
        var (status, output) = try python("""
            from huggingface_hub import snapshot_download
            print(snapshot_download("acme/neko-demo"))
            """, environment: hub.environment(cache: theirs))
        #expect(status == 0, "\(output)")
        hub.clearLog()
        let r = try CLI.run(["generate", "--model", "acme/neko-demo", "--prompt", "Romeo", "--max-tokens", "2", "--temperature", "0"],
                            environment: hub.environment(cache: theirs, offline: true))
        #expect(r.status == 0 && hub.requests.isEmpty, "\(r.stderr)")

        let ours = temp()
        #expect(try CLI.run(["pull", "acme/neko-demo"], environment: hub.environment(cache: ours)).status == 0)
        (status, output) = try python("""
            from huggingface_hub import hf_hub_download, snapshot_download
            print(hf_hub_download("acme/neko-demo", "model.safetensors", local_files_only=True))
            print(hf_hub_download("acme/neko-demo", "config.json", revision="\(StandInHub.commit)", local_files_only=True))
            print(snapshot_download("acme/neko-demo", local_files_only=True))
            """, environment: hub.environment(cache: ours, offline: true))
        #expect(status == 0, "\(output)")
        #expect(output.contains(ours + "/models--acme--neko-demo/snapshots/\(StandInHub.commit)/model.safetensors"), "\(output)")
    }
}
