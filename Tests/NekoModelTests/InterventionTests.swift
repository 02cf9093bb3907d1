import Foundation
import NekoJSON
@testable import NekoModel
import Testing

/// interventions.json (Tests/Reference/make_intervention_fixtures.py): per case, what the
/// reference (nekomind_ref.py, or transformers' own classes) computes under the interventions.
struct InterventionCases: Decodable {
    struct Case: Decodable {
        var nll: [Double]
        var logits: [Double]
        var routing: [[Expected.Route]]
    }
    var promptIds: [Int]
    var cases: [Case]
    /// Each case's `experts` object, as the JSON that a server request or a transcript carries.
    var experts: [JSONValue] = []

    enum CodingKeys: String, CodingKey { case cases; case promptIds = "prompt_ids" }

    static let fixtures: [String] = Fixtures.engineModels.filter {
        FileManager.default.fileExists(atPath: Fixtures.path($0) + "/interventions.json")
    }

    static func load(_ name: String) throws -> InterventionCases {
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name) + "/interventions.json"))
        var out = try JSONDecoder().decode(InterventionCases.self, from: data)
        let json = try JSONValue.parse(Array(data))
        out.experts = json["cases"]?.array?.compactMap { $0["experts"] } ?? []
        return out
    }
}

@Suite struct InterventionTests {
    let context = ForwardContext(threads: 2)

    @Test func fixturesArePresent() {
        #expect(InterventionCases.fixtures.count >= 5, "\(InterventionCases.fixtures)")
    }

