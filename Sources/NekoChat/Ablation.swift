import Foundation
import NekoJSON
import NekoKernels
import NekoModel

/// `nekochat routing ablate`: for every (MoE layer, expert), how much worse (or better) the
/// model predicts a text with that expert masked, beside the expert's share of the routed
/// tokens and REAP's saliency; and per MoE layer, the change without its shared expert
/// (Sources/NekoRouting/README.md, "Interventions").
public struct AblationReport: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var layer: Int
        public var expert: Int
        public var meanNLL: Double
        public var delta: Double
        /// load[e]: the expert's share of the layer's routed (token, rank) choices.
        public var share: Double
        /// Mean over the tokens routed to the expert of weight × ‖expert output‖₂ (0 if none).
        public var saliency: Double
    }
    public struct SharedRow: Sendable, Equatable {
        public var layer: Int
        public var meanNLL: Double
        public var delta: Double
    }

    /// Tokens over all sequences; the mean NLLs are over their predictions (each sequence's
    /// tokens after its first).
    public var tokens: Int
    public var baselineMeanNLL: Double
    public var rows: [Row]
    public var shared: [SharedRow]

    public var json: JSONValue {
        .object([
            ("tokens", .int(tokens)), ("baseline_mean_nll", .double(baselineMeanNLL)),
            ("rows", .array(rows.map { r in
                .object([("layer", .int(r.layer)), ("expert", .int(r.expert)), ("mean_nll", .double(r.meanNLL)),
                         ("delta", .double(r.delta)), ("share", .double(r.share)), ("saliency", .double(r.saliency))])
            })),
            ("shared", .array(shared.map { .object([("layer", .int($0.layer)), ("mean_nll", .double($0.meanNLL)), ("delta", .double($0.delta))]) })),
        ])
    }

    /// `layer,expert,mean_nll,delta,share,saliency`, one row per (layer, expert).
    public var csv: String {
        var out = "layer,expert,mean_nll,delta,share,saliency\n"
        for r in rows {
            out += "\(r.layer),\(r.expert),\(r.meanNLL),\(r.delta),\(r.share),\(r.saliency)\n"
        }
        return out
    }
}

public enum Ablation {
    /// Ablates every expert of `layers` (default: every MoE layer) over `sequences` (each at
    /// least 2 tokens, their predictions pooled). Each sequence is run once in full (the
    /// baseline: NLL, routing shares, saliency, and the residual stream entering each MoE
    /// layer); each ablation then reruns only the layers from the ablated one up. `progress`
    /// is told the work done and the total, in layers rerun over one sequence (a pass from a
    /// low layer costs more than one from a high layer).
    public static func run(model: LanguageModel, sequences: [[Int]], layers: [Int]? = nil, context: ForwardContext,
                           kvPrecision: KVPrecision = .float32, progress: (Int, Int) -> Void = { _, _ in }) throws -> AblationReport {
        let config = model.config, experts = config.numExperts, k = config.numExpertsPerTok
        let moe = config.moeLayers
        guard !moe.isEmpty else { throw ChatError("the model has no MoE layers: there is nothing to ablate") }
        let chosen = layers ?? moe
        for l in chosen where !moe.contains(l) {
            throw ChatError("layer \(l) is not an MoE layer; the MoE layers are \(moe.map(String.init).joined(separator: ", "))")
        }
        guard !sequences.isEmpty else { throw ChatError("no text to ablate over") }
        for s in sequences {
            guard s.count >= 2 else { throw ChatError("each text needs at least 2 tokens to be predicted; one has \(s.count)") }
            guard s.count <= config.maxPositionEmbeddings else {
                throw ChatError("a text has \(s.count) tokens, longer than the context window of \(config.maxPositionEmbeddings)")
            }
            try model.check(tokens: s)
        }
        let hasShared = model.hasSharedExpert
        let layersCount = config.numHiddenLayers
        let passesPerLayer = experts + (hasShared ? 1 : 0)
        let total = sequences.count * passesPerLayer * chosen.reduce(0) { $0 + layersCount - $1 }
        var done = 0

        // Baselines: NLL sums, routing counts, saliency, and a tape per sequence.
        let saliency = ExpertSaliency(moeLayers: moe.count, experts: experts)
        var counts = Array(repeating: 0, count: moe.count * experts)
        var baseline = 0.0, predictions = 0, tokens = 0
        var tapes: [ResidualTape] = []
        for s in sequences {
            let tape = ResidualTape(), record = model.makeRoutingRecord()
            context.tape = tape
            context.saliency = saliency
            defer { context.tape = nil; context.saliency = nil }
            let logits = try model.forward(s, cache: try model.makeCache(capacity: s.count, precision: kvPrecision), logits: .all,
                                           routing: record, context: context)
            baseline += nllSum(logits, s, vocab: config.vocabSize)
            predictions += s.count - 1
            tokens += s.count
            for t in 0..<record.tokens {
                for slot in moe.indices { for e in record.choice(token: t, slot: slot).experts { counts[slot * experts + e] += 1 } }
            }
            tapes.append(tape)
        }
        let base = baseline / Double(predictions)

        func meanNLL(from layer: Int, _ interventions: Interventions) throws -> Double {
            var sum = 0.0
            for (s, tape) in zip(sequences, tapes) {
                let logits = try model.resume(s, from: layer, tape: tape, interventions: interventions,
                                              kvPrecision: kvPrecision, context: context)
                sum += nllSum(logits, s, vocab: config.vocabSize)
                done += layersCount - layer
                progress(done, total)
            }
            return sum / Double(predictions)
        }
        var rows: [AblationReport.Row] = [], shared: [AblationReport.SharedRow] = []
        for layer in chosen {
            let slot = moe.firstIndex(of: layer)!
            for e in 0..<experts {
                let m = try meanNLL(from: layer, Interventions(mask: [layer: [e]]))
                rows.append(.init(layer: layer, expert: e, meanNLL: m, delta: m - base,
                                  share: Double(counts[slot * experts + e]) / Double(tokens * k),
                                  saliency: saliency.saliency(slot: slot, expert: e)))
            }
            if hasShared {
                let m = try meanNLL(from: layer, Interventions(sharedExpert: false))
                shared.append(.init(layer: layer, meanNLL: m, delta: m - base))
            }
        }
        return AblationReport(tokens: tokens, baselineMeanNLL: base, rows: rows, shared: shared)
    }

    /// Σ over positions t < n − 1 of −log softmax(logits[t])[tokens[t + 1]] (the kernels'
    /// log-sum-exp: an ablation pass reads 16M logits on the full model's vocabulary).
    static func nllSum(_ logits: [Float], _ tokens: [Int], vocab: Int) -> Double {
        logits.withUnsafeBufferPointer { p in
            var sum = 0.0
            for t in 0..<tokens.count - 1 {
                let row = p.baseAddress! + t * vocab
                sum += Kernels.logSumExp(row, vocab) - Double(row[tokens[t + 1]])
            }
            return sum
        }
    }
}
