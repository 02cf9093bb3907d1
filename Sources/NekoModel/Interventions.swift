import Foundation
import NekoJSON

/// Changes to how the MoE layers route, asked for by a person testing what experts do
/// (Sources/NekoRouting/README.md, "Interventions"). Each applies to one layer's router only:
///
/// - `mask[L]`: those experts are never chosen at layer L (their router logits are −∞ before
///   the family's rule runs, so the others' probabilities renormalise);
/// - `force[L]`: those experts are always chosen at layer L; the rest of the k slots go to the
///   most probable others; weights follow the family's rule over the chosen set;
/// - `expertsPerToken`: N replaces the configured k in every MoE layer;
/// - `sharedExpert == false`: the shared expert (and its gate) is left out of every MoE layer.
///
/// The value is what the chat's `/experts`, the `--mask-experts`, `--force-experts`,
/// `--experts-per-token` and `--no-shared-expert` flags, a server request's
/// `"nekochat": {"experts": …}` and a transcript's settings all write. Layers are the model's
/// layer indices (the routing record's `layer`).
public struct Interventions: Sendable, Hashable {
    /// Layer → experts never chosen there (ascending, no repeats).
    public var mask: [Int: [Int]] = [:]
    /// Layer → experts always chosen there (ascending, no repeats).
    public var force: [Int: [Int]] = [:]
    /// Experts chosen per token in every MoE layer instead of the configured k.
    public var expertsPerToken: Int?
    /// False: the shared expert's output and gate are left out of every MoE layer.
    public var sharedExpert = true

    public static let none = Interventions()

    public init(mask: [Int: [Int]] = [:], force: [Int: [Int]] = [:], expertsPerToken: Int? = nil, sharedExpert: Bool = true) {
        self.mask = mask.compactMapValues { $0.isEmpty ? nil : Array(Set($0)).sorted() }
        self.force = force.compactMapValues { $0.isEmpty ? nil : Array(Set($0)).sorted() }
        self.expertsPerToken = expertsPerToken
        self.sharedExpert = sharedExpert
    }

    public var isEmpty: Bool { mask.isEmpty && force.isEmpty && expertsPerToken == nil && sharedExpert }

    /// The experts chosen per token under these interventions.
    public func expertsPerToken(_ config: ModelConfig) -> Int { expertsPerToken ?? config.numExpertsPerTok }

    // MARK: - Checks

    /// Throws unless these interventions fit `config`: layers that have a router, experts that
    /// exist, 1 ≤ N ≤ experts, no expert both masked and forced, no more forced experts than
    /// are chosen, enough unmasked experts left to choose from, a shared expert to leave out.
    public func check(_ config: ModelConfig, hasSharedExpert: Bool) throws {
        let experts = config.numExperts, k = expertsPerToken(config), moe = Set(config.moeLayers)
        if let n = expertsPerToken, !(1...max(1, experts)).contains(n) || experts == 0 {
            throw InterventionError("experts per token must be from 1 to \(experts) (the experts per layer); got \(n)", field: "top_k")
        }
        for (what, table) in [("mask", mask), ("force", force)] {
            for layer in table.keys.sorted() {
                guard layer >= 0 && layer < config.numHiddenLayers else {
                    throw InterventionError("layer \(layer) does not exist (layers 0 to \(config.numHiddenLayers - 1))", field: what)
                }
                guard moe.contains(layer) else {
                    throw InterventionError("layer \(layer) is dense (no router); the MoE layers are \(Self.ranges(config.moeLayers))", field: what)
                }
                if let bad = table[layer]!.first(where: { $0 < 0 || $0 >= experts }) {
                    throw InterventionError("layer \(layer) has no expert \(bad) (experts 0 to \(experts - 1))", field: what)
                }
            }
        }
        for layer in Set(mask.keys).union(force.keys).sorted() {
            let masked = mask[layer] ?? [], forced = force[layer] ?? []
            if let both = forced.first(where: masked.contains) {
                throw InterventionError("layer \(layer): expert \(both) is both masked and forced")
            }
            if forced.count > k {
                throw InterventionError("layer \(layer): \(forced.count) experts forced, more than the \(k) chosen per token")
            }
            if experts - masked.count < k {
                throw InterventionError("layer \(layer): \(masked.count) of \(experts) experts masked leaves fewer than the \(k) chosen per token")
            }
        }
        if !sharedExpert && !hasSharedExpert {
            throw InterventionError("this model has no shared expert to leave out", field: "shared")
        }
    }

    /// "2-5, 9" for [2, 3, 4, 5, 9].
    static func ranges(_ values: [Int]) -> String {
        var parts: [String] = [], i = 0
        while i < values.count {
            var j = i
            while j + 1 < values.count && values[j + 1] == values[j] + 1 { j += 1 }
            parts.append(j == i ? "\(values[i])" : "\(values[i])-\(values[j])")
            i = j + 1
        }
        return parts.joined(separator: ", ")
    }

    // MARK: - Text forms

