import Foundation
import NekoChat

/// The routing panel: one row per MoE layer (`L<index>`), one cell per expert shaded by its
/// share, and the layer's load entropy in bits (log2 E = perfectly even); or, in the
/// inspector, one token's experts and weights per layer.
enum RoutingView {
    /// Columns the panel needs to show every expert of every layer.
    static func width(_ s: ScreenState) -> Int {
        let k = max(1, s.backend.expertsPerToken)
        return max(5 + s.experts + 7, 5 + 8 * k, 26)
    }

    /// Rows the panel needs: title, ruler, one per layer, legend.
    static func height(_ s: ScreenState) -> Int { s.backend.moeLayers.count + 3 }

    static func heatGlyph(_ heat: Int) -> String { [" ", "·", "░", "░", "▒", "▒", "▓", "█"][max(0, min(7, heat))] }

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
        let maxH = log2(Double(max(1, s.experts)))
        g.put("routing · \(s.routingScope.rawValue) · H ≤ \(String(format: "%.1f", maxH))", x: x, y: y, style: .label, maxX: x + width)
        // The ruler: every 4th expert's index.
        if height > 1 {
            var ruler = ""
            var e = 0
            while e < s.experts {
                let label = String(e)
                ruler += label + String(repeating: " ", count: max(1, 4 - label.count))
                e += 4
            }
            g.put("    " + String(ruler.prefix(s.experts)), x: x, y: y + 1, style: .dim, maxX: x + width)
        }
        let counts = s.routing.counts(s.routingScope)
        let rows = min(layers.count, max(0, height - 3))
        for slot in 0..<rows {
            let row = slot < counts.count ? counts[slot] : Array(repeating: 0, count: s.experts)
            let total = row.reduce(0, +), peak = row.max() ?? 0
            var col = g.put(String(format: "L%-2d ", layers[slot]), x: x, y: y + 2 + slot, style: .label)
            for value in row {
                let heat = peak > 0 ? Int((value / peak * 7).rounded()) : 0
                col = g.put(heatGlyph(heat), x: col, y: y + 2 + slot, style: .heat(heat))
            }
            let entropy = total > 0 ? -row.filter { $0 > 0 }.reduce(0.0) { $0 + ($1 / total) * log2($1 / total) } : 0
            g.put(total > 0 ? String(format: " H%.1f", entropy) : " H –", x: col, y: y + 2 + slot, style: .dim, maxX: x + width)
        }
        let legendY = y + 2 + rows
        if rows < layers.count, legendY < y + height {
            g.put("+\(layers.count - rows) layers: Ctrl-T full view", x: x, y: legendY, style: .dim, maxX: x + width)
        } else if legendY < y + height {
            g.put("█ most used ▒ some · rare", x: x, y: legendY, style: .dim, maxX: x + width)
        }
    }

    static func drawInspector(_ s: ScreenState, id: Int, index: Int, into g: inout CellGrid, x: Int, y: Int, width: Int, height: Int) {
        let steps = s.inspectable(id)
        guard index < steps.count else { return }
        let step = steps[index]
        g.put("token \(index + 1)/\(steps.count) \(step.token.debugDescription)", x: x, y: y, style: .selected, maxX: x + width)
        for (slot, layer) in step.layers.enumerated() where slot + 1 < height {
            var col = g.put(String(format: "L%-2d ", layer), x: x, y: y + 1 + slot, style: .label)
            for (e, w) in zip(step.experts[slot], step.weights[slot]) {
                col = g.put(String(format: "e%d %.2f ", e, w), x: col, y: y + 1 + slot, style: .heat(Int((w * 7).rounded())), maxX: x + width)
            }
        }
    }
}
