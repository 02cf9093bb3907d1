import Foundation
import NekoJSON
import NekoRouting
import Testing

/// `nekochat routing` end to end against the float64 reference's goldens (ROUTING.md's
/// definitions computed independently in Python from the reference's own routing).
@Suite struct RoutingCLITests {
    static let goldens = CLI.repo.appendingPathComponent("Tests/Fixtures/routing")
    static let names = ["neko_mini_bf16", "no_shared_no_qknorm_step2", "sharded3_bf16_normtopk"]

    @Test(arguments: names) func routingJSONMatchesTheReference(name: String) throws {
        let golden = try JSONValue.parse([UInt8](try Data(contentsOf: Self.goldens.appendingPathComponent("\(name).json"))))
        let sequences = try #require(golden["sequences"]?.array)
        var args = ["routing", "--model", CLI.model(name), "--json", "--threads", "1",
                    "--min-count", String(try #require(golden["min_count"]?.int))]
        for s in sequences { args += ["--ids", (s["ids"]?.array ?? []).compactMap(\.int).map(String.init).joined(separator: ",")] }
        let r = try CLI.run(args)
        #expect(r.status == 0, "\(r.stderr)")
        let ours = try JSONValue.parse(r.stdout)
        let diffs = RoutingAnalysis.differences(ours, try #require(golden["expected"]), tolerance: 1e-6)
        #expect(diffs.isEmpty, "\(name): \(diffs.joined(separator: "; "))")
    }
}