    /// Every case: one prefill over the prompt gives the reference's NLL, last logits and the
    /// routing of every token (experts identical, weights within 1e-5).
    @Test(arguments: InterventionCases.fixtures)
    func interventionsMatchTheReference(name: String) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(name))
        let fixture = try InterventionCases.load(name)
        let vocab = model.config.vocabSize, prompt = fixture.promptIds
        #expect(fixture.experts.count == fixture.cases.count)
        for (c, expected) in zip(fixture.experts, fixture.cases) {
            let interventions = try Interventions(json: c)
            #expect(!interventions.isEmpty)
            let routing = model.makeRoutingRecord(interventions)
            let logits = try model.forward(prompt, cache: try model.makeCache(capacity: 64), logits: .all,
                                           routing: routing, interventions: interventions, context: context)
            for t in 0..<prompt.count - 1 {
                let row = Array(logits[t * vocab..<(t + 1) * vocab])
                let nll = logSumExp(row) - Double(row[prompt[t + 1]])
                #expect(abs(nll - expected.nll[t]) <= 1e-3, "\(name) \(c.serialized) position \(t): NLL \(nll) vs \(expected.nll[t])")
            }
            let last = logits[(prompt.count - 1) * vocab..<prompt.count * vocab]
            let worst = zip(last, expected.logits).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(worst <= 1e-3, "\(name) \(c.serialized): last logits differ by \(worst)")
            #expect(routing.tokens == prompt.count)
            for t in 0..<prompt.count {
                for (slot, route) in expected.routing[t].enumerated() {
                    let choice = routing.choice(token: t, slot: slot)
                    #expect(routing.moeLayers[slot] == route.layer)
                    #expect(choice.experts == route.experts, "\(name) \(c.serialized) token \(t) layer \(route.layer)")
                    for (w, e) in zip(choice.weights, route.weights) {
                        #expect(abs(Double(w) - e) <= 1e-5, "\(name) \(c.serialized) token \(t) layer \(route.layer): weight \(w) vs \(e)")
                    }
                    if !interventions.sharedExpert { #expect(choice.sharedGate == nil) }
                }
            }
        }
    }

    /// Token by token, and several sequences decoded in one batch, route as the prefill did.
    @Test func decodeStepsRouteAsThePrefill() throws {
        let model = try LanguageModel.load(directory: Fixtures.path("neko_mini_bf16"))
        let fixture = try InterventionCases.load("neko_mini_bf16")
        let interventions = try Interventions(json: fixture.experts.last!)
        let expected = fixture.cases.last!
        let prompt = fixture.promptIds
        let caches = try (0..<2).map { _ in try model.makeCache(capacity: 64) }
        let records = (0..<2).map { _ in model.makeRoutingRecord(interventions) }
        var logits: [[Float]] = []
        for id in prompt {
            logits = try model.decode(tokens: [id, id], caches: caches, routing: records,
                                      interventions: interventions, context: context)
        }
        for record in records {
            for t in 0..<prompt.count {
                for (slot, route) in expected.routing[t].enumerated() {
                    #expect(record.choice(token: t, slot: slot).experts == route.experts)
                }
            }
        }
        let worst = zip(logits[1], expected.logits).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(worst <= 1e-3)
    }

    /// Without interventions the record and logits are the plain model's (the empty value is
    /// the default everywhere).
    @Test func noInterventionsIsThePlainModel() throws {
        let model = try LanguageModel.load(directory: Fixtures.path("neko_mini_bf16"))
        let expected = try Fixtures.expected("neko_mini_bf16")
        let logits = try model.forward(expected.promptIds, cache: try model.makeCache(capacity: 64), logits: .all,
                                       interventions: Interventions(json: .object([])), context: context)
        let vocab = model.config.vocabSize
        for (t, row) in expected.logits.enumerated() {
            let d = zip(logits[t * vocab..<(t + 1) * vocab], row).map { abs(Double($0) - $1) }.max() ?? 0
            #expect(d <= 1e-3)
        }
    }

    /// Each bad intervention is one error that names the layer (or the number) at fault, and
    /// nothing runs: the cache is left as it was.
    @Test(arguments: [
        ("{\"mask\": {\"0\": [1]}}", "layer 0 is dense"),
        ("{\"mask\": {\"9\": [1]}}", "layer 9 does not exist"),
        ("{\"force\": {\"2\": [8]}}", "layer 2 has no expert 8"),
        ("{\"mask\": {\"2\": [-1]}}", "layer 2 has no expert -1"),
        ("{\"mask\": {\"3\": [4]}, \"force\": {\"3\": [4]}}", "layer 3: expert 4 is both masked and forced"),
        ("{\"force\": {\"2\": [1, 2, 3]}}", "layer 2: 3 experts forced, more than the 2 chosen"),
        ("{\"force\": {\"2\": [1, 2]}, \"top_k\": 1}", "layer 2: 2 experts forced, more than the 1 chosen"),
        ("{\"mask\": {\"2\": [0, 1, 2, 3, 4, 5, 6]}}", "layer 2: 7 of 8 experts masked leaves fewer than the 2"),
        ("{\"top_k\": 0}", "experts per token must be from 1 to 8"),
        ("{\"top_k\": 9}", "experts per token must be from 1 to 8"),
    ])
    func badInterventionsAreOneClearError(json: String, message: String) throws {
        let model = try LanguageModel.load(directory: Fixtures.path("neko_mini_bf16"))
        let interventions = try Interventions(json: JSONValue.parse(json))
        let cache = try model.makeCache(capacity: 16)
        let error = #expect(throws: InterventionError.self) {
            try model.forward([5, 6], cache: cache, interventions: interventions, context: context)
        }
        #expect(error?.description.contains(message) == true, "\(error?.description ?? "no error") ∌ \(message)")
        #expect(cache.length == 0)
    }

    @Test func aModelWithoutASharedExpertSaysSo() throws {
        let model = try LanguageModel.load(directory: Fixtures.path("hf_mixtral_swa"))
        let error = #expect(throws: InterventionError.self) {
            try model.check(Interventions(sharedExpert: false))
        }
        #expect(error?.description == "shared: this model has no shared expert to leave out")
        #expect(error?.named(["shared": "--no-shared-expert"]) == "--no-shared-expert: this model has no shared expert to leave out")
    }

    @Test func aRecordForAnotherKIsRefused() throws {
        let model = try LanguageModel.load(directory: Fixtures.path("neko_mini_bf16"))
        let record = model.makeRoutingRecord()
        #expect(throws: ModelError.self) {
            try model.forward([5], cache: try model.makeCache(capacity: 16), routing: record,
                              interventions: Interventions(expertsPerToken: 3), context: context)
        }
        #expect(record.tokens == 0)
    }

    @Test func layerListsParse() throws {
        #expect(try Interventions.parseLayers("3:5,7;4:1", what: "mask") == [3: [5, 7], 4: [1]])
        #expect(try Interventions.parseLayers(" 3 : 7, 5 ; 3:5 ;", what: "mask") == [3: [5, 7]])
        #expect(try Interventions.parseLayers("2:0-3,9", what: "force") == [2: [0, 1, 2, 3, 9]])
        for bad in ["", "3", "x:1", "3:", "3:a", "3:1,,b", ";"] {
            #expect(throws: InterventionError.self, "\(bad)") { try Interventions.parseLayers(bad, what: "mask") }
        }
        let error = #expect(throws: InterventionError.self) { try Interventions.parseLayers("3:1;x:2", what: "--mask-experts") }
        #expect(error?.description == "--mask-experts: 'x:2' is not LAYER:EXPERT[,EXPERT…]")
    }

    @Test func jsonRoundTripsAndRefusesWhatItDoesNotKnow() throws {
        let i = Interventions(mask: [3: [7, 5, 5]], force: [2: [1]], expertsPerToken: 3, sharedExpert: false)
        #expect(i.mask == [3: [5, 7]])
        #expect(i.json.serialized == #"{"mask":{"3":[5,7]},"force":{"2":[1]},"top_k":3,"shared":false}"#)
        #expect(try Interventions(json: i.json) == i)
        #expect(i.summary == "mask 3:5,7 · force 2:1 · 3 experts per token · no shared expert")
        #expect(i.flags == ["--mask-experts", "3:5,7", "--force-experts", "2:1", "--experts-per-token", "3", "--no-shared-expert"])
        #expect(Interventions.none.summary == "none")
        for bad in [#"{"masks": {}}"#, #"{"mask": [1]}"#, #"{"mask": {"a": [1]}}"#, #"{"mask": {"1": [1.5]}}"#,
                    #"{"top_k": "2"}"#, #"{"shared": 0}"#, "[]"] {
            #expect(throws: InterventionError.self, "\(bad)") { try Interventions(json: JSONValue.parse(bad)) }
        }
    }

    func logSumExp(_ row: [Float]) -> Double {
        let m = Double(row.max()!)
        return m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
    }
}

