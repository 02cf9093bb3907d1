import ArgumentParser
import Foundation
import NekoChat
import NekoHub
import NekoModel

/// `nekochat pull ORG/NAME[@REV]`: downloads a model into the Hugging Face cache (or checks that
/// it is there and current) and prints its snapshot folder as the last line of stdout.
struct Pull: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model from the Hugging Face Hub into its cache (resumable, verified), or check it is there.")

    @Argument(help: "The model: ORG/NAME[@REVISION] (a branch, a tag or a 40-hex commit; default main).") var model: String
    @Flag(help: "Print one JSON document.") var json = false

    func run() throws {
        guard let id = HubModelID.parse(model) else {
            throw ValidationError("'\(model)' is not a Hub id ORG/NAME[@REVISION]")
        }
        let snapshot = try ModelLocation.fetch(id)
        if json {
            try Output.json(.object([
                ("repo", .string(id.repo)), ("revision", .string(id.revision)), ("commit", .string(snapshot.commit)),
                ("path", .string(snapshot.path)),
                ("files", .array(snapshot.files.map { .object([("path", .string($0.path)), ("size", .int(Int($0.size))),
                                                               ("downloaded", .bool($0.downloaded))]) })),
            ]))
            return
        }
        let fetched = snapshot.files.filter(\.downloaded)
        Output.err(fetched.isEmpty ? "\(id) is in the cache (commit \(snapshot.commit))\n"
                   : "\(id): \(fetched.count) file(s) downloaded, commit \(snapshot.commit)\n")
        Output.out(snapshot.path + "\n")
    }
}

/// The local folders a user has run (remembered so that `nekochat models` can list them).
enum LocalModels {
    static var file: String { TranscriptStore.standard().directory + "/local-models" }

    static func list() -> [String] {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    static func remember(_ directory: String) {
        let path = resolvePath(directory)
        var all = list().filter { $0 != path }
        all.append(path)
        try? Transcript.writeAtomically(all.suffix(100).joined(separator: "\n") + "\n", to: file, overwrite: true)
    }
}

/// `nekochat models`: the models in the Hugging Face cache and the local folders used, with their
/// family, size on disk, whether nekochat can load them, and their q8/q4 caches.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the models in the Hugging Face cache and the local model folders you have used.")

    @Flag(help: "Print one JSON document.") var json = false

    struct Entry {
        var id: String
        var path: String
        var commit: String?
        var family = "?"
        var bytes: Int64 = 0
        var loadable = false
        var problem: String?
        var caches: [String] = []
    }

    func run() throws {
        let env = HubEnvironment.from()
        var entries: [Entry] = []
        for repo in HubCacheListing.repositories(in: env.cacheDirectory) {
            for (commit, revisions) in repo.snapshots {
                let label = revisions.isEmpty || revisions.contains("main") ? repo.model.repo : repo.model.repo + "@" + revisions[0]
                var e = Entry(id: label, path: repo.cache.snapshot(commit), commit: commit)
                describe(&e)
                let dir = env.nekochatCache + "/hub/" + repo.model.folderName
                e.caches = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".nkc") }.sorted()
                    .map { dir + "/" + $0 }
                entries.append(e)
            }
        }
        for path in LocalModels.list() where FileManager.default.fileExists(atPath: path) {
            var e = Entry(id: path, path: path)
            describe(&e)
            let beside = path + "/.nekochat"
            e.caches = ((try? FileManager.default.contentsOfDirectory(atPath: beside)) ?? []).filter { $0.hasSuffix(".nkc") }.sorted()
                .map { beside + "/" + $0 }
            entries.append(e)
        }
        if json {
            try Output.json(.object([("hub_cache", .string(env.cacheDirectory)), ("models", .array(entries.map { e in
                var fields: [(key: String, value: JSON)] = [("id", .string(e.id)), ("path", .string(e.path))]
                if let c = e.commit { fields.append(("commit", .string(c))) }
                fields += [("family", .string(e.family)), ("bytes", .int(Int(e.bytes))), ("loadable", .bool(e.loadable))]
                if let p = e.problem { fields.append(("problem", .string(p))) }
                fields.append(("caches", .array(e.caches.map { .string($0) })))
                return .object(fields)
            }))]))
            return
        }
        if entries.isEmpty {
            Output.out("no models yet in \(env.cacheDirectory), and no local folders used (nekochat pull ORG/NAME downloads one)\n")
            return
        }
        let width = min(48, entries.map(\.id.count).max() ?? 0)
        for e in entries {
            let status = e.loadable ? "" : "  cannot load: " + (e.problem ?? "?")
            let caches = e.caches.isEmpty ? "" : "  caches: " + e.caches.map { ($0 as NSString).lastPathComponent.split(separator: "-").prefix(2).joined(separator: "-") }.joined(separator: ", ")
            Output.out(e.id.padding(toLength: max(width, e.id.count), withPad: " ", startingAt: 0)
                       + "  \(e.family.padding(toLength: 12, withPad: " ", startingAt: 0))  \(DownloadPrinter.bytes(e.bytes))\(caches)\(status)\n")
        }
    }

    /// The family, size and loadability of a model folder, without mapping its weights.
    func describe(_ e: inout Entry) {
        let fm = FileManager.default
        e.bytes = HubCacheListing.bytes(in: e.path)
        do {
            let config = try ModelConfig.load(path: e.path + "/config.json")
            e.family = config.family
            let weights = fm.fileExists(atPath: e.path + "/model.safetensors.index.json") || fm.fileExists(atPath: e.path + "/model.safetensors")
            e.loadable = weights
            if !weights { e.problem = "no safetensors weights" }
        } catch {
            e.problem = userMessage(error)
            if let type = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: e.path + "/config.json"))) as? [String: Any])?["model_type"] as? String {
                e.family = type
            }
        }
    }
}
