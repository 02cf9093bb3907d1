import Foundation
import NekoChat

/// The message pane: the current path of the conversation, with the notices given after each
/// message, wrapped by display width and bottom-anchored (it follows the stream unless
/// scrolled back).
enum MessagesView {
    /// The widest a paragraph of prose runs, whatever the window's width (a readable measure).
    static let measure = 100

    static func header(_ m: ChatMessage, _ s: ScreenState) -> Line {
        var title: String
        let style: StyleRole
        switch m.role {
        case .user: title = "you"; style = .user
        case .assistant:
            title = "neko"
            if m.stopped { title += " (stopped)" }
            if m.finishReason == .error { title += " (failed)" }
            if m.finishReason == .length { title += " (cut at the token limit)" }
            if m.finishReason == .context { title += " (context full)" }
            if !m.experts.isEmpty { title += " [experts: \(m.experts.summary)]" }
            if m.decodeTokensPerSecond > 0 { title += String(format: " · %.1f tok/s", m.decodeTokensPerSecond) }
            style = .assistant
        case .system: title = "system"; style = .system
        }
        // A picked message: a marker and its label in reverse video (never colour alone).
        var line: Line = s.selected == m.id ? [Span("▶ " + title + " ", .selected)] : [Span(title, style)]
        let (i, n) = s.conversation.siblingPosition(of: m.id)
        if n > 1 { line.append(Span("  ‹ \(i + 1)/\(n) ›", .dim)) }
        return line
    }

    static let subscripts: [Character] = ["₀", "₁", "₂", "₃", "₄", "₅", "₆", "₇", "₈", "₉"]
    static func subscriptNumber(_ n: Int) -> String { String(String(n).compactMap { $0.wholeNumberValue.map { subscripts[$0] } }) }

    /// Spans of `text` cut at the tokens' boundaries, each token styled by its top-1 expert at
    /// the chosen layer (or followed by the expert's number in monochrome). `offset` is where
    /// `text` starts within the concatenated token texts; nil when the tokens do not spell it.
    static func coloured(_ text: String, tokens: [RoutingStep], offset: Int, _ s: ScreenState) -> [Span]? {
        let slot = s.chosenSlot
        var spans: [Span] = []
        var position = 0   // in characters of the concatenated token texts
        let chars = Array(text)
        let end = offset + chars.count
        for t in tokens {
            let n = t.token.count
            defer { position += n }
            let lo = max(position, offset), hi = min(position + n, end)
            guard lo < hi else { continue }
            guard slot < t.experts.count, let e = t.experts[slot].first else { return nil }
            let piece = String(chars[(lo - offset)..<(hi - offset)])
            if s.monochrome {
                // The number goes right after the word, before the space that follows it.
                let word = String(piece.reversed().drop { $0.isWhitespace }.reversed())
                guard hi == position + n, !word.isEmpty else { spans.append(Span(piece, .text)); continue }
                spans.append(Span(word, .text))
                spans.append(Span(subscriptNumber(e), .dim))
                spans.append(Span(String(piece.dropFirst(word.count)), .text))
            } else {
                spans.append(Span(piece, .expert(e)))
            }
        }
        // The last token of a reply is never fed back, so it has no routing: the rest as is.
        if position < end {
            guard position >= offset else { return nil }
            spans.append(Span(String(chars[(position - offset)...]), .text))
        }
        return spans
    }

    /// The reply that answers user message `id` on the path (whose prompt tokens hold it).
    static func answer(to id: Int, _ s: ScreenState) -> ChatMessage? {
        s.conversation.path.first { $0.parent == id && $0.role == .assistant }
    }

    /// The body's styled text: tokens coloured by expert when asked; the inspected token of a
    /// reply stands out.
    static func body(_ m: ChatMessage, _ s: ScreenState) -> [Span] {
        let style: StyleRole = m.role == .system ? .system : .text
        if s.colourTokens, s.inspector?.messageID != m.id {
            if m.role == .assistant, let spans = coloured(m.content, tokens: m.routing.filter { !$0.isPrompt }, offset: 0, s) {
                return spans
            }
            if m.role == .user, let reply = answer(to: m.id, s) {
                // The prompt tokens of the reply spell the template's text around this message.
                let prompt = reply.routing.filter(\.isPrompt)
                let spelled = prompt.map(\.token).joined()
                if let range = spelled.range(of: m.content, options: .backwards),
                   let spans = coloured(m.content, tokens: prompt, offset: spelled.distance(from: spelled.startIndex, to: range.lowerBound), s) {
                    return spans
                }
            }
        }
        guard let (id, index) = s.inspector, id == m.id else { return [Span(m.content, style)] }
        let tokens = s.inspectable(id).map(\.token)
        guard index < tokens.count else { return [Span(m.content, style)] }
        let before = tokens[..<index].joined(), token = tokens[index]
        guard m.content.hasPrefix(before + token) else { return [Span(m.content, style)] }
        let rest = String(m.content.dropFirst(before.count + token.count))
        return [Span(before, style), Span(token, .selected), Span(rest, style)]
    }

