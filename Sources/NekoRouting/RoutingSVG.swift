#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The figures of `nekochat routing --svg DIR` as self-contained SVG 1.1 documents (no script, no
/// external font or style), readable from 4 layers × 8 experts to 16 layers × 32 experts. Every
/// cell carries a `<title>` tooltip with its exact value.
public enum RoutingSVG {
    /// Every figure with its file name: `load.svg`, `coactivation_layer_L.svg` per MoE layer,
    /// `cross_layer_A_B.svg` per pair of consecutive MoE layers, `by_file.svg`.
    public static func figures(_ report: RoutingReport) -> [(name: String, svg: String)] {
        [("load.svg", loadHeatMap(report))]
            + report.layers.map { ("coactivation_layer_\($0.layer).svg", coactivation($0)) }
            + report.crossLayer.map { ("cross_layer_\($0.from)_\($0.to).svg", crossLayer($0)) }
            + [("by_file.svg", fileShares(report))]
    }

    /// The load heat map: one row per MoE layer, one column per expert, colour = load (share of
    /// the N·k choices, 0 … the largest), each row's entropy beside it, a colour legend marking
    /// the even share 1/E.
    public static func loadHeatMap(_ report: RoutingReport) -> String {
        let E = report.experts, L = report.layers.count
        let cw = clamp(Double(720 / E), 18, 44), ch = min(cw, 28)
        let left = 70.0, top = 84.0, gridW = cw * Double(E), gridH = ch * Double(L)
        let even = 1 / Double(E)
        let high = max(report.layers.compactMap { $0.load?.max() }.max() ?? even, 1e-12)
        var c = SVGCanvas()
        c.text("Expert load per MoE layer", x: left, y: 24, size: 16, bold: true)
        c.text("\(report.tokens) tokens · top-\(report.topK) of \(E) experts · colour: share of the tokens' "
               + "\(report.topK) choices (even = 1/\(E) = \(percent(even, 1)))", x: left, y: 44, size: 11, fill: "#555555")
        c.text("entropy of the load: log2 \(E) = \(fixed(log2(Double(E)), 2)) bits when even", x: left, y: 60, size: 11,
               fill: "#555555")
        c.text("entropy", x: left + gridW + 10, y: top - 8, size: 11, bold: true)
        for (r, f) in report.layers.enumerated() {
            let y = top + Double(r) * ch
            c.text("layer \(f.layer)", x: left - 8, y: y + ch / 2 + 4, size: 11, anchor: .end)
            for e in 0..<E {
                let x = left + Double(e) * cw
                guard let load = f.load else {
                    c.rect(x: x, y: y, width: cw, height: ch, fill: "#dddddd", stroke: "#ffffff",
                           tooltip: "layer \(f.layer), expert \(e): no tokens", cell: true)
                    continue
                }
                let t = load[e] / high
                c.rect(x: x, y: y, width: cw, height: ch, fill: viridis(t), stroke: "#ffffff",
                       tooltip: "layer \(f.layer), expert \(e): \(percent(load[e], 2)) of the choices (\(f.loadCounts[e]) tokens)", cell: true)
                if E <= 16 {
                    c.text(percent(load[e], cw >= 40 ? 1 : 0), x: x + cw / 2, y: y + ch / 2 + 3.5, size: 9.5,
                           anchor: .middle, fill: textColour(onViridis: t))
                }
            }
            let entropy = f.entropyBits.map { "\(fixed($0, 2)) bits" } ?? "no tokens"
            c.text(entropy, x: left + gridW + 10, y: y + ch / 2 + 4, size: 11)
        }
        expertAxis(&c, experts: E, x: left, y: top + gridH, cell: cw, title: "expert")
        let barX = left + gridW + 110, barH = max(gridH, 120)
        c.colourBar(x: barX, y: top, height: barH, low: 0, high: high, label: "load",
                    format: { percent($0, 1) }, marker: (even, "even"))
        return c.document(width: barX + 70, height: top + max(gridH + 46, barH + 20), title: "Expert load per MoE layer")
    }

    /// Co-activation of one layer: cell (i, j) = share of the tokens that chose i which also
    /// chose j (OLMoE's figure, row-normalised); the diagonal (tokens that chose i) is grey and
    /// its count is the row's total on the right.
    public static func coactivation(_ f: LayerFigures) -> String {
        let m = f.coactivation, E = m.count
        var high = 0.0
        for i in 0..<E where m[i][i] > 0 {
            for j in 0..<E where j != i { high = max(high, Double(m[i][j]) / Double(m[i][i])) }
        }
        let k = f.tokens > 0 ? f.loadCounts.reduce(0, +) / f.tokens : 0
        return matrixFigure(
            title: "Co-activation, layer \(f.layer)",
            subtitle: "\(f.tokens) tokens · cell (i, j): share of the tokens that chose i that also chose j"
                + (k == 1 ? " (top-1: none)" : ""),
            rowAxis: "expert i", columnAxis: "expert j (also chosen)", size: E, high: high, greyDiagonal: true,
            value: { i, j in i == j || m[i][i] == 0 ? nil : Double(m[i][j]) / Double(m[i][i]) },
            tooltip: { i, j in
                i == j ? "expert \(i): chosen by \(m[i][i]) tokens"
                    : "\(m[i][j]) tokens chose both \(i) and \(j)"
                    + (m[i][i] > 0 ? " (\(percent(Double(m[i][j]) / Double(m[i][i]), 1)) of \(i)'s)" : "")
            },
            rowTotals: (0..<E).map { m[$0][$0] }, rowTotalsTitle: "tokens", columnTotals: nil)
    }

