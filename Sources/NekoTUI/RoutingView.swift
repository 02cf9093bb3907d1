import Foundation
import NekoChat
import NekoRouting

/// The routing panel's views (Ctrl-R cycles them; Tab the scope; Ctrl-←/→ the layer):
/// - heat: one row per MoE layer, one cell per expert shaded by its share, then the layer's
///   load entropy H (bits; log2 E = perfectly even), MaxVio V and Jain's index J;
/// - coactivation: for the chosen layer, how often experts are chosen together (row-normalised);
/// - flow: top-1 expert at the chosen layer → top-1 at the next MoE layer;
/// - table: per layer the repeat rates against their random baselines, specialisation, the
///   mean shared gate and the mean router entropy;
/// or, in the inspector, one token's experts and weights per layer.
enum RoutingView {
    enum View: String, CaseIterable, Sendable { case heat, coactivation, flow, table }

    /// Columns of a heat row besides its cells: the layer label and the H, V and J figures.
    static let heatFigures = 21
    /// Fewest cells a heat row is drawn with (more experts than that are grouped into cells).
    static let minHeatCells = 8

    /// Columns the panel takes beside the chat when it may take at most `available`, or nil when
    /// the view cannot be shown in that width. Models with more experts than columns get cells
    /// of several experts each (heat) or their most-used experts (co-activation, flow).
    static func width(_ s: ScreenState, available: Int) -> Int? {
        let k = max(1, s.expertsPerToken)
        if s.inspector != nil, s.panelView == .heat {
            let wanted = max(30, 5 + 13 * k + 12, heatFigures + s.experts)
            if wanted <= available { return wanted }
            let compact = 5 + 9 * k + 12   // "e12 0.23 " per expert, no bars
            return compact <= available ? max(30, compact) : nil
        }
        switch s.panelView {
        case .heat:
            let cells = heatCells(experts: s.experts, columns: available - heatFigures).cells
            guard cells >= min(s.experts, minHeatCells) else { return nil }
            return min(available, max(30, heatFigures + cells))
        case .coactivation, .flow:
            let wanted = max(5 + s.experts + 6, 30)
            return wanted <= available ? wanted : available >= 30 ? available : nil
        case .table:
            return available >= 46 ? 46 : nil
        }
    }

    /// How a heat row of `experts` fits in `columns` cells: experts per cell and cells drawn.
    static func heatCells(experts: Int, columns: Int) -> (perCell: Int, cells: Int) {
        guard experts > 0 else { return (1, 0) }
        let columns = max(1, columns)
        let perCell = experts <= columns ? 1 : (experts + columns - 1) / columns
        return (perCell, (experts + perCell - 1) / perCell)
    }

    /// Rows the panel wants: title, ruler, one per layer (or expert), legend.
    static func height(_ s: ScreenState) -> Int {
        switch s.panelView {
        case .heat, .table: return s.backend.moeLayers.count + 3
        case .coactivation, .flow: return s.experts + 3
        }
    }

    static func heatGlyph(_ heat: Int) -> String { [" ", "·", "░", "░", "▒", "▒", "▓", "█"][max(0, min(7, heat))] }

    static func f(_ v: Double?, _ format: String = "%.2f") -> String { v.map { String(format: format, $0) } ?? "–" }

