import Foundation
import NekoChat
import Testing

/// A small tmpfs that the tests fill up (needs root, as CI and these machines have).
final class SmallDisk {
    let path: String
    var mounted = false

    init(megabytes: Int) {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("full-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil { p.waitUntilExit(); mounted = p.terminationStatus == 0 }
    }

    /// Fills what is left with one file; returns its path.
    @discardableResult
    func fill() -> String {
        let filler = path + "/filler"
        FileManager.default.createFile(atPath: filler, contents: nil)
        if let h = FileHandle(forWritingAtPath: filler) {
            let chunk = Data(repeating: 0x41, count: 64 << 10)
            while (try? h.write(contentsOf: chunk)) != nil {}
            // The last partial chunk: byte by byte until the disk says no.
            while (try? h.write(contentsOf: Data([0x41]))) != nil {}
            try? h.close()
        }
        return filler
    }

    deinit {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/umount")
        p.arguments = [path]
        try? p.run()
        p.waitUntilExit()
    }

    static let available: Bool = SmallDisk(megabytes: 1).mounted
}

@Suite(.serialized) struct DiskFullTests {
    /// /save and /export on a full disk: an error that says so, the previous file as it was,
    /// no temporary left behind.
    @Test(.enabled(if: SmallDisk.available)) func savingOnAFullDiskKeepsThePreviousFile() throws {
        let disk = SmallDisk(megabytes: 1)
        let c = ChatController(backend: ScriptedBackend(replies: [String(repeating: "long reply ", count: 200)]), transcript: nil)
        try c.send("hello")
        _ = c.finish()
        let saved = disk.path + "/saved.jsonl", exported = disk.path + "/chat.md"
        _ = try c.save(to: saved)
        _ = try c.export(to: exported)
        let before = try Data(contentsOf: URL(fileURLWithPath: saved)), mdBefore = try Data(contentsOf: URL(fileURLWithPath: exported))
        try c.send("more")
        _ = c.finish()
        disk.fill()
        for (action, file, old) in [({ try c.save(to: saved, overwrite: true) }, saved, before),
                                    ({ try c.export(to: exported, overwrite: true) }, exported, mdBefore)] as [(() throws -> String, String, Data)] {
            do {
                _ = try action()
                Issue.record("wrote \(file) on a full disk")
            } catch {
                #expect("\(error)".contains("no space left") && "\(error)".contains("nothing was written"), "\(error)")
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == old)
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: disk.path).sorted()
        #expect(left == ["chat.md", "filler", "saved.jsonl"], "\(left)")
    }

    /// The autosaved log on a full disk: the chat goes on and says so; once there is room again
    /// the lines that waited are written, and the file loads with every message.
    @Test(.enabled(if: SmallDisk.available)) func theLogCatchesUpWhenSpaceComesBack() throws {
        let disk = SmallDisk(megabytes: 1)
        let store = TranscriptStore(directory: disk.path + "/chats")
        let backend = ScriptedBackend(replies: ["first", "second", "third"], contextSize: 100_000)
        let c = ChatController(backend: backend, transcript: TranscriptWriter(store: store, header: TranscriptHeader(backend.info)))
        try c.send("one")
        _ = c.finish()
        let filler = disk.fill()
        // Large enough to need new pages of the file system (a small line may still fit the
        // file's last page).
        let two = "two " + String(repeating: "x", count: 20_000)
        try c.send(two)
        let events = c.finish()
        let errors = events.compactMap { if case let .error(e) = $0 { e } else { nil } }
        #expect(errors.contains { $0.contains("no space left") }, "\(errors)")
        #expect(c.conversation.path.count == 4)   // the chat went on
        try FileManager.default.removeItem(atPath: filler)
        try c.send("three")
        _ = c.finish()
        let log = try Transcript.load(path: try #require(c.transcript?.path)).conversation
        #expect(log.path.map(\.content) == ["one", "first", two, "second", "three", "third"])
    }

    /// The quantised-weights cache cannot be written: a notice, and the model runs from memory.
    @Test(.enabled(if: SmallDisk.available)) func aFullDiskDoesNotStopQuantisedWeights() throws {
        let disk = SmallDisk(megabytes: 2)
        let model = disk.path + "/model"
        try FileManager.default.copyItem(atPath: CLI.model("neko_mini_bf16"), toPath: model)
        disk.fill()
        let r = try CLI.run(["generate", "--model", model, "--weights", "q8", "--prompt-ids", "1,2,3", "--max-tokens", "3",
                             "--temperature", "0", "--json"], environment: ["XDG_CACHE_HOME": disk.path + "/cache"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect((r.json?["ids"] as? [Int])?.count == 3)
        #expect(r.stderr.contains("cache") && !r.stderr.contains("Error Domain"), "\(r.stderr)")
    }
}
