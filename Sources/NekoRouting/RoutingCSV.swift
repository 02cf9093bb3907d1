/// The routing trace as CSV, one row per (token, layer, rank):
/// `token_index,token_id,layer,rank,expert,weight` (Sources/NekoRouting/README.md; the shape of llama.cpp's proposed
/// `moe-trace`, loadable by pandas). Weights are written as the shortest text that reads back as
/// the same Float.
///
/// The six columns carry neither sequence boundaries, nor shared gates, nor router entropies.
/// With `sequenceColumn` a seventh column `sequence` gives each token's sequence (0-based index
/// into `trace.sequences`), so that a trace read back keeps its boundaries (and so its repeat
/// rates and per-file loads); the names do not travel (read back: "sequence 1", "sequence 2", …).
public enum RoutingCSV {
    /// The header line of the six-column form.
    public static let header = "token_index,token_id,layer,rank,expert,weight"

    /// The CSV text of `trace`: the header line, then the rows by token, layer, rank; every line
    /// ends in "\n".
    public static func write(_ trace: RoutingTrace, sequenceColumn: Bool = false) -> String {
        var out = header + (sequenceColumn ? ",sequence\n" : "\n")
        var sequenceOf = [Int](repeating: 0, count: trace.count)
        for (i, s) in trace.sequences.enumerated() { for t in s.tokens { sequenceOf[t] = i } }
        for t in 0..<trace.count {
            let prefix = "\(t),\(trace.tokenID(t)),"
            let suffix = sequenceColumn ? ",\(sequenceOf[t])\n" : "\n"
            for (slot, layer) in trace.moeLayers.enumerated() {
                for r in 0..<trace.topK {
                    out += prefix + "\(layer),\(r),\(trace.expert(token: t, slot: slot, rank: r)),"
                    out += "\(trace.weight(token: t, slot: slot, rank: r))" + suffix
                }
            }
        }
        return out
    }

    /// Reads a CSV written by `write` (or any with the same columns, rows of one token together,
    /// tokens in order 0, 1, 2, …; within a token any order). The MoE layers and k come from the
    /// first token; E is `experts`, or when nil the largest expert seen + 1 (which undercounts E
    /// when the last experts were never chosen: pass it from the model's config when you can).
    /// A CSV without rows is an error (nothing says which layers or how many experts).
    public static func parse(_ text: String, experts: Int? = nil) throws -> RoutingTrace {
        var rows: [Row] = []
        var hasSequence = false
        var sawHeader = false
        var lineNumber = 0, headerLine = 1
        for raw in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(decoding: raw, as: UTF8.self)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty { continue }
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            if !sawHeader {
                let names = fields.map(String.init)
                guard names.count >= 6, names.prefix(6).joined(separator: ",") == header,
                      names.count == 6 || (names.count == 7 && names[6] == "sequence") else {
                    throw RoutingError.csv(line: lineNumber,
                                           "header \"\(line)\" is not \"\(header)\" (optionally \",sequence\")")
                }
                sawHeader = true
                headerLine = lineNumber
                hasSequence = names.count == 7
                continue
            }
            guard fields.count == (hasSequence ? 7 : 6) else {
                throw RoutingError.csv(line: lineNumber, "\(fields.count) fields, expected \(hasSequence ? 7 : 6)")
            }
            func int(_ i: Int, _ name: String) throws -> Int {
                guard let v = Int(fields[i]) else {
                    throw RoutingError.csv(line: lineNumber, "\(name) \"\(fields[i])\" is not an integer")
                }
                return v
            }
            guard let w = Float(fields[5]) else {
                throw RoutingError.csv(line: lineNumber, "weight \"\(fields[5])\" is not a number")
            }
            rows.append(Row(line: lineNumber, token: try int(0, "token_index"), id: try int(1, "token_id"),
                            layer: try int(2, "layer"), rank: try int(3, "rank"), expert: try int(4, "expert"),
                            weight: w, sequence: hasSequence ? try int(6, "sequence") : 0))
        }
        guard sawHeader else { throw RoutingError.csv(line: 1, "no header line") }
        guard !rows.isEmpty else { throw RoutingError.csv(line: headerLine, "no rows after the header: no token to analyse") }
        return try build(rows, experts: experts, named: hasSequence)
    }

    private struct Row {
        var line, token, id, layer, rank, expert: Int
        var weight: Float
        var sequence: Int
    }

    private static func build(_ rows: [Row], experts: Int?, named: Bool) throws -> RoutingTrace {
        // The first token fixes the layers and k.
        let first = rows.prefix { $0.token == rows[0].token }
        let layers = Array(Set(first.map(\.layer))).sorted()
        let k = first.count / max(1, layers.count)
        let E = experts ?? (rows.map(\.expert).max()! + 1)
        var trace: RoutingTrace
        do {
            trace = try RoutingTrace(moeLayers: layers, experts: E, topK: k)
        } catch let e as RoutingError {
            throw RoutingError.csv(line: rows[0].line, "\(e)")
        }
        var i = 0, sequences = 0
        while i < rows.count {
            let head = rows[i]
            var j = i
            while j < rows.count, rows[j].token == head.token { j += 1 }
            let group = rows[i..<j]
            func fail(_ m: String) -> RoutingError { .csv(line: head.line, "token_index \(head.token): \(m)") }
            guard head.token == trace.count else {
                throw fail(head.token < trace.count ? "rows of this token are not together, or it repeats"
                                                    : "expected token_index \(trace.count) (tokens in order, none missing)")
            }
            if let odd = group.first(where: { $0.id != head.id || $0.sequence != head.sequence }) {
                throw RoutingError.csv(line: odd.line, "token_index \(head.token): token_id or sequence differs from line \(head.line)")
            }
            var experts = [Int](repeating: -1, count: layers.count * k)
            var weights = [Float](repeating: 0, count: layers.count * k)
            for r in group {
                guard let slot = layers.firstIndex(of: r.layer) else {
                    throw RoutingError.csv(line: r.line, "layer \(r.layer) is not among the first token's layers \(layers)")
                }
                guard (0..<k).contains(r.rank), experts[slot * k + r.rank] < 0 else {
                    throw RoutingError.csv(line: r.line, "rank \(r.rank) of layer \(r.layer) is out of 0…\(k - 1) or repeated")
                }
                experts[slot * k + r.rank] = r.expert
                weights[slot * k + r.rank] = r.weight
            }
            guard group.count == layers.count * k else {
                throw fail("\(group.count) rows, expected \(layers.count) layers × top-k \(k)")
            }
            if named {
                guard head.sequence >= max(0, sequences - 1) else {
                    throw fail("sequence \(head.sequence): sequences are numbered from 0 and never go back")
                }
                while sequences <= head.sequence {
                    sequences += 1
                    trace.beginSequence(named: "sequence \(sequences)")
                }
            }
            do {
                try trace.append(tokenID: head.id, layers: (0..<layers.count).map { slot in
                    LayerRouting(experts: Array(experts[(slot * k)..<(slot * k + k)]),
                                 weights: Array(weights[(slot * k)..<(slot * k + k)]))
                })
            } catch let e as RoutingError {
                throw fail("\(e)")
            }
            i = j
        }
        return trace
    }
}
