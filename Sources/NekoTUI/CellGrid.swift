import CNcursesw

/// What a cell means; the theme decides how it looks.
public enum StyleRole: Hashable, Sendable {
    case text, user, assistant, system, notice, error, status, border, label, dim, selected
    /// Markdown: strong, emphasis, inline code, headings, quotes, links; and code's syntax.
    case bold, italic, code, heading, quote, link, keyword, string, comment, number
    /// Routing heat, 0 (cold) … 7 (hot).
    case heat(Int)
    /// A token coloured by its top-1 expert (the theme's palette, cycled).
    case expert(Int)
}

/// One terminal cell: a grapheme (or "" for the right half of a wide one) and its style.
public struct Cell: Equatable, Sendable {
    public var text: String
    public var width: Int
    public var style: StyleRole
    public static let blank = Cell(text: " ", width: 1, style: .text)
}

/// Display width of a grapheme: 2 for East Asian wide characters and emoji, 0 for controls.
public func displayWidth(_ g: Character) -> Int {
    if let ascii = g.asciiValue { return ascii >= 0x20 && ascii < 0x7F ? 1 : 0 }
    guard let first = g.unicodeScalars.first else { return 0 }
    if first.value < 0x20 || first.value == 0x7F { return 0 }
    if g.unicodeScalars.count > 1, g.unicodeScalars.contains(where: { $0.properties.isEmojiPresentation || $0.value == 0xFE0F }) {
        return 2
    }
    if first.properties.isEmojiPresentation { return 2 }
    let w = Int(nk_wcwidth(first.value))
    return w < 0 ? 1 : min(w, 2)
}

public func displayWidth(_ s: String) -> Int { s.reduce(0) { $0 + displayWidth($1) } }

/// The screen as a grid of cells, drawn by views and written to the terminal by a driver.
public struct CellGrid: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]

    public init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: .blank, count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * width + x] }
        set { cells[y * width + x] = newValue }
    }

    /// Writes `text` from (x, y), clipped at `maxX`; returns the column after the last cell written.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, style: StyleRole, maxX: Int? = nil) -> Int {
        let limit = min(maxX ?? width, width)
        guard y >= 0, y < height else { return x }
        var col = x
        for g in text {
            let w = displayWidth(g)
            if w == 0 { continue }
            if col + w > limit { break }
            if col >= 0 {
                self[col, y] = Cell(text: String(g), width: w, style: style)
                if w == 2 { self[col + 1, y] = Cell(text: "", width: 0, style: style) }
            }
            col += w
        }
        return col
    }

    public mutating func fill(x: Int, y: Int, width w: Int, height h: Int, style: StyleRole, text: String = " ") {
        for row in max(0, y)..<min(height, y + h) {
            for col in max(0, x)..<min(width, x + w) { self[col, row] = Cell(text: text, width: 1, style: style) }
        }
    }

    /// The grid as text, one line per row (trailing spaces trimmed): what snapshot tests compare.
    public var text: String {
        (0..<height).map { y in
            var line = ""
            for x in 0..<width where self[x, y].width > 0 { line += self[x, y].text }
            while line.last == " " { line.removeLast() }
            return line
        }.joined(separator: "\n")
    }
}