    static func draw(_ s: ScreenState, into g: inout CellGrid, x: Int, y: Int, width: Int, height: Int) {
        guard width > 0, height > 0 else { return }
        if let (id, index) = s.inspector { return drawInspector(s, id: id, index: index, into: &g, x: x, y: y, width: width, height: height) }
        let layers = s.backend.moeLayers
        guard !layers.isEmpty else {
            g.put("routing: this model has no MoE layers", x: x, y: y, style: .dim, maxX: x + width)
            return
        }
        guard s.backend.reportsRouting else {
            g.put("routing: this server does not report routing", x: x, y: y, style: .dim, maxX: x + width)
            return
        }
        guard let stats = s.routing.stats(s.routingScope) else {
            g.put("routing · \(s.panelView.rawValue) · nothing yet", x: x, y: y, style: .label, maxX: x + width)
            g.put("send a message to see which experts", x: x, y: y + 1, style: .dim, maxX: x + width)
            if height > 2 { g.put("each MoE layer chooses", x: x, y: y + 2, style: .dim, maxX: x + width) }
            return
        }
        let area = (x: x, y: y, w: width, h: height)
        switch s.panelView {
        case .heat: drawHeat(s, stats, into: &g, area)
        case .coactivation: drawMatrix(s, stats, flow: false, into: &g, area)
        case .flow: drawMatrix(s, stats, flow: true, into: &g, area)
        case .table: drawTable(s, stats, into: &g, area)
        }
    }

    static func title(_ s: ScreenState, _ text: String, into g: inout CellGrid, _ a: (x: Int, y: Int, w: Int, h: Int)) {
        g.put("\(s.panelView.rawValue) · \(s.routingScope.rawValue)\(text.isEmpty ? "" : " · " + text)", x: a.x, y: a.y, style: .label, maxX: a.x + a.w)
    }

    /// The index of the first expert of every 4th cell (`perCell` experts a cell), from column `x`.
    static func ruler(experts: Int, perCell: Int = 1, x: Int, y: Int, into g: inout CellGrid, maxX: Int) {
        let cells = (experts + perCell - 1) / perCell
        var ruler = ""
        var c = 0
        while c < cells {
            let label = String(c * perCell)
            ruler += label + String(repeating: " ", count: max(1, 4 - label.count))
            c += 4
        }
        g.put(String(ruler.prefix(cells)), x: x, y: y, style: .dim, maxX: maxX)
    }

    static func drawHeat(_ s: ScreenState, _ stats: RoutingStats, into g: inout CellGrid, _ a: (x: Int, y: Int, w: Int, h: Int)) {
        let layers = stats.moeLayers
        let (perCell, cells) = heatCells(experts: s.experts, columns: a.w - heatFigures)
        let grouping = perCell > 1 ? " · \(perCell)/cell" : ""
        title(s, "H ≤ \(String(format: "%.1f", log2(Double(max(1, s.experts)))))" + grouping, into: &g, a)
        if a.h > 1 { ruler(experts: s.experts, perCell: perCell, x: a.x + 4, y: a.y + 1, into: &g, maxX: a.x + a.w) }
        let rows = min(layers.count, max(0, a.h - 3))
        for slot in 0..<rows {
            let fig = stats.layer(slot)
            // Each cell: the tokens routed to its experts, shaded against the busiest cell.
            let sums = (0..<cells).map { c in fig.loadCounts[(c * perCell)..<min(fig.loadCounts.count, (c + 1) * perCell)].reduce(0, +) }
            let peak = sums.max() ?? 0
            let y = a.y + 2 + slot
            var col = g.put(String(format: "L%-2d ", layers[slot]), x: a.x, y: y, style: .label)
            for value in sums {
                let heat = peak > 0 ? Int((Double(value) / Double(peak) * 7).rounded()) : 0
                col = g.put(heatGlyph(heat), x: col, y: y, style: .heat(heat), maxX: a.x + a.w)
            }
            col = g.put(" H" + f(fig.entropyBits, "%.1f"), x: col, y: y, style: .dim, maxX: a.x + a.w)
            if col + 12 <= a.x + a.w {
                col = g.put(" V" + f(fig.maxViolation, "%.1f"), x: col, y: y, style: .dim)
                g.put(" J" + f(fig.jain), x: col, y: y, style: .dim)
            }
        }
        let legendY = a.y + 2 + rows
        guard legendY < a.y + a.h else { return }
        if rows < layers.count {
            g.put("+\(layers.count - rows) layers: Ctrl-T full view", x: a.x, y: legendY, style: .dim, maxX: a.x + a.w)
        } else if perCell > 1 {
            g.put("a cell: experts \(0)–\(perCell - 1), \(perCell)–\(2 * perCell - 1), … · Ctrl-T wider", x: a.x, y: legendY, style: .dim, maxX: a.x + a.w)
        } else {
            g.put(a.w >= 44 ? "█ most used · ░ few · H entropy V MaxVio J Jain" : "H entropy · V MaxVio · J Jain", x: a.x, y: legendY, style: .dim, maxX: a.x + a.w)
        }
    }

