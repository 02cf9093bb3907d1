import Foundation
import NekoJSON

/// The routing of a message's tokens in a transcript line, compactly: the MoE layers and k once,
/// the token ids and texts, then per (token, layer, rank) the experts (one byte each, two when
/// there are more than 256) and the float32 weights, little-endian and base64 — plus the shared
/// gates and router entropies per (token, layer) when recorded. About 0.6 kB per token for a
/// 16-layer, top-4 model; floats are kept exactly, so analyses of a saved chat equal the live ones.
public enum RoutingCodec {
    public struct FormatError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func encode(_ steps: [RoutingStep]) -> JSONValue {
        guard let first = steps.first else { return .null }
        let layers = first.layers, k = first.experts.first?.count ?? 0
        let wide = steps.contains { $0.experts.contains { $0.contains { $0 > 255 } } }
        var experts = Data(), weights = Data(), gates = Data(), entropies = Data()
        let hasGate = steps.allSatisfy { $0.sharedGate.count == layers.count }
        let hasEntropy = steps.allSatisfy { $0.routerEntropy.count == layers.count }
        func put(_ f: Float, _ d: inout Data) { withUnsafeBytes(of: f.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
        for s in steps {
            for slot in layers.indices {
                for r in 0..<k {
                    let e = slot < s.experts.count && r < s.experts[slot].count ? s.experts[slot][r] : 0
                    if wide { withUnsafeBytes(of: UInt16(clamping: e).littleEndian) { experts.append(contentsOf: $0) } } else { experts.append(UInt8(clamping: e)) }
                    put(slot < s.weights.count && r < s.weights[slot].count ? s.weights[slot][r] : 0, &weights)
                }
                if hasGate { put(s.sharedGate[slot], &gates) }
                if hasEntropy { put(s.routerEntropy[slot], &entropies) }
            }
        }
        var fields: [(String, JSONValue)] = [
            ("layers", .array(layers.map { .int($0) })), ("k", .int(k)), ("count", .int(steps.count)),
            ("prompt", .int(steps.prefix { $0.isPrompt }.count)),
            ("ids", .array(steps.map { .int($0.tokenId) })), ("tokens", .array(steps.map { .string($0.token) })),
            ("expert_bytes", .int(wide ? 2 : 1)), ("experts", .string(experts.base64EncodedString())),
            ("weights", .string(weights.base64EncodedString())),
        ]
        if hasGate { fields.append(("shared_gate", .string(gates.base64EncodedString()))) }
        if hasEntropy { fields.append(("router_entropy", .string(entropies.base64EncodedString()))) }
        return .object(fields)
    }

    public static func decode(_ v: JSONValue) throws -> [RoutingStep] {
        if v.isNull { return [] }
        func fail(_ m: String) -> FormatError { FormatError(description: m) }
        guard let layers = v["layers"]?.array?.compactMap(\.int), let k = v["k"]?.int, let n = v["count"]?.int,
              k >= 0, k <= 1024, n >= 0, n <= 10_000_000, layers.count <= 4096 else { throw fail("missing layers, k or count") }
        // Tokens with no cells would cost nothing to write and millions of empty steps to read.
        guard n == 0 || (k > 0 && !layers.isEmpty) else { throw fail("\(n) tokens with \(layers.count) layers and k \(k)") }
        let width = v["expert_bytes"]?.int ?? 1
        guard width == 1 || width == 2 else { throw fail("expert_bytes must be 1 or 2") }
        func bytes(_ key: String, per: Int) throws -> Data? {
            guard let text = v[key]?.string else { return nil }
            guard let d = Data(base64Encoded: text) else { throw fail("\(key) is not base64") }
            guard d.count == n * per else { throw fail("\(key) holds \(d.count) bytes, expected \(n * per)") }
            return d
        }
        let cells = layers.count * k
        guard let experts = try bytes("experts", per: cells * width), let weights = try bytes("weights", per: cells * 4) else {
            throw fail("missing experts or weights")
        }
        let gates = try bytes("shared_gate", per: layers.count * 4), entropies = try bytes("router_entropy", per: layers.count * 4)
        let ids = v["ids"]?.array?.compactMap(\.int) ?? []
        let texts = v["tokens"]?.array?.compactMap(\.string) ?? []
        let prompt = v["prompt"]?.int ?? 0
        func float(_ d: Data, _ i: Int) -> Float {
            Float(bitPattern: UInt32(d[d.startIndex + 4 * i]) | UInt32(d[d.startIndex + 4 * i + 1]) << 8
                  | UInt32(d[d.startIndex + 4 * i + 2]) << 16 | UInt32(d[d.startIndex + 4 * i + 3]) << 24)
        }
        func expert(_ i: Int) -> Int {
            width == 1 ? Int(experts[experts.startIndex + i])
                : Int(experts[experts.startIndex + 2 * i]) | Int(experts[experts.startIndex + 2 * i + 1]) << 8
        }
        var steps: [RoutingStep] = []
        steps.reserveCapacity(n)
        for t in 0..<n {
            var s = RoutingStep(layers: layers, experts: [], weights: [], tokenId: t < ids.count ? ids[t] : -1,
                                token: t < texts.count ? texts[t] : "", isPrompt: t < prompt)
            for slot in layers.indices {
                let base = (t * layers.count + slot) * k
                s.experts.append((0..<k).map { expert(base + $0) })
                s.weights.append((0..<k).map { float(weights, base + $0) })
                if let gates { s.sharedGate.append(float(gates, t * layers.count + slot)) }
                if let entropies { s.routerEntropy.append(float(entropies, t * layers.count + slot)) }
            }
            steps.append(s)
        }
        return steps
    }
}
