/// A run of text in one style.
public struct Span: Equatable, Sendable {
    public var text: String
    public var style: StyleRole
    public init(_ text: String, _ style: StyleRole) {
        self.text = text
        self.style = style
    }
}

/// One screen line: styled runs, left to right.
public typealias Line = [Span]

/// Tabs become spaces up to the next multiple of `width` columns (code keeps its indentation).
public func expandTabs(_ text: String, width: Int = 4) -> String {
    guard text.contains("\t") else { return text }
    var out = "", column = 0
    for g in text {
        if g == "\t" {
            let n = width - column % width
            out += String(repeating: " ", count: n)
            column += n
        } else {
            out.append(g)
            column = g == "\n" ? 0 : column + displayWidth(g)
        }
    }
    return out
}

/// Greedy word wrap by display width: words move to the next line when they do not fit;
/// words wider than a line are cut. Newlines start new lines; tabs are expanded.
public func wrap(_ text: String, width: Int) -> [String] {
    wrap([Span(text, .text)], width: width).map { $0.map(\.text).joined() }
}

/// Word wrap of styled text, keeping each character's style.
public func wrap(_ spans: [Span], width: Int) -> [Line] {
    guard width > 0 else { return [] }
    var lines: [Line] = []
    var line: [(Character, StyleRole)] = [], lineWidth = 0
    var word: [(Character, StyleRole)] = [], wordWidth = 0
    func emit() {
        var out: Line = []
        for (c, style) in line {
            if let last = out.last, last.style == style { out[out.count - 1].text.append(c) } else { out.append(Span(String(c), style)) }
        }
        lines.append(out)
        line = []
        lineWidth = 0
    }
    func flushWord() {
        if lineWidth + wordWidth > width, lineWidth > 0 {
            emit()
            // drop the space that ended the previous line
            while line.isEmpty, word.first?.0 == " " { word.removeFirst(); wordWidth -= 1 }
        }
        for (g, style) in word {
            let w = displayWidth(g)
            if lineWidth + w > width {
                emit()
                if g == " " { continue }
            }
            line.append((g, style))
            lineWidth += w
        }
        word = []
        wordWidth = 0
    }
    for span in spans {
        for g in expandTabs(span.text) {
            if g == "\n" {
                flushWord()
                emit()
            } else if g == " " {
                flushWord()
                word = [(" ", span.style)]
                wordWidth = 1
            } else {
                word.append((g, span.style))
                wordWidth += displayWidth(g)
            }
        }
    }
    flushWord()
    emit()
    return lines
}

extension CellGrid {
    /// Writes a styled line from (x, y), clipped at `maxX`; returns the column after it.
    @discardableResult
    public mutating func put(_ line: Line, x: Int, y: Int, maxX: Int? = nil) -> Int {
        var col = x
        for span in line { col = put(span.text, x: col, y: y, style: span.style, maxX: maxX) }
        return col
    }
}
