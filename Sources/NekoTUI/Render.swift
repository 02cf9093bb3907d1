import Foundation

/// Draws the whole screen into a grid: stats bar, messages, routing panel, input box.
/// Layout adapts to the size; below 20×6 it only says the window is too small.
public enum ChatView {
    public static let minWidth = 20, minHeight = 6

    public static func render(_ s: ScreenState, width: Int, height: Int) -> CellGrid {
        var g = CellGrid(width: width, height: height)
        guard width >= minWidth, height >= minHeight else {
            g.put(width >= 16 ? "window too small" : "too small", x: 0, y: 0, style: .error)
            return g
        }
        // Input box: a border line and up to 5 lines of text.
        let inputLines = wrapInput(s.input, width: width - 2)
        let inputHeight = min(5, max(1, inputLines.count), height - 3) + 1
        let statsY = 0
        let inputTop = height - inputHeight
        drawStats(s, into: &g, y: statsY, width: width)

        var messagesRect = (x: 0, y: 1, w: width, h: inputTop - 1)
        // Wide enough for a heat cell per expert, or for the inspector's "eN 0.00" per chosen expert.
        let chosen = s.tokenRouting.values.first?.first?.experts.first?.count ?? 2
        let panelWidth = max(4 + s.experts + 8, 5 + 8 * chosen)
        if s.showRouting, s.routingScope != .off, s.routing.layers.count > 0 || s.experts > 0 {
            let rows = max(1, s.routing.layers.count) + 1
            if width >= 70, width - panelWidth >= 40 {
                drawRouting(s, into: &g, x: width - panelWidth, y: 1, width: panelWidth, height: inputTop - 1)
                messagesRect.w = width - panelWidth - 1
                for y in 1..<inputTop { g.put("│", x: width - panelWidth - 1, y: y, style: .border) }
            } else if height >= 20, inputTop - 1 - rows >= 6 {
                messagesRect.h -= rows
                drawRouting(s, into: &g, x: 0, y: inputTop - rows, width: width, height: rows)
            }
        }
        drawMessages(s, into: &g, rect: messagesRect)
        drawInput(s, lines: inputLines, into: &g, top: inputTop, width: width)
        return g
    }

    static func drawStats(_ s: ScreenState, into g: inout CellGrid, y: Int, width: Int) {
        g.fill(x: 0, y: y, width: width, height: 1, style: .status)
        let st = s.stats
        // A long model name gives way to the figures on narrow screens.
        let limit = max(6, min(24, width / 4))
        let name = s.modelName.count > limit ? String(s.modelName.prefix(limit - 1)) + "…" : s.modelName
        let parts = [
            name, s.status.label,
            String(format: "prefill %.1f tok/s", st.prefillTokensPerSecond),
            String(format: "decode %.1f tok/s", st.decodeTokensPerSecond),
            "ctx \(st.contextUsed)/\(st.contextSize)",
        ]
        g.put(" " + parts.joined(separator: " │ "), x: 0, y: y, style: .status)
    }

    static func header(_ m: DisplayMessage) -> (String, StyleRole) {
        switch m.kind {
        case .user: ("you", .user)
        case .assistant: ("neko" + (m.stopped ? " (stopped)" : "") + (m.tokensPerSecond > 0 ? String(format: " · %.1f tok/s", m.tokensPerSecond) : ""), .assistant)
        case .system: ("system", .system)
        case .notice: ("·", .notice)
        case .error: ("error", .error)
        }
    }

    /// The lines of one message (header, wrapped body, blank line).
    static func lines(of m: DisplayMessage, width: Int) -> [(String, StyleRole)] {
        var lines: [(String, StyleRole)] = []
        let (title, style) = header(m)
        do {
            if m.kind == .notice || m.kind == .error {
                for l in wrap(title + " " + m.text, width: width) { lines.append((l, style)) }
            } else {
                lines.append((title, style))
                let body = m.kind == .assistant ? .text : style == .user ? StyleRole.text : style
                for l in wrap(m.text, width: max(1, width - 2)) { lines.append(("  " + l, body)) }
            }
            lines.append(("", .text))
        }
        return lines
    }

