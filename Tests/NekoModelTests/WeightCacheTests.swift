import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import NekoModel
import Testing

/// The quantised weights' cache: reused on the next load, checked, rebuilt with a notice when
/// corrupt, never a crash; unwritable places fall back to memory.
@Suite struct WeightCacheTests {
    let fixture = "neko_mini_bf16"

    func tempDir() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekochat-cache-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func logits(_ model: LanguageModel) throws -> [Float] {
        try model.forward([1, 2, 3, 4], cache: try model.makeCache(capacity: 8), logits: .all, context: ForwardContext(threads: 1))
    }

    /// Equal up to the SIMD level (the kernel tests may force another one while these run).
    func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 * (1 + abs($1)) }
    }

    func cacheFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".nkc") }.sorted()
    }

    @Test(arguments: [WeightFormat.q8, .q4])
    func secondLoadReusesTheCache(format: WeightFormat) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var calls: [QuantizationProgress] = []
        let first = try LanguageModel.load(directory: Fixtures.path(fixture), weights: format,
                                           cache: .directory(dir)) { calls.append($0) }
        #expect(first.weightCache?.reused == false)
        #expect(first.weightCache?.path.map { $0.hasPrefix(dir + "/weights-\(format.rawValue)-") } == true)
        #expect(calls.first?.doneBytes == 0 && calls.last.map { $0.doneBytes == $0.totalBytes } == true)
        #expect(first.notices.isEmpty)
        #expect(cacheFiles(dir).count == 1)
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: dir)).contains { $0.contains(".tmp-") })
        var again = 0
        let second = try LanguageModel.load(directory: Fixtures.path(fixture), weights: format,
                                            cache: .directory(dir)) { _ in again += 1 }
        #expect(second.weightCache?.reused == true && again == 0)
        #expect(same(try logits(first), try logits(second)))
    }

    /// A cache that is not in the page cache is mapped in place (a fast cold start) and gives
    /// the same results as one read into memory.
    @Test func coldCacheIsMappedInPlace() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let warm = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        let path = try #require(warm.weightCache?.path)
        let reference = try logits(warm)
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0)
        close(fd)
        let cold = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        #expect(cold.weightCache?.reused == true && cold.weightCache?.mapped == true)
        #expect(same(try logits(cold), reference))
        let again = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        #expect(again.weightCache?.mapped == false)   // now it is in the page cache: read into memory
        #expect(same(try logits(again), reference))
    }

    /// Truncation, a flipped header byte, a flipped index byte, a flipped magic: each is detected
    /// and the cache is rebuilt with a notice.
    @Test(arguments: ["truncate", "header", "index", "magic", "empty"])
    func corruptCacheIsRebuilt(damage: String) throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        let path = try #require(good.weightCache?.path)
        let reference = try logits(good)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        switch damage {
        case "truncate": data = data.prefix(data.count - 5000)
        case "header": data[17] ^= 0x40       // inside the fingerprint
        case "index": data[64 + 48 + 9] ^= 1  // rows of the second matrix
        case "magic": data[0] = UInt8(ascii: "X")
        default: data = Data()
        }
        try data.write(to: URL(fileURLWithPath: path))
        let rebuilt = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        #expect(rebuilt.weightCache?.reused == false)
        #expect(rebuilt.notices.contains { $0.contains(path) && $0.contains("unusable") }, "\(rebuilt.notices)")
        #expect(same(try logits(rebuilt), reference))
        let third = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        #expect(third.weightCache?.reused == true && third.notices.isEmpty)
    }

    @Test func unwritablePlaceRunsFromMemoryWithANotice() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let blocker = dir + "/a-file"
        try Data([1]).write(to: URL(fileURLWithPath: blocker))
        let model = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q4, cache: .directory(blocker + "/cache"))
        #expect(model.weightCache?.path == nil)
        #expect(model.notices.contains { $0.contains("cannot write") && $0.contains("from memory") }, "\(model.notices)")
        let memory = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q4, cache: .disabled)
        #expect(memory.notices.isEmpty && memory.weightCache?.path == nil)
        #expect(same(try logits(model), try logits(memory)))
    }

    @Test func olderCachesOfTheModelAreRemoved() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stale = dir + "/weights-q8-00000000deadbeef.nkc", other = dir + "/weights-q4-00000000deadbeef.nkc"
        try Data([0]).write(to: URL(fileURLWithPath: stale))
        try Data([0]).write(to: URL(fileURLWithPath: other))
        let model = try LanguageModel.load(directory: Fixtures.path(fixture), weights: .q8, cache: .directory(dir))
        let mine = try #require(model.weightCache?.path.map { ($0 as NSString).lastPathComponent })
        #expect(cacheFiles(dir) == [mine, "weights-q4-00000000deadbeef.nkc"].sorted())
    }

    /// Automatic: beside the model when writable; a changed weight file changes the fingerprint.
    @Test func automaticCacheLivesBesideTheModel() throws {
        let dir = try Fixtures.copy(fixture)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try LanguageModel.load(directory: dir, weights: .q8)
        #expect(first.weightCache?.path?.hasPrefix(dir + "/.nekochat/weights-q8-") == true)
        #expect(try LanguageModel.load(directory: dir, weights: .q8).weightCache?.reused == true)
        // Touching the weights (new mtime) makes the old cache stale: a new one replaces it.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -3600)],
                                              ofItemAtPath: dir + "/model.safetensors")
        let changed = try LanguageModel.load(directory: dir, weights: .q8)
        #expect(changed.weightCache?.reused == false)
        #expect(cacheFiles(dir + "/.nekochat").count == 1)
    }
}
