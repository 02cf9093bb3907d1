import CNcursesw
import Foundation
import NekoChat
import NekoJSON
import NekoRouting
@testable import NekoTUI
import Testing

/// The live routing views with a NekoMind-sized model (16 MoE layers × 32 experts, top-4) and
/// with the demo's shape (4 × 8, top-2): every view fits at 80×24 and is complete at 200×60.
@Suite(.serialized) struct RoutingViewTests {
    static let nekomind = (experts: 32, layers: Array(2..<18), k: 4)

    func harness(width: Int, height: Int, big: Bool = true) -> Harness {
        let h = big ? Harness(replies: ["It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon."],
                              width: width, height: height, experts: 32, layers: Array(2..<18), k: 4)
            : Harness(replies: ["It is the east, and Juliet is the sun."], width: width, height: height)
        h.send("But soft, what light")
        return h
    }

    @Test(arguments: [(80, 24), (200, 60), (100, 30)])
    func everyViewFits(size: (Int, Int)) {
        let (w, hgt) = size
        for big in [true, false] {
            let h = harness(width: w, height: hgt, big: big)
            for view in RoutingView.View.allCases {
                h.app.state.panelView = view
                for panel in [ScreenState.Panel.shown, .fullScreen] {
                    h.app.state.panel = panel
                    let text = h.screen
                    #expect(h.lines.count == hgt && h.lines.allSatisfy { displayWidth($0) <= w })
                    #expect(text.contains(view.rawValue + " · reply"), "\(view) \(panel) at \(w)×\(hgt):\n\(text)")
                    if w >= 200, panel == .fullScreen || view != .table {
                        // Big enough: every layer (or every expert) is there.
                        switch view {
                        case .heat, .table: #expect(text.contains("L17 ") || text.contains("L5 "), "\(view)\n\(text)")
                        case .coactivation, .flow: #expect(!text.contains(" of 32") && text.contains(big ? "e31" : "e7"), "\(view)\n\(text)")
                        }
                    }
                }
            }
        }
    }

    @Test func theHeatRowsShowBalanceFiguresAndTheFiguresEqualTheAnalysis() throws {
        let h = harness(width: 200, height: 60)
        h.app.state.routingScope = .session
        let text = h.screen
        let report = try #require(h.app.state.routing.trace.map { RoutingAnalysis.analyze($0) })
        let first = try #require(report.layers.first)
        #expect(text.contains(String(format: "H%.1f", first.entropyBits ?? -1)) && text.contains(String(format: "J%.2f", first.jain ?? -1)))
        // The saved chat gives the same analysis as the live session.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("rv-\(UUID().uuidString).jsonl").path
        _ = try h.app.controller.save(to: file)
        let saved = try Transcript.load(path: file).conversation
        let fromFile = try #require(try RoutingTrace.of(saved.routingSequences, experts: 32))
        #expect(RoutingAnalysis.differences(RoutingAnalysis.analyze(fromFile).json, report.json, tolerance: 0).isEmpty)
        #expect(h.app.state.routing.stats(.session)?.layers == RoutingAnalysis.analyze(fromFile).layers)
    }

    @Test func keysCycleViewsScopesAndLayers() {
        let h = harness(width: 200, height: 60)
        h.press(.ctrl("r"))
        #expect(h.app.state.panelView == .coactivation && h.screen.contains("coactivation · reply · L2"))
        h.press(.ctrlRight, .ctrlRight)
        #expect(h.screen.contains("coactivation · reply · L4"))
        h.press(.ctrl("r"))
        #expect(h.screen.contains("flow · reply · L4 → L5"))
        h.press(.tab)
        #expect(h.screen.contains("flow · session"))
        h.press(.ctrlLeft, .ctrlLeft, .ctrlLeft)
        #expect(h.app.state.chosenSlot == 15)   // wraps around
        h.type("/routing table")
        h.press(.enter)
        #expect(h.screen.contains("table · session") && h.screen.contains("rep1"))
        h.type("/routing layer 99")
        h.press(.enter)
        #expect(h.lastNotice.contains("takes a MoE layer"))
    }

    @Test func tokensAreColouredByTheirTopExpertOrNumberedInMonochrome() throws {
        let h = harness(width: 120, height: 30, big: false)
        h.app.state.monochrome = false
        h.press(.ctrl("g"))
        let grid = ChatView.render(h.app.state, width: 120, height: 30)
        let reply = try #require(h.app.controller.conversation.path.last)
        let firstExpert = try #require(reply.routing.first { !$0.isPrompt }?.experts[0].first)
        #expect(grid.cells.contains { $0.style == .expert(firstExpert) })
        #expect(grid.text.contains("top-1 expert at L2: e0 e1"))
        h.app.state.monochrome = true
        let mono = h.screen
        #expect(mono.contains("It" + MessagesView.subscriptNumber(firstExpert)))
        #expect(mono.contains("after each token (₀₁₂…)"))
        h.press(.ctrl("g"))
        #expect(!h.screen.contains("after each token (₀₁₂…)") && h.lastNotice == "token colours off")
    }