    /// The last `needed` lines of the conversation (or all, if fewer): only the messages that
    /// can show are wrapped, so a long conversation costs nothing per frame.
    static func messageLines(_ s: ScreenState, width: Int, needed: Int = .max) -> [(String, StyleRole)] {
        var out: [(String, StyleRole)] = []
        for m in s.messages.reversed() {
            out.insert(contentsOf: lines(of: m, width: width), at: 0)
            if out.count >= needed { break }
        }
        return out
    }

    static func drawMessages(_ s: ScreenState, into g: inout CellGrid, rect: (x: Int, y: Int, w: Int, h: Int)) {
        guard rect.h > 0, rect.w > 0 else { return }
        let lines = messageLines(s, width: rect.w, needed: rect.h + s.scrollBack)
        let bottom = max(0, lines.count - s.scrollBack)
        let top = max(0, bottom - rect.h)
        for (i, line) in lines[top..<bottom].enumerated() {
            g.put(line.0, x: rect.x, y: rect.y + i, style: line.1, maxX: rect.x + rect.w)
        }
        if s.scrollBack > 0 {
            g.put("↓ \(s.scrollBack) more", x: rect.x + max(0, rect.w - 12), y: rect.y + rect.h - 1, style: .dim, maxX: rect.x + rect.w)
        }
    }

    /// One row per MoE layer (`L<index>`), one cell per expert shaded by its share, then the
    /// load balance as the entropy of the layer's counts in bits (uniform = log2(experts)).
    static func drawRouting(_ s: ScreenState, into g: inout CellGrid, x: Int, y: Int, width: Int, height: Int) {
        if let (id, index) = s.inspector, let steps = s.tokenRouting[id], index < steps.count {
            // The inspector: one token's experts and weights per layer.
            let step = steps[index]
            g.put("token \(index + 1)/\(steps.count) \(step.token.debugDescription)", x: x, y: y, style: .selected, maxX: x + width)
            for (slot, layer) in step.layers.enumerated() where slot + 1 < height {
                var col = g.put(String(format: "L%-2d ", layer), x: x, y: y + 1 + slot, style: .label)
                for (e, w) in zip(step.experts[slot], step.weights[slot]) {
                    col = g.put(String(format: "e%d %.2f ", e, w), x: col, y: y + 1 + slot, style: .heat(Int((w * 7).rounded())), maxX: x + width)
                }
            }
            return
        }
        g.put("routing · \(s.routingScope.rawValue)", x: x, y: y, style: .label, maxX: x + width)
        let counts = s.routing.counts(s.routingScope)
        for (slot, layer) in s.routing.layers.enumerated() where slot + 1 < height {
            let row = counts[slot]
            let total = row.reduce(0, +), peak = row.max() ?? 0
            var col = g.put(String(format: "L%-2d ", layer), x: x, y: y + 1 + slot, style: .label)
            for value in row {
                let heat = peak > 0 ? Int((value / peak * 7).rounded()) : 0
                col = g.put(heatGlyph(heat), x: col, y: y + 1 + slot, style: .heat(heat))
            }
            let entropy = total > 0 ? -row.filter { $0 > 0 }.reduce(0.0) { $0 + ($1 / total) * log2($1 / total) } : 0
            g.put(String(format: " H%.1f", entropy), x: col, y: y + 1 + slot, style: .dim, maxX: x + width)
        }
    }

    static func heatGlyph(_ heat: Int) -> String { [" ", "·", "░", "░", "▒", "▒", "▓", "█"][max(0, min(7, heat))] }

    static func wrapInput(_ e: LineEditor, width: Int) -> [String] {
        e.isEmpty ? [""] : wrap(e.string, width: max(1, width))
    }

    static func drawInput(_ s: ScreenState, lines: [String], into g: inout CellGrid, top: Int, width: Int) {
        let hint = s.inspector != nil ? " ←/→ token · Esc leaves the inspector " : s.isBusy ? " Esc stops " : " Enter sends · Alt-Enter newline · /help "
        g.fill(x: 0, y: top, width: width, height: 1, style: .border, text: "─")
        if displayWidth(hint) + 4 <= width { g.put(hint, x: width - displayWidth(hint) - 1, y: top, style: .dim) }
        let visible = Array(lines.suffix(g.height - top - 1))
        for (i, line) in visible.enumerated() {
            g.put(i == 0 && visible.count == lines.count ? "> " : "  ", x: 0, y: top + 1 + i, style: .user)
            g.put(line, x: 2, y: top + 1 + i, style: .text)
        }
    }
}