    /// Co-activation (row-normalised by the row expert's count) or top-1 flow to the next layer,
    /// for the chosen layer. Where the rows do not fit, the most-used experts are shown.
    static func drawMatrix(_ s: ScreenState, _ stats: RoutingStats, flow: Bool, into g: inout CellGrid, _ a: (x: Int, y: Int, w: Int, h: Int)) {
        let layers = stats.moeLayers
        let slot = max(0, min(layers.count - (flow ? 2 : 1), s.chosenSlot))
        let E = s.experts
        let matrix: [[Int]]
        let label: String
        if flow {
            guard layers.count >= 2 else { title(s, "needs two MoE layers", into: &g, a); return }
            matrix = stats.crossLayer[slot].counts
            label = "L\(layers[slot]) → L\(layers[slot + 1])"
        } else {
            matrix = stats.layer(slot).coactivation
            label = "L\(layers[slot])"
        }
        let fits = max(0, min(a.h - 3, a.w - 11))   // rows below the ruler; columns beside the labels and counts
        let order = Array(0..<E)
        var shown = order
        if E > fits {
            let load = stats.layer(slot).loadCounts
            shown = order.sorted { (load[$0], -$0) > (load[$1], -$1) }.prefix(fits).sorted()
        }
        title(s, label + (shown.count < E ? " · top \(shown.count) of \(E)" : ""), into: &g, a)
        if a.h > 1 {
            if shown.count == E { ruler(experts: E, x: a.x + 4, y: a.y + 1, into: &g, maxX: a.x + a.w) } else {
                g.put(flow ? "rows: top-1 here; columns: next layer" : "rows/columns: experts shown", x: a.x, y: a.y + 1, style: .dim, maxX: a.x + a.w)
            }
        }
        for (r, i) in shown.enumerated() {
            let y = a.y + 2 + r
            let row = matrix[i]
            let total = flow ? row.reduce(0, +) : row[i]
            var col = g.put(String(format: "e%-2d ", i), x: a.x, y: y, style: .label)
            for j in (shown.count == E ? order : shown) {
                let share = total > 0 ? Double(row[j]) / Double(total) : 0
                let heat = (!flow && i == j) ? 0 : Int((share * 7).rounded())
                col = g.put(!flow && i == j ? "╲" : heatGlyph(heat), x: col, y: y, style: !flow && i == j ? .dim : .heat(heat), maxX: a.x + a.w)
            }
            g.put(" \(total)", x: col, y: y, style: .dim, maxX: a.x + a.w)
        }
        let legendY = a.y + 2 + shown.count
        if legendY < a.y + a.h {
            g.put(a.w >= 50 ? (flow ? "share of each row's tokens · Ctrl-←/→ layer" : "share of the row expert's tokens · Ctrl-←/→ layer") : "share of row · Ctrl-←/→ layer",
                  x: a.x, y: legendY, style: .dim, maxX: a.x + a.w)
        }
    }