    /// The top-1 flow between consecutive MoE layers: cell (i, j) = share of the tokens with top-1
    /// i at `from` whose top-1 at `to` is j, with the row and column totals.
    public static func crossLayer(_ flow: CrossLayerFlow) -> String {
        let m = flow.counts, E = m.count
        let rows = m.map { $0.reduce(0, +) }
        let columns = (0..<E).map { j in m.reduce(0) { $0 + $1[j] } }
        var high = 0.0
        for i in 0..<E where rows[i] > 0 { for j in 0..<E { high = max(high, Double(m[i][j]) / Double(rows[i])) } }
        return matrixFigure(
            title: "Top-1 flow, layer \(flow.from) → layer \(flow.to)",
            subtitle: "\(rows.reduce(0, +)) tokens · cell (i, j): share of the tokens with top-1 i at layer "
                + "\(flow.from) whose top-1 at layer \(flow.to) is j",
            rowAxis: "top-1 at layer \(flow.from)", columnAxis: "top-1 at layer \(flow.to)", size: E, high: high,
            greyDiagonal: false,
            value: { i, j in rows[i] == 0 ? nil : Double(m[i][j]) / Double(rows[i]) },
            tooltip: { i, j in "\(m[i][j]) tokens: expert \(i) at layer \(flow.from) → expert \(j) at layer \(flow.to)" },
            rowTotals: rows, rowTotalsTitle: "tokens", columnTotals: columns)
    }

    /// Per-file expert shares (Mixtral's per-domain figure): one panel per MoE layer, a group of
    /// bars per expert, one bar per file; the dashed line is the even share 1/E.
    public static func fileShares(_ report: RoutingReport) -> String {
        let E = report.experts, F = max(1, report.byFile.count)
        let bar = clamp(Double(Int(720 / Double(E * F))) - 1, 2, 14)
        let group = bar * Double(F) + 3, plotW = group * Double(E)
        let left = 80.0, perRow = max(1, Int(max(plotW, 480) / 240))
        let legendRows = (report.byFile.count + perRow - 1) / perRow
        let top = 64 + 18 * Double(legendRows) + 10, plotH = 64.0, panel = plotH + 34
        let even = 1 / Double(E)
        let high = max(even * 1.25, report.byFile.flatMap { $0.load.compactMap { $0?.max() } }.max() ?? 0)
        var c = SVGCanvas()
        c.text("Expert share per file and MoE layer", x: left, y: 24, size: 16, bold: true)
        c.text("bar: share of the file's top-\(report.topK) choices that went to the expert · dashed: even share 1/\(E)",
               x: left, y: 44, size: 11, fill: "#555555")
        for (f, s) in report.byFile.enumerated() {
            let x = left + Double(f % perRow) * 240, y = 62 + 18 * Double(f / perRow)
            c.rect(x: x, y: y, width: 12, height: 12, fill: categorical(f), tooltip: s.name)
            let name = s.name.count > 26 ? String(s.name.prefix(25)) + "…" : s.name
            c.text("\(name) (\(s.tokens) tokens)", x: x + 17, y: y + 10.5, size: 11)
        }
        if report.byFile.isEmpty { c.text("no sequences", x: left, y: top + 20, size: 12) }
        for (slot, layer) in report.layers.map(\.layer).enumerated() {
            let y0 = top + Double(slot) * panel, base = y0 + plotH
            c.text("layer \(layer)", x: left - 10, y: y0 + plotH / 2 + 4, size: 11, anchor: .end, bold: true)
            c.line(x1: left, y1: base, x2: left + plotW, y2: base)
            c.line(x1: left, y1: y0, x2: left, y2: base)
            c.text(percent(high, 0), x: left - 4, y: y0 + 8, size: 9, anchor: .end, fill: "#555555")
            c.line(x1: left - 3, y1: y0, x2: left, y2: y0)
            c.text("0%", x: left - 4, y: base, size: 9, anchor: .end, fill: "#555555")
            for (f, s) in report.byFile.enumerated() {
                guard let load = s.load[slot] else { continue }
                for e in 0..<E {
                    let h = plotH * load[e] / high
                    c.rect(x: left + Double(e) * group + 1.5 + Double(f) * bar, y: base - h, width: bar, height: h,
                           fill: categorical(f),
                           tooltip: "\(s.name), layer \(layer), expert \(e): \(percent(load[e], 2))", cell: true)
                }
            }
            let ey = base - plotH * even / high
            c.line(x1: left, y1: ey, x2: left + plotW, y2: ey, stroke: "#d62728", width: 1, dashed: true)
            expertAxis(&c, experts: E, x: left, y: base, cell: group, title: nil)
        }
        let height = top + panel * Double(report.layers.count) + 14
        c.text("expert", x: left + plotW / 2, y: height - 14, size: 11, anchor: .middle)
        return c.document(width: left + max(plotW, Double(perRow) * 240) + 20, height: height,
                          title: "Expert share per file and MoE layer")
    }

