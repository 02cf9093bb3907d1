import Foundation
import NekoChat

/// Draws the whole screen into a grid: stats bar, messages, routing panel, input box — a pure
/// function of the state. Layout adapts to the size; below 20×6 it only says the window is too
/// small.
public enum ChatView {
    public static let minWidth = 20, minHeight = 6
    /// Lines of the input box at most (it scrolls to follow the cursor beyond).
    static let inputLines = 8

    /// Where everything goes at a size.
    struct Layout {
        var messages: (x: Int, y: Int, w: Int, h: Int)
        var panel: (x: Int, y: Int, w: Int, h: Int)?
        var separator: Int?
        /// The routing panel does not fit (and is not hidden by the user).
        var panelDoesNotFit = false
        var inputTop: Int
        var input: InputBox
    }

    static func layout(_ s: ScreenState, width: Int, height: Int) -> Layout {
        let box = InputBox(s.input, width: width - 2, maxLines: max(1, min(inputLines, height - 4)))
        let inputTop = height - box.visible.count - 1
        var l = Layout(messages: (0, 1, width, inputTop - 1), panel: nil, separator: nil, inputTop: inputTop, input: box)
        let wanted = s.panel != .hidden && !s.backend.moeLayers.isEmpty
        guard wanted else { return l }
        let middle = inputTop - 1
        let ph = RoutingView.height(s)
        if s.panel == .fullScreen {
            l.panel = (0, 1, width, middle)
            l.messages.h = 0
        } else if let pw = RoutingView.width(s, available: width - 41) {
            l.panel = (width - pw, 1, pw, middle)
            l.separator = width - pw - 1
            l.messages.w = width - pw - 1
        } else if middle - ph >= 6 {
            l.panel = (0, inputTop - ph, width, ph)
            l.messages.h = middle - ph
        } else if middle >= 12, width >= 30 {
            // Not every layer fits below the chat: as many as do, and a way to the rest.
            let rows = middle / 2
            l.panel = (0, inputTop - rows, width, rows)
            l.messages.h = middle - rows
        } else {
            l.panelDoesNotFit = true
            l.messages.h = middle - 1
        }
        return l
    }

    public static func render(_ s: ScreenState, width: Int, height: Int) -> CellGrid {
        var g = CellGrid(width: width, height: height)
        guard width >= minWidth, height >= minHeight else {
            g.put(width >= 16 ? "window too small" : "too small", x: 0, y: 0, style: .error)
            return g
        }
        let l = layout(s, width: width, height: height)
        drawStats(s, into: &g, width: width)
        if let b = s.browser {
            BrowserView.draw(b, into: &g, rect: (0, 1, width, l.inputTop - 1))
            drawInput(s, l.input, into: &g, top: l.inputTop, width: width)
            return g
        }
        MessagesView.draw(s, into: &g, rect: l.messages)
        if let p = l.panel { RoutingView.draw(s, into: &g, x: p.x, y: p.y, width: p.w, height: p.h) }
        if let x = l.separator { for y in 1..<l.inputTop { g.put("│", x: x, y: y, style: .border) } }
        if l.panelDoesNotFit {
            g.put("routing panel: too small here · Ctrl-T shows it full screen", x: 0, y: l.inputTop - 1, style: .dim, maxX: width)
        }
        drawInput(s, l.input, into: &g, top: l.inputTop, width: width)
        return g
    }

    /// Where the terminal's cursor goes (in the input box).
    public static func cursor(_ s: ScreenState, width: Int, height: Int) -> (x: Int, y: Int) {
        guard width >= minWidth, height >= minHeight else { return (0, 0) }
        let l = layout(s, width: width, height: height)
        return (min(width - 1, 2 + l.input.cursorColumn), min(height - 1, l.inputTop + 1 + l.input.cursorRow))
    }

