import Foundation
import NekoFuzzTargets
import Testing

/// Every seed of the fuzzers and every input that once crashed one (Tests/Fuzz/regressions),
/// through its target: none may crash, hang or trap again.
@Suite struct ReplayTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    static func inputs(_ target: String) -> [URL] {
        ["seeds", "regressions"].flatMap { kind -> [URL] in
            let dir = root.appendingPathComponent("\(kind)/\(target)")
            return ((try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []).sorted { $0.path < $1.path }
        }
    }

    @Test(arguments: FuzzTargets.names) func seedsAndRegressionsRunClean(target: String) throws {
        let files = Self.inputs(target)
        #expect(!files.isEmpty, "no seeds for \(target)")
        for file in files { FuzzTargets.run(target, [UInt8](try Data(contentsOf: file))) }
    }
}