    /// Reads `L:E[,E…][;L:E…]` (spaces allowed; `L:a-b` is a range of experts) into layer → experts.
    public static func parseLayers(_ text: String, what: String) throws -> [Int: [Int]] {
        var out: [Int: [Int]] = [:]
        for group in text.split(separator: ";", omittingEmptySubsequences: true) {
            let trimmed = group.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let parts = trimmed.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let layer = Int(parts[0].trimmingCharacters(in: .whitespaces)) else {
                throw InterventionError("\(what): '\(trimmed)' is not LAYER:EXPERT[,EXPERT…]")
            }
            var experts: [Int] = []
            for item in parts[1].split(separator: ",") {
                let piece = item.trimmingCharacters(in: .whitespaces)
                let bounds = piece.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
                if bounds.count == 2, let a = Int(bounds[0]), let b = Int(bounds[1]), a <= b, b - a < 1 << 16 {
                    experts += Array(a...b)
                } else if let e = Int(piece) {
                    experts.append(e)
                } else {
                    throw InterventionError("\(what): '\(piece)' in layer \(layer) is not an expert number")
                }
            }
            guard !experts.isEmpty else { throw InterventionError("\(what): layer \(layer) names no experts") }
            out[layer, default: []] += experts
        }
        guard !out.isEmpty else { throw InterventionError("\(what): no LAYER:EXPERT given") }
        return out.mapValues { Array(Set($0)).sorted() }
    }

    /// `3:5,7;4:1` — the form `parseLayers` reads.
    public static func layersText(_ table: [Int: [Int]]) -> String {
        table.keys.sorted().map { "\($0):" + table[$0]!.map(String.init).joined(separator: ",") }.joined(separator: ";")
    }

    /// One line: "mask 3:5,7 · force 4:1 · 2 experts per token · no shared expert", or "none".
    public var summary: String {
        var parts: [String] = []
        if !mask.isEmpty { parts.append("mask " + Self.layersText(mask)) }
        if !force.isEmpty { parts.append("force " + Self.layersText(force)) }
        if let n = expertsPerToken { parts.append("\(n) expert\(n == 1 ? "" : "s") per token") }
        if !sharedExpert { parts.append("no shared expert") }
        return parts.isEmpty ? "none" : parts.joined(separator: " · ")
    }

    /// The command-line flags that ask for these interventions.
    public var flags: [String] {
        var out: [String] = []
        if !mask.isEmpty { out += ["--mask-experts", Self.layersText(mask)] }
        if !force.isEmpty { out += ["--force-experts", Self.layersText(force)] }
        if let n = expertsPerToken { out += ["--experts-per-token", String(n)] }
        if !sharedExpert { out.append("--no-shared-expert") }
        return out
    }

    // MARK: - JSON

    /// `{"mask": {"3": [5, 7]}, "force": {…}, "top_k": N, "shared": false}`, members only where
    /// they differ from the model's own routing (a server request's `experts`, a transcript's).
    public var json: JSONValue {
        func table(_ t: [Int: [Int]]) -> JSONValue {
            .object(t.keys.sorted().map { (String($0), .array(t[$0]!.map { .int($0) })) })
        }
        var members: [(key: String, value: JSONValue)] = []
        if !mask.isEmpty { members.append(("mask", table(mask))) }
        if !force.isEmpty { members.append(("force", table(force))) }
        if let n = expertsPerToken { members.append(("top_k", .int(n))) }
        if !sharedExpert { members.append(("shared", .bool(false))) }
        return .object(members)
    }

    /// Reads what `json` writes. Unknown members, and values of the wrong type, are errors
    /// naming them (a request that asks for a change it does not get must not pass silently).
    public init(json: JSONValue) throws {
        guard let members = json.members else { throw InterventionError("experts must be an object") }
        func table(_ value: JSONValue, _ what: String) throws -> [Int: [Int]] {
            guard let entries = value.members else {
                throw InterventionError("experts.\(what) must be an object of layer: [experts]")
            }
            var out: [Int: [Int]] = [:]
            for (key, list) in entries {
                guard let layer = Int(key) else { throw InterventionError("experts.\(what): '\(key)' is not a layer number") }
                guard let items = list.array else { throw InterventionError("experts.\(what).\(key) must be an array of experts") }
                var experts: [Int] = []
                for item in items {
                    guard case let .int(e) = item else {
                        throw InterventionError("experts.\(what).\(key): \(item.serialized) is not an expert number")
                    }
                    experts.append(e)
                }
                out[layer, default: []] += experts
            }
            return out
        }
        var mask: [Int: [Int]] = [:], force: [Int: [Int]] = [:], n: Int?, shared = true
        for (key, value) in members {
            switch key {
            case "mask": mask = try table(value, "mask")
            case "force": force = try table(value, "force")
            case "top_k":
                if value.isNull { continue }
                guard case let .int(v) = value else { throw InterventionError("experts.top_k must be an integer") }
                n = v
            case "shared":
                guard let b = value.bool else { throw InterventionError("experts.shared must be true or false") }
                shared = b
            default:
                throw InterventionError("experts: unknown member '\(key)' (known: mask, force, top_k, shared)")
            }
        }
        self.init(mask: mask, force: force, expertsPerToken: n, sharedExpert: shared)
    }
}

/// An intervention that does not fit the model, or text that does not spell one. `field` names
/// the part at fault in the JSON's words (`mask`, `force`, `top_k`, `shared`) when it is one part;
/// a front end may name it its own way (`named`), e.g. by the command-line flag.
public struct InterventionError: Error, CustomStringConvertible, Equatable {
    public let field: String?
    public let message: String
    public init(_ message: String, field: String? = nil) {
        self.field = field
        self.message = message
    }
    public var description: String { field.map { "\($0): \(message)" } ?? message }

    /// The description with `field` called `names[field]` (unchanged when it has no name there).
    public func named(_ names: [String: String]) -> String {
        field.map { "\(names[$0] ?? $0): \(message)" } ?? message
    }
}