    // MARK: pieces

    /// Expert numbers under a row of cells (every one, or every 2nd/4th when cells are narrow).
    private static func expertAxis(_ c: inout SVGCanvas, experts E: Int, x: Double, y: Double, cell: Double, title: String?) {
        let every = cell >= 16 ? 1 : cell >= 9 ? 2 : 4
        for e in stride(from: 0, to: E, by: every) {
            c.text("\(e)", x: x + (Double(e) + 0.5) * cell, y: y + 13, size: 10, anchor: .middle, fill: "#444444")
        }
        if let title { c.text(title, x: x + cell * Double(E) / 2, y: y + 30, size: 11, anchor: .middle) }
    }

    /// An E×E matrix: colour = value / high (nil values grey), row labels, row (and column)
    /// totals, values printed in the cells when E ≤ 12, a colour legend.
    private static func matrixFigure(title: String, subtitle: String, rowAxis: String, columnAxis: String,
                                     size E: Int, high: Double, greyDiagonal: Bool, value: (Int, Int) -> Double?,
                                     tooltip: (Int, Int) -> String, rowTotals: [Int], rowTotalsTitle: String,
                                     columnTotals: [Int]?) -> String {
        let cell = clamp(Double(560 / E), 14, 44), left = 76.0, top = 78.0, grid = cell * Double(E)
        let scale = high > 0 ? high : 1
        var c = SVGCanvas()
        c.text(title, x: left, y: 24, size: 16, bold: true)
        c.text(subtitle, x: left, y: 44, size: 11, fill: "#555555")
        c.text(rowAxis, x: 18, y: top + grid / 2, size: 11, anchor: .middle, rotate: -90)
        c.text(rowTotalsTitle, x: left + grid + 6, y: top - 8, size: 10, fill: "#555555")
        for i in 0..<E {
            let y = top + Double(i) * cell
            c.text("\(i)", x: left - 6, y: y + cell / 2 + 4, size: 10, anchor: .end, fill: "#444444")
            for j in 0..<E {
                let x = left + Double(j) * cell
                guard let v = value(i, j) else {
                    c.rect(x: x, y: y, width: cell, height: cell, fill: greyDiagonal && i == j ? "#bbbbbb" : "#e6e6e6",
                           stroke: "#ffffff", tooltip: tooltip(i, j), cell: true)
                    continue
                }
                let t = v / scale
                c.rect(x: x, y: y, width: cell, height: cell, fill: viridis(t), stroke: "#ffffff", tooltip: tooltip(i, j),
                       cell: true)
                if E <= 12 {
                    c.text(percent(v, 0), x: x + cell / 2, y: y + cell / 2 + 3.5, size: 9.5, anchor: .middle,
                           fill: textColour(onViridis: t))
                }
            }
            c.text("\(rowTotals[i])", x: left + grid + 6, y: y + cell / 2 + 4, size: 10, fill: "#444444")
        }
        expertAxis(&c, experts: E, x: left, y: top + grid, cell: cell, title: columnAxis)
        var bottom = top + grid + 40
        if let columnTotals {
            c.text(rowTotalsTitle, x: left - 6, y: bottom + 8, size: 10, anchor: .end, fill: "#555555")
            let every = cell >= 22 ? 1 : 2
            for j in stride(from: 0, to: E, by: every) {
                c.text("\(columnTotals[j])", x: left + (Double(j) + 0.5) * cell, y: bottom + 8, size: 9,
                       anchor: .middle, fill: "#444444")
            }
            bottom += 16
        }
        let barX = left + grid + 70, barH = max(grid, 120)
        c.colourBar(x: barX, y: top, height: barH, low: 0, high: scale, label: "share", format: { percent($0, 0) })
        return c.document(width: barX + 60, height: max(bottom, top + barH + 20) + 6, title: title)
    }

    private static func clamp(_ x: Double, _ lo: Double, _ hi: Double) -> Double { min(hi, max(lo, x)) }
}
