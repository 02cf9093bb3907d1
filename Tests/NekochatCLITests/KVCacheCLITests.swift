import Foundation
import Testing

/// `--kv-cache`: score is exact (float32) unless asked, each precision stays near it, the JSON
/// says which ran, and a bad value is a usage error naming the choices.
@Suite struct KVCacheCLITests {
    let name = "neko_mini_bf16"

    @Test func everyPrecisionScoresNearTheExactCache() throws {
        let data = try Data(contentsOf: CLI.fixtures.appendingPathComponent("\(name)/interventions.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let prompt = try #require(json["prompt_ids"] as? [Int])
        let ids = prompt.map(String.init).joined(separator: ",")
        func score(_ extra: [String]) throws -> (nll: [Double], top1: [Int], kv: String?) {
            let r = try CLI.run(["score", "--model", CLI.model(name), "--ids", ids, "--json", "--threads", "1"] + extra)
            #expect(r.status == 0, "\(r.stderr)")
            return (try #require(r.json?["nll"] as? [Double]), try #require(r.json?["top1"] as? [Int]), r.json?["kv_cache"] as? String)
        }
        let exact = try score([])
        #expect(exact.kv == "f32")
        #expect(exact.top1.count == prompt.count - 1)
        for (precision, tolerance) in [("f16", 0.01), ("bf16", 0.1)] {
            let r = try score(["--kv-cache", precision])
            #expect(r.kv == precision)
            let worst = zip(r.nll, exact.nll).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < tolerance, "\(precision): max |ΔNLL| \(worst)")
            #expect(worst > 0, "\(precision): the same NLL as float32 to the last bit — was the cache's precision used?")
        }
    }

    @Test func aBadPrecisionNamesTheChoices() throws {
        let r = try CLI.run(["score", "--model", CLI.model(name), "--ids", "5,6,7", "--kv-cache", "q9"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("--kv-cache"), "\(r.stderr)")
        #expect(r.stderr.contains("f16") && r.stderr.contains("bf16"), "\(r.stderr)")
    }
}