    @Test func theInspectorShowsGatesEntropyAndWeightBars() throws {
        let h = harness(width: 120, height: 30, big: false)
        // A step with a gate and an entropy, as the model records them.
        let id = try #require(h.app.controller.conversation.path.last?.id)
        h.app.state.apply(.routing(messageID: id, step: RoutingStep(layers: [2, 3, 4, 5], experts: [[1, 0], [2, 3], [4, 5], [6, 7]],
                                                                    weights: [[0.75, 0.25], [0.5, 0.5], [0.9, 0.1], [0.6, 0.4]],
                                                                    sharedGate: [0.31, 0.5, 0.25, 0.75], routerEntropy: [1.25, 2, 0.5, 3],
                                                                    tokenId: 9, token: "!")))
        h.press(.ctrl("o"))
        let text = h.screen
        #expect(text.contains("\"!\" id 9") && text.contains("e1") && text.contains("0.75") && text.contains("g0.31") && text.contains("H1.25"))
        #expect(text.contains("███"))   // 0.75 of a 4-cell bar
    }

    @Test func exportWritesTheChatsAnalysis() throws {
        let h = harness(width: 100, height: 30)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rx-\(UUID().uuidString)").path
        h.type("/routing export \(dir)/r.csv")
        h.press(.enter)
        let csv = try String(contentsOfFile: dir + "/r.csv", encoding: .utf8)
        #expect(csv.hasPrefix(RoutingCSV.header) && h.lastNotice.contains("wrote"))
        h.type("/routing export \(dir)/r.json")
        h.press(.enter)
        let json = try JSONValue.parse(try String(contentsOfFile: dir + "/r.json", encoding: .utf8))
        #expect(json["experts"]?.int == 32 && json["layers"]?.array?.count == 16)
        // An existing file is kept unless the command says export!.
        h.type("/routing export \(dir)/r.csv")
        h.press(.enter)
        let kept = try String(contentsOfFile: dir + "/r.csv", encoding: .utf8)
        #expect(h.lastNotice.contains("exists") && kept == csv)
        h.type("/routing export! \(dir)/r.csv")
        h.press(.enter)
        #expect(h.lastNotice.contains("wrote"))
    }
}

/// Other families' shapes: OLMoE (16 MoE layers × 64 experts, top-8) and Qwen3-30B-A3B
/// (48 × 128, top-8), without a shared expert. At 80×24 the heat map groups experts into cells
/// and still shows every layer beside the chat; at 200×60 an OLMoE row has a cell per expert.
@Suite(.serialized) struct ManyExpertsViewTests {
    func harness(experts: Int, layers: Int, width: Int, height: Int) -> Harness {
        let h = Harness(replies: ["It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon."],
                        width: width, height: height, experts: experts, layers: Array(0..<layers), k: 8)
        h.send("But soft, what light")
        return h
    }

    @Test func olmoeAt80x24ShowsEveryLayerWithGroupedCellsBesideTheChat() {
        let h = harness(experts: 64, layers: 16, width: 80, height: 24)
        let text = h.screen
        #expect(h.lines.allSatisfy { displayWidth($0) <= 80 })
        #expect(text.contains("heat · reply · H ≤ 6.0 · 4/cell") && text.contains("a cell: experts 0–3, 4–7"), "\(text)")
        #expect(text.contains("    0   16  32  48"), "the ruler names each 4th cell's first expert:\n\(text)")
        #expect(text.contains("L0 ") && text.contains("L15 "), "every layer is there:\n\(text)")
        #expect(text.contains("│"), "beside the chat:\n\(text)")
        #expect(text.contains("Juliet"), "the reply is still readable:\n\(text)")
    }

    @Test func olmoeAt200x60HasACellPerExpert() {
        let h = harness(experts: 64, layers: 16, width: 200, height: 60)
        let text = h.screen
        #expect(!text.contains("/cell") && text.contains("52  56  60"), "\(text)")
        // 64 rows do not fit in 60: the most-used experts, said so.
        h.app.state.panelView = .coactivation
        #expect(h.screen.contains(" of 64") && h.lines.allSatisfy { displayWidth($0) <= 200 }, "\(h.screen)")
    }

    @Test(arguments: [(80, 24), (200, 60), (100, 30)])
    func everyViewFitsWith128ExpertsTop8(size: (Int, Int)) {
        let (w, hgt) = size
        let h = harness(experts: 128, layers: 48, width: w, height: hgt)
        for view in RoutingView.View.allCases {
            h.app.state.panelView = view
            for panel in [ScreenState.Panel.shown, .fullScreen] {
                h.app.state.panel = panel
                let text = h.screen
                #expect(h.lines.count == hgt && h.lines.allSatisfy { displayWidth($0) <= w })
                #expect(text.contains(view.rawValue + " · reply"), "\(view) \(panel) at \(w)×\(hgt):\n\(text)")
            }
        }
        // The inspector: a token's 8 experts per layer, the ones that do not fit counted.
        h.app.state.panelView = .heat
        h.app.state.panel = .shown
        h.press(.ctrl("o"))
        let inspected = h.screen
        #expect(inspected.contains("token ") && inspected.contains("L0 "), "\(inspected)")
        #expect(h.lines.allSatisfy { displayWidth($0) <= w })
    }
}
