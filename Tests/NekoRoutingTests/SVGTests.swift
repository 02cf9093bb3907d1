import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import NekoRouting
import Testing

/// What an SVG document holds, read by Foundation's XML parser.
final class SVGSummary: NSObject, XMLParserDelegate {
    var root: (name: String, attributes: [String: String])?
    var cells = 0
    var texts: [String] = []
    var titles: [String] = []
    private var inText = false, inTitle = false

    static func parse(_ svg: String) throws -> SVGSummary {
        let s = SVGSummary()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = s
        guard parser.parse() else {
            throw RoutingError.shape("not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        }
        return s
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String]) {
        if root == nil { root = (name, attributes) }
        if name == "rect", attributes["class"] == "cell" { cells += 1 }
        if name == "text" { inText = true; texts.append("") }
        if name == "title" { inTitle = true; titles.append("") }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" { inText = false }
        if name == "title" { inTitle = false }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) {
        if inText { texts[texts.count - 1] += string }
        if inTitle { titles[titles.count - 1] += string }
    }
}

@Suite struct SVGTests {
    /// 16 layers × 32 experts, top-4, 3 files (NekoMind's shape) and the 2 × 8 golden.
    static func reports() throws -> [(String, RoutingReport)] {
        let big = try randomTrace(seed: 1, layers: Array(2..<18), experts: 32, topK: 4, gated: Array(2..<18),
                                  entropy: true, sequenceLengths: [300, 200, 250], vocab: 50)
        let g = try Golden("neko_mini_bf16")
        return [("16x32", RoutingAnalysis.analyze(big)), ("golden", RoutingAnalysis.analyze(g.trace, minCount: g.minCount))]
    }

    @Test func everyFigureIsWellFormedSVGWithOneCellPerValue() throws {
        for (what, r) in try Self.reports() {
            let L = r.layers.count, E = r.experts, F = r.byFile.count
            let figures = RoutingSVG.figures(r)
            #expect(figures.count == 1 + L + (L - 1) + 1)
            for (name, svg) in figures {
                let s = try SVGSummary.parse(svg)
                #expect(s.root?.name == "svg" && s.root?.attributes["xmlns"] == "http://www.w3.org/2000/svg")
                #expect(s.root?.attributes["version"] == "1.1")
                let cells: Int
                switch name {
                case "load.svg": cells = L * E
                case "by_file.svg": cells = F * L * E
                default: cells = E * E
                }
                #expect(s.cells == cells, "\(what) \(name): \(s.cells) cells, expected \(cells)")
                #expect(svg.count < 2_000_000, "\(what) \(name) is \(svg.count) bytes")
            }
            let load = try SVGSummary.parse(RoutingSVG.loadHeatMap(r))
            for f in r.layers {
                #expect(load.texts.contains("layer \(f.layer)"))
                #expect(load.texts.contains("\(fixedForTest(f.entropyBits!)) bits"), "\(what): entropy of layer \(f.layer)")
            }
            #expect(load.texts.contains("even") && load.texts.contains("expert"))
        }
    }

    @Test func namesAreEscaped() throws {
        let name = "a<b>&\"c'\u{1}\td.txt"
        let t = try makeTrace(layers: [0, 1], experts: 4, topK: 2, sequences: [
            (name, [(1, [[0, 1], [2, 3]]), (2, [[1, 2], [3, 0]])]), ("plain", [(1, [[3, 2], [0, 1]])]),
        ])
        let svg = RoutingSVG.fileShares(RoutingAnalysis.analyze(t))
        let s = try SVGSummary.parse(svg)
        #expect(s.texts.contains("a<b>&\"c'\u{FFFD} d.txt (2 tokens)"))
        #expect(s.titles.contains("a<b>&\"c'\u{FFFD} d.txt"))
        #expect(s.cells == 2 * 2 * 4)
    }

    @Test func emptyTraceStillDraws() throws {
        var t = try RoutingTrace(moeLayers: [3, 4], experts: 8, topK: 2)
        t.beginSequence(named: "nothing")
        let r = RoutingAnalysis.analyze(t)
        for (name, svg) in RoutingSVG.figures(r) {
            let s = try SVGSummary.parse(svg)
            #expect(s.cells == (name == "by_file.svg" ? 0 : name == "load.svg" ? 16 : 64), "\(name)")
        }
        #expect(try SVGSummary.parse(RoutingSVG.loadHeatMap(r)).texts.contains("no tokens"))
    }

    /// With NEKOROUTING_SVG_DIR set, writes every figure there (for Tests/Reference/render_svgs.sh).
    @Test func writesTheFiguresWhenAsked() throws {
        guard let dir = ProcessInfo.processInfo.environment["NEKOROUTING_SVG_DIR"] else { return }
        var reports = try Self.reports()
        let top3 = try Golden("sharded3_bf16_normtopk")
        reports.append(("top3", RoutingAnalysis.analyze(top3.trace, minCount: top3.minCount)))
        for (what, r) in reports {
            let folder = URL(fileURLWithPath: dir).appendingPathComponent(what)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for (name, svg) in RoutingSVG.figures(r) {
                try svg.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
            }
        }
    }
}

/// 2 decimals, as the figures print them.
func fixedForTest(_ x: Double) -> String {
    String(format: "%.2f", x)
}
