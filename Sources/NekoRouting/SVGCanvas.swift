/// A minimal SVG 1.1 writer: shapes and text appended in order, every string XML-escaped.
struct SVGCanvas {
    private(set) var body = ""
    /// The rightmost x any text reaches, estimated (0.6 em per character): the document widens to it.
    private var textExtent = 0.0

    /// A rectangle; `cell` marks a data cell (class="cell": one per value shown) for tests and styling.
    mutating func rect(x: Double, y: Double, width: Double, height: Double, fill: String,
                       stroke: String? = nil, tooltip: String? = nil, cell: Bool = false) {
        body += "<rect"
        if cell { body += " class=\"cell\"" }
        body += " x=\"\(num(x))\" y=\"\(num(y))\" width=\"\(num(width))\" height=\"\(num(height))\" fill=\"\(fill)\""
        if let stroke { body += " stroke=\"\(stroke)\" stroke-width=\"1\"" }
        if let tooltip {
            body += "><title>\(xmlEscape(tooltip))</title></rect>\n"
        } else {
            body += "/>\n"
        }
    }

    enum Anchor: String { case start, middle, end }

    mutating func text(_ s: String, x: Double, y: Double, size: Double = 12, anchor: Anchor = .start,
                       bold: Bool = false, fill: String = "#222222", rotate: Double? = nil) {
        body += "<text x=\"\(num(x))\" y=\"\(num(y))\" font-size=\"\(num(size))\" text-anchor=\"\(anchor.rawValue)\" fill=\"\(fill)\""
        if bold { body += " font-weight=\"bold\"" }
        if let rotate {
            body += " transform=\"rotate(\(num(rotate)) \(num(x)) \(num(y)))\""
        } else {
            let w = Double(s.count) * size * 0.6
            textExtent = max(textExtent, anchor == .start ? x + w : anchor == .middle ? x + w / 2 : x)
        }
        body += ">\(xmlEscape(s))</text>\n"
    }

    mutating func line(x1: Double, y1: Double, x2: Double, y2: Double, stroke: String = "#444444",
                       width: Double = 1, dashed: Bool = false) {
        body += "<line x1=\"\(num(x1))\" y1=\"\(num(y1))\" x2=\"\(num(x2))\" y2=\"\(num(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(num(width))\""
        body += dashed ? " stroke-dasharray=\"4 3\"/>\n" : "/>\n"
    }

    /// A vertical colour bar at (x, y) of `height`, low values at the bottom, with tick labels.
    mutating func colourBar(x: Double, y: Double, height: Double, low: Double, high: Double,
                            label: String, format: (Double) -> String, marker: (value: Double, label: String)? = nil) {
        let steps = 32
        for s in 0..<steps {
            let t0 = Double(s) / Double(steps)
            rect(x: x, y: y + height * (1 - t0 - 1 / Double(steps)), width: 14, height: height / Double(steps) + 0.5,
                 fill: viridis(t0 + 0.5 / Double(steps)))
        }
        rect(x: x, y: y, width: 14, height: height, fill: "none", stroke: "#444444")
        for t in [0.0, 0.5, 1.0] {
            let ty = y + height * (1 - t)
            line(x1: x + 14, y1: ty, x2: x + 18, y2: ty)
            text(format(low + (high - low) * t), x: x + 21, y: ty + 4, size: 10)
        }
        if let marker, high > low, marker.value >= low, marker.value <= high {
            let ty = y + height * (1 - (marker.value - low) / (high - low))
            line(x1: x - 4, y1: ty, x2: x + 18, y2: ty, stroke: "#d62728", width: 2)
            text(marker.label, x: x - 6, y: ty + 4, size: 10, anchor: .end, fill: "#d62728")
        }
        text(label, x: x, y: y - 8, size: 11)
    }

    /// The complete document.
    func document(width minimum: Double, height: Double, title: String) -> String {
        let width = max(minimum, (textExtent + 12).rounded(.up))
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            + "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"\(num(width))\" height=\"\(num(height))\" "
            + "viewBox=\"0 0 \(num(width)) \(num(height))\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
            + "<title>\(xmlEscape(title))</title>\n"
            + "<rect x=\"0\" y=\"0\" width=\"\(num(width))\" height=\"\(num(height))\" fill=\"#ffffff\"/>\n"
            + body + "</svg>\n"
    }
}

/// `s` as XML character data or attribute text: `& < > " '` escaped, tabs and line breaks as
/// spaces, and characters XML 1.0 forbids (other controls, U+FFFE, U+FFFF) as U+FFFD.
func xmlEscape(_ s: String) -> String {
    var out = ""
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        case "\t", "\n", "\r": out += " "
        default:
            if c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF {
                out += "\u{FFFD}"
            } else {
                out.unicodeScalars.append(c)
            }
        }
    }
    return out
}

/// A coordinate: at most two decimals, no trailing zeros ("12", "12.5", "-0.25").
func num(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    if r == r.rounded() { return String(Int(r)) }
    return fixed(r, 2).replacingTrailingZeros()
}

/// `x` with exactly `digits` decimals (no Foundation): fixed(0.12345, 3) == "0.123".
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "—" }
    var scale = 1
    for _ in 0..<digits { scale *= 10 }
    let n = Int((abs(x) * Double(scale)).rounded())
    let sign = x < 0 && n != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(n) }
    let frac = String(n % scale)
    return sign + String(n / scale) + "." + String(repeating: "0", count: digits - frac.count) + frac
}

/// `x` as a percentage with `digits` decimals: percent(0.125, 1) == "12.5%".
func percent(_ x: Double, _ digits: Int) -> String { fixed(x * 100, digits) + "%" }

private extension String {
    func replacingTrailingZeros() -> String {
        var s = Substring(self)
        while s.hasSuffix("0") { s = s.dropLast() }
        if s.hasSuffix(".") { s = s.dropLast() }
        return String(s)
    }
}

/// Viridis (perceptually uniform, colour-blind safe), t in [0, 1] → "#rrggbb".
func viridis(_ t: Double) -> String {
    let stops: [(Double, Double, Double)] = [
        (68, 1, 84), (72, 40, 120), (62, 73, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
    ]
    let u = min(1, max(0, t.isFinite ? t : 0)) * Double(stops.count - 1)
    let i = min(stops.count - 2, Int(u))
    let f = u - Double(i)
    let a = stops[i], b = stops[i + 1]
    return hexColour(a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
}

/// Text that reads on a viridis cell of value t (the light end wants dark text).
func textColour(onViridis t: Double) -> String { t > 0.62 ? "#111111" : "#ffffff" }

func hexColour(_ r: Double, _ g: Double, _ b: Double) -> String {
    func hex(_ v: Double) -> String {
        let n = Int(min(255, max(0, v.rounded())))
        let h = String(n, radix: 16)
        return h.count == 1 ? "0" + h : h
    }
    return "#" + hex(r) + hex(g) + hex(b)
}

/// Categorical colours for files (Tableau 10), cycling.
func categorical(_ i: Int) -> String {
    let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
    return palette[i % palette.count]
}