    static func drawTable(_ s: ScreenState, _ stats: RoutingStats, into g: inout CellGrid, _ a: (x: Int, y: Int, w: Int, h: Int)) {
        let layers = stats.moeLayers, E = s.experts, k = max(1, s.expertsPerToken)
        title(s, "random: rep1 \(f(RoutingAnalysis.randomRepeatTop1(experts: E))) repk \(f(RoutingAnalysis.randomRepeatTopK(experts: E, topK: min(k, E))))",
              into: &g, a)
        if a.h > 1 { g.put("      rep1  repk  spec  gate  H_rt", x: a.x, y: a.y + 1, style: .dim, maxX: a.x + a.w) }
        for slot in 0..<min(layers.count, max(0, a.h - 3)) {
            let fig = stats.layer(slot)
            let cells = [fig.repeatTop1, fig.repeatTopK, fig.specialisation, fig.sharedGateMean].map { f($0).padding(toLength: 5, withPad: " ", startingAt: 0) }
            let line = String(format: "L%-3d  ", layers[slot]) + cells.joined(separator: " ") + " " + f(fig.routerEntropyMean)
            g.put(line, x: a.x, y: a.y + 2 + slot, style: .text, maxX: a.x + a.w)
        }
        let legendY = a.y + 2 + min(layers.count, max(0, a.h - 3))
        if legendY < a.y + a.h {
            g.put("rep: same top-1 / any expert as the token before", x: a.x, y: legendY, style: .dim, maxX: a.x + a.w)
        }
    }

    static func bar(_ w: Float, width: Int) -> String {
        let eighths = Int((max(0, min(1, w)) * Float(width * 8)).rounded())
        let full = eighths / 8, rest = eighths % 8
        let parts = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
        return String(repeating: "█", count: full) + parts[rest] + String(repeating: " ", count: max(0, width - full - (rest > 0 ? 1 : 0)))
    }

    static func drawInspector(_ s: ScreenState, id: Int, index: Int, into g: inout CellGrid, x: Int, y: Int, width: Int, height: Int) {
        let steps = s.inspectable(id)
        guard index < steps.count else { return }
        let step = steps[index]
        g.put("token \(index + 1)/\(steps.count) \(step.token.debugDescription) id \(step.tokenId)", x: x, y: y, style: .selected, maxX: x + width)
        let k = step.experts.first?.count ?? 0
        let wide = width >= 5 + 13 * k + 12   // room for the weight bars
        let rows = min(step.layers.count, max(0, height - 1))
        for (slot, layer) in step.layers.enumerated() where slot < rows {
            let y = y + 1 + slot
            var col = g.put(String(format: "L%-2d ", layer), x: x, y: y, style: .label)
            let experts = step.experts[slot], weights = step.weights[slot]
            for (j, (e, w)) in zip(experts, weights).enumerated() {
                // Never a cut-off entry: the ones that do not fit are counted ("+3").
                let entry = (wide ? 4 + 4 : 4) + 5
                if col + entry + (j + 1 < experts.count ? 3 : 0) > x + width {
                    col = g.put("+\(experts.count - j) ", x: col, y: y, style: .dim, maxX: x + width)
                    break
                }
                // Plain styles: a heat style is drawn as a shade glyph by monochrome themes.
                col = g.put(String(format: "e%-3d", e), x: col, y: y, style: .label, maxX: x + width)
                if wide { col = g.put(bar(w, width: 4), x: col, y: y, style: .text, maxX: x + width) }
                col = g.put(String(format: "%.2f ", w), x: col, y: y, style: .dim, maxX: x + width)
            }
            if slot < step.sharedGate.count, !step.sharedGate[slot].isNaN {
                col = g.put(String(format: "g%.2f ", step.sharedGate[slot]), x: col, y: y, style: .dim, maxX: x + width)
            }
            if slot < step.routerEntropy.count {
                g.put(String(format: "H%.2f", step.routerEntropy[slot]), x: col, y: y, style: .dim, maxX: x + width)
            }
        }
        if rows < step.layers.count, height > rows + 1 {
            g.put("+\(step.layers.count - rows) layers: Ctrl-T full view", x: x, y: y + 1 + rows, style: .dim, maxX: x + width)
        }
    }
}