    /// Characters of one message shown at most: its beginning and its end, with a line saying
    /// how much is left out (a 5 MB paste would otherwise be wrapped on every frame).
    static let shownCharacters = (head: 100_000, tail: 20_000)

    static func lines(of m: ChatMessage, _ s: ScreenState, width: Int) -> [Line] {
        // A finished message wraps the same way every frame: keep its lines.
        let key = WrapCache.Key(id: m.id, length: m.content.utf8.count, width: width, finished: !m.isPending,
                                flags: (s.rawText ? 1 : 0) | (s.colourTokens ? 2 : 0) | (s.monochrome ? 4 : 0) | (s.inspector?.messageID == m.id ? 8 : 0)
                                    | (s.selected == m.id ? 16 : 0) | (s.chosenSlot << 8),
                                siblings: s.conversation.siblingPosition(of: m.id).count)
        let cacheable = key.finished && !s.colourTokens && s.inspector?.messageID != m.id
        if cacheable, let cached = s.wrapCache.lines[key] { return cached }
        var m = m
        let total = m.content.count
        if total > shownCharacters.head + shownCharacters.tail {
            let head = m.content.prefix(shownCharacters.head), tail = m.content.suffix(shownCharacters.tail)
            m.content = head + "\n\n[… \(total - shownCharacters.head - shownCharacters.tail) characters not shown here; /export writes them all …]\n\n" + tail
            m.routing = []
        }
        let out = wrapLines(of: m, s, width: width)
        if cacheable { s.wrapCache.store(key, out) }
        return out
    }

    static func wrapLines(of m: ChatMessage, _ s: ScreenState, width: Int) -> [Line] {
        let w = max(1, min(width - 2, measure))
        var out: [Line] = [header(m, s)]
        let body: [Line]
        if m.isPending && m.content.isEmpty {
            body = [[Span("…", .dim)]]
        } else if m.content.isEmpty, m.role == .assistant {
            body = [[Span(m.finishReason == .error ? "(no reply: see the error below)" : "(empty reply)", .dim)]]
        } else if m.role == .assistant, !s.rawText, !s.colourTokens, s.inspector?.messageID != m.id {
            // Code blocks and tables may use the whole width; prose keeps the measure.
            body = Markdown.render(m.content, width: w, wide: max(1, width - 2))
        } else {
            body = wrap(self.body(m, s), width: w)
        }
        // The picked message's lines carry a bar in the margin, the whole message marked.
        let margin = s.selected == m.id ? Span("▌ ", .label) : Span("  ", .text)
        for l in body { out.append([margin] + l) }
        out.append([])
        return out
    }

    /// A notice, wrapped. Its lines that hold a tab are a table: the part before the tab is the
    /// term (a key, a command, a setting), padded to one column for the whole notice, and what
    /// follows wraps with a hanging indent under itself (`/help`, `/set`); other lines wrap under
    /// the notice's first character.
    static func lines(of n: Notice, width: Int) -> [Line] {
        let style: StyleRole = n.kind == .error ? .error : .notice
        let prefix = n.kind == .error ? "error: " : "· "
        let width = max(1, min(width, measure + 2))
        let rows = n.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard rows.contains(where: { $0.contains("\t") }) else {
            return wrap([Span(prefix + n.text, style)], width: width) + [[]]
        }
        let indent = displayWidth(prefix)
        // The term column: as wide as the widest term that takes at most a third of the line
        // (a longer one puts its text on the next line).
        let cap = max(8, width / 3)
        let column = (rows.compactMap { r in r.firstIndex(of: "\t").map { displayWidth(String(r[..<$0])) } }.filter { $0 <= cap }.max() ?? cap) + 2
        var out: [Line] = []
        for (i, row) in rows.enumerated() {
            let lead = i == 0 ? prefix : String(repeating: " ", count: indent)
            guard let tab = row.firstIndex(of: "\t") else {
                // A line of its own in a table: a heading.
                let wrapped = wrap([Span(row, i == 0 ? style : .label)], width: max(1, width - indent))
                for (j, l) in wrapped.enumerated() { out.append([Span(j == 0 ? lead : String(repeating: " ", count: indent), style)] + l) }
                continue
            }
            let term = String(row[..<tab]), text = String(row[row.index(after: tab)...])
            let textWidth = max(8, width - indent - column)
            var first = [Span(lead, style), Span(term, .label)]
            let termWidth = displayWidth(term)
            var body = wrap([Span(text, style)], width: textWidth)
            if body.isEmpty { body = [[]] }
            if termWidth + 2 > column {
                // A term too long for the column: its text starts on the next line, under the column.
                out.append(first)
                first = [Span(String(repeating: " ", count: indent + column), style)]
            } else {
                first.append(Span(String(repeating: " ", count: column - termWidth), style))
            }
            out.append(first + body[0])
            for l in body.dropFirst() { out.append([Span(String(repeating: " ", count: indent + column), style)] + l) }
        }
        return out + [[]]
    }