@Suite struct ResumeTests {
    let context = ForwardContext(threads: 2)

    /// A pass resumed from a layer's feed-forward block, with an intervention there, gives the
    /// logits of a whole pass under the same intervention; with none, the plain pass's.
    @Test(arguments: ["neko_mini_bf16", "sharded3_bf16_normtopk", "hf_qwen2_moe"])
    func aResumedPassEqualsAWholePass(name: String) throws {
        let model = try LanguageModel.load(directory: Fixtures.path(name))
        let tokens = try Fixtures.expected(name).promptIds
        let tape = ResidualTape()
        context.tape = tape
        let plain = try model.forward(tokens, cache: try model.makeCache(capacity: 64), logits: .all, context: context)
        context.tape = nil
        #expect(tape.storedLayers == model.config.moeLayers)
        for layer in model.config.moeLayers {
            // (The shared expert left out at one layer only is checked against the reference's
            // ablation, Tests/NekoChatTests/AblationTests.swift: the public value drops it everywhere.)
            for interventions in [Interventions.none, Interventions(mask: [layer: [1, 2]]), Interventions(force: [layer: [0]])] {
                let whole = interventions.isEmpty ? plain
                    : try model.forward(tokens, cache: try model.makeCache(capacity: 64), logits: .all,
                                        interventions: interventions, context: context)
                let resumed = try model.resume(tokens, from: layer, tape: tape, interventions: interventions, context: context)
                let d = zip(whole, resumed).map { abs($0 - $1) }.max() ?? 1
                #expect(resumed.count == whole.count && d <= 1e-4, "\(name) layer \(layer) \(interventions.summary): \(d)")
            }
        }
    }
}