    static func drawStats(_ s: ScreenState, into g: inout CellGrid, width: Int) {
        g.fill(x: 0, y: 0, width: width, height: 1, style: .status)
        let st = s.stats
        // A long model name gives way to the figures on narrow screens.
        let limit = max(6, min(24, width / 4))
        let name = s.backend.modelName.count > limit ? String(s.backend.modelName.prefix(limit - 1)) + "…" : s.backend.modelName
        var status = s.status.label
        if case .prefilling = s.status, let eta = s.prefillETA, eta >= 1 { status += String(format: " · %.0f s left", eta) }
        var parts = [name, status]
        if s.hasStats {
            // A server does not say how fast it prefilled; the rate is shown when known.
            if st.prefillTokensPerSecond > 0 || s.backend.kind != "remote" {
                parts.append(String(format: "prefill %.1f tok/s", st.prefillTokensPerSecond))
            }
            parts.append(String(format: "decode %.1f tok/s", st.decodeTokensPerSecond))
        } else {
            parts.append("ready")
        }
        // A server that does not say its context size: what is used, as far as known.
        parts.append(st.contextSize > 0 ? "ctx \(st.contextUsed)/\(st.contextSize)" : st.contextUsed > 0 ? "ctx \(st.contextUsed)" : "ctx –")
        // Routing interventions in force: always said, in words (`/experts` lists them).
        let experts = s.conversation.settings.experts
        if !experts.isEmpty { parts.append("experts: " + experts.summary) }
        g.put(" " + parts.joined(separator: " │ "), x: 0, y: 0, style: .status)
    }

    static func drawInput(_ s: ScreenState, _ box: InputBox, into g: inout CellGrid, top: Int, width: Int) {
        let hint = s.browser != nil ? " Esc closes the chats "
            : s.inspector != nil ? " ←/→ token · Esc leaves the inspector "
            : s.selected != nil ? " ↑/↓ message · ←/→ version · e edit · r redo · y copy · Esc "
            : s.editing != nil ? " editing: Enter sends a new version · Esc cancels "
            : s.isBusy ? " Esc stops "
            : " Enter sends · Alt-Enter newline · /help "
        g.fill(x: 0, y: top, width: width, height: 1, style: .border, text: "─")
        if box.hiddenAbove > 0 { g.put(" ↑\(box.hiddenAbove) ", x: 1, y: top, style: .dim) }
        if displayWidth(hint) + 10 <= width { g.put(hint, x: width - displayWidth(hint) - 1, y: top, style: .dim) }
        for (i, line) in box.visible.enumerated() {
            g.put(i == 0 && box.hiddenAbove == 0 ? "> " : "  ", x: 0, y: top + 1 + i, style: .user)
            g.put(line, x: 2, y: top + 1 + i, style: .text)
        }
        if box.hiddenBelow > 0 { g.put(" ↓\(box.hiddenBelow) ", x: width - 6, y: g.height - 1, style: .dim) }
    }
}

/// The input box's text cut into screen lines (hard-wrapped by display width, so the cursor's
/// place is exact), and the window of them that shows: it follows the cursor.
struct InputBox {
    var visible: [String] = []
    var cursorRow = 0, cursorColumn = 0
    var hiddenAbove = 0, hiddenBelow = 0

    init(_ e: LineEditor, width: Int, maxLines: Int) {
        let w = max(1, width)
        var lines: [String] = [""], widths = [0]
        var row = 0, column = 0
        // A huge text (a 5 MB paste): only a window around the cursor is cut into lines, so a
        // keystroke costs the same whatever the size (lines above are counted, not drawn).
        let window = max(4_096, 4 * w * max(1, maxLines))
        var first = 0, last = e.text.count
        if e.text.count > 4 * window {
            first = max(0, e.cursor - window)
            last = min(e.text.count, e.cursor + window)
        }
        for i in first..<last {
            let c = e.text[i]
            if i == e.cursor { row = lines.count - 1; column = widths[widths.count - 1] }
            if c == "\n" {
                lines.append(""); widths.append(0)
                continue
            }
            let cw = c == "\t" ? 1 : displayWidth(c)
            if widths[widths.count - 1] + cw > w { lines.append(""); widths.append(0) }
            lines[lines.count - 1].append(c == "\t" ? " " : c)
            widths[widths.count - 1] += cw
        }
        if e.cursor >= last {
            row = lines.count - 1
            column = widths[widths.count - 1]
            if column >= w { lines.append(""); widths.append(0); row += 1; column = 0 }
        }
        let n = max(1, maxLines)
        var firstLine = max(0, lines.count - n)
        if row < firstLine { firstLine = row }
        if row >= firstLine + n { firstLine = row - n + 1 }
        let lastLine = min(lines.count, firstLine + n)
        visible = Array(lines[firstLine..<lastLine])
        // Outside the window, an estimate: its characters over the width.
        hiddenAbove = firstLine + (first > 0 ? first / w : 0)
        hiddenBelow = lines.count - lastLine + (last < e.text.count ? (e.text.count - last) / w : 0)
        cursorRow = row - firstLine
        cursorColumn = column
    }
}