    /// The last `needed` lines of the pane (or all of them, if fewer): only what can show is
    /// wrapped, so a long conversation costs nothing per frame. `complete` is true when these
    /// are all the lines there are.
    static func lastLines(_ s: ScreenState, width: Int, needed: Int) -> (lines: [Line], complete: Bool) {
        var blocks: [[Line]] = []
        var count = 0
        func add(_ b: [Line]) -> Bool {
            blocks.append(b)
            count += b.count
            return count >= needed
        }
        let path = s.conversation.path
        for m in path.reversed() {
            for n in s.notices(after: m.id).reversed() where add(lines(of: n, width: width)) { return (joined(blocks), false) }
            if add(lines(of: m, s, width: width)) { return (joined(blocks), false) }
        }
        for n in s.notices(after: nil).reversed() where add(lines(of: n, width: width)) { return (joined(blocks), false) }
        if let system = s.conversation.system {
            let m = ChatMessage(id: 0, role: .system, content: system)
            if add(lines(of: m, s, width: width)) { return (joined(blocks), false) }
        }
        return (joined(blocks), true)
    }

    static func joined(_ blocks: [[Line]]) -> [Line] { blocks.reversed().flatMap { $0 } }

    /// The most lines the pane can be scrolled back.
    static func maxScroll(_ s: ScreenState, width: Int, height: Int) -> Int {
        let (lines, _) = lastLines(s, width: width, needed: .max)
        return max(0, lines.count - height)
    }

    /// The legend of the token colours: which layer, and each expert's colour (or numbers).
    static func legend(_ s: ScreenState, width: Int) -> Line {
        let layer = s.moeLayers.isEmpty ? 0 : s.moeLayers[min(s.chosenSlot, s.moeLayers.count - 1)]
        if s.monochrome { return [Span("top-1 expert at L\(layer) after each token (₀₁₂…) · Ctrl-←/→ layer · Ctrl-G off", .dim)] }
        var line: Line = [Span("top-1 expert at L\(layer): ", .dim)]
        for e in 0..<s.experts { line.append(Span("e\(e) ", .expert(e))) }
        return line
    }

    static func draw(_ s: ScreenState, into g: inout CellGrid, rect: (x: Int, y: Int, w: Int, h: Int)) {
        guard rect.h > 0, rect.w > 0 else { return }
        var rect = rect
        if s.colourTokens, rect.h > 3 {
            g.put(legend(s, width: rect.w), x: rect.x, y: rect.y + rect.h - 1, maxX: rect.x + rect.w)
            rect.h -= 1
        }
        let (lines, complete) = lastLines(s, width: rect.w, needed: rect.h + max(0, s.scrollBack))
        let back = complete ? min(max(0, s.scrollBack), max(0, lines.count - rect.h)) : max(0, s.scrollBack)
        let bottom = lines.count - back
        let top = max(0, bottom - rect.h)
        for (i, line) in lines[top..<bottom].enumerated() {
            g.put(line, x: rect.x, y: rect.y + i, maxX: rect.x + rect.w)
        }
        if back > 0 {
            let marker = " ↓ \(back) more line\(back == 1 ? "" : "s") below (End) "
            g.put(marker, x: rect.x + max(0, rect.w - displayWidth(marker)), y: rect.y + rect.h - 1, style: .selected, maxX: rect.x + rect.w)
        }
        if top > 0 || !complete {
            g.put(" ↑ ", x: rect.x + max(0, rect.w - 3), y: rect.y, style: .dim, maxX: rect.x + rect.w)
        }
    }
}
