import Foundation
import NekoJSON
import NekoModel
import NekoRouting

extension RoutingStep {
    /// Token `t` of a model's routing record as a step.
    public init(record: RoutingRecord, token t: Int, id: Int, text: String, isPrompt: Bool) {
        self.init(layers: record.moeLayers, experts: [], weights: [], tokenId: id, token: text, isPrompt: isPrompt)
        var gates: [Float] = []
        for slot in record.moeLayers.indices {
            let choice = record.choice(token: t, slot: slot)
            experts.append(choice.experts)
            weights.append(choice.weights)
            gates.append(choice.sharedGate ?? .nan)
            routerEntropy.append(choice.routerEntropy)
        }
        // NaN marks a layer without a gate; none at all: no gates.
        sharedGate = gates.allSatisfy(\.isNaN) ? [] : gates
    }

    /// The step's records for a `RoutingTrace`, one per MoE layer (a NaN gate: no gate there).
    public var layerRecords: [LayerRouting] {
        layers.indices.map { slot in
            LayerRouting(experts: experts[slot], weights: weights[slot],
                         sharedGate: slot < sharedGate.count && !sharedGate[slot].isNaN ? sharedGate[slot] : nil,
                         routerEntropy: slot < routerEntropy.count ? routerEntropy[slot] : nil)
        }
    }
}

extension RoutingStep {
    /// Steps as Sources/nekochat/README.md's routing record (Sources/NekoRouting/README.md): per token, per MoE layer,
    /// `{"layer", "experts", "weights", "shared_gate" (when the layer has one), "router_entropy"}`.
    /// `generate --routing`, the server's extension and `generate --server` all print this.
    public static func recordJSON(_ steps: [RoutingStep]) -> JSONValue {
        .array(steps.map { s in
            .array(s.layers.indices.map { slot in
                var fields: [(key: String, value: JSONValue)] = [
                    ("layer", .int(s.layers[slot])), ("experts", .array(s.experts[slot].map { .int($0) })),
                    ("weights", .array(s.weights[slot].map { .float($0) })),
                ]
                if slot < s.sharedGate.count, !s.sharedGate[slot].isNaN { fields.append(("shared_gate", .float(s.sharedGate[slot]))) }
                if slot < s.routerEntropy.count { fields.append(("router_entropy", .float(s.routerEntropy[slot]))) }
                return .object(fields)
            })
        })
    }
}

extension RoutingTrace {
    /// A trace of routing steps, one sequence per (name, steps), for the analyses of Sources/NekoRouting/README.md.
    /// Nil when there are no steps or no MoE layers.
    public static func of(_ sequences: [(name: String, steps: [RoutingStep])], experts: Int) throws -> RoutingTrace? {
        let all = sequences.flatMap(\.steps)
        guard let first = all.first, !first.layers.isEmpty else { return nil }
        let k = first.experts.first?.count ?? 0
        let gated = first.layers.indices.filter { $0 < first.sharedGate.count && !first.sharedGate[$0].isNaN }.map { first.layers[$0] }
        let entropy = all.allSatisfy { $0.routerEntropy.count == $0.layers.count }
        var trace = try RoutingTrace(moeLayers: first.layers, experts: experts, topK: k, gatedLayers: gated, hasRouterEntropy: entropy)
        for (name, steps) in sequences {
            trace.beginSequence(named: name)
            for s in steps {
                var records = s.layerRecords
                if !entropy { records = records.map { var r = $0; r.routerEntropy = nil; return r } }
                try trace.append(tokenID: max(0, s.tokenId), layers: records)
            }
        }
        return trace
    }
}

extension Conversation {
    /// The routing recorded in the chat: one sequence per reply (the tokens its turn put through
    /// the model: the new prompt part, then the reply), in the order the replies were written.
    public var routingSequences: [(name: String, steps: [RoutingStep])] {
        messages.filter { !$0.routing.isEmpty }.map { ("message \($0.id)", $0.routing) }
    }
}
