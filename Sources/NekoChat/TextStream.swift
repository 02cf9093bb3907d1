import Foundation
import NekoTokenizer

/// Generated ids → streamed text: no broken UTF-8, and stop strings cut the text where they
/// begin. Text that might be the start of a stop string is held back until it is not.
public struct TextStream {
    private var detokenizer: StreamingDetokenizer
    private var scanner: StopScanner

    public init(tokenizer: Tokenizer, stopStrings: [String] = []) {
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        scanner = StopScanner(stopStrings: stopStrings)
    }

    /// The text so far (up to a stop string, which is not included).
    public var text: [Unicode.Scalar] { scanner.text }
    public var string: String { scanner.string }
    public var stopped: Bool { scanner.stopped }

    /// Adds a generated id; returns the text that can be shown now.
    public mutating func add(_ id: Int) -> String {
        guard !stopped else { return "" }
        return scanner.add(detokenizer.add(id))
    }

    /// Releases what was held back (call when generation ends for another reason).
    public mutating func finish() -> String {
        guard !stopped else { return "" }
        return scanner.finish(detokenizer.finish())
    }
}

/// Streamed text → the text that can be shown: it ends where the first stop string begins, and
/// an end that might be the start of one is held back until it is not. The decode loop and the
/// remote client (for the stop strings a server is not sent) share it.
public struct StopScanner: Sendable {
    private let stops: [[Unicode.Scalar]]
    /// The text so far (up to a stop string, which is not included).
    public private(set) var text: [Unicode.Scalar] = []
    private var emitted = 0
    public private(set) var stopped = false

    public init(stopStrings: [String]) {
        stops = stopStrings.map { Array($0.unicodeScalars) }.filter { !$0.isEmpty }
    }

    public var string: String { String(String.UnicodeScalarView(text)) }

    /// Adds a piece of text; returns what can be shown now.
    public mutating func add(_ piece: String) -> String {
        guard !stopped else { return "" }
        text += piece.unicodeScalars
        return release(final: false)
    }

    /// Adds the last piece and releases what was held back.
    public mutating func finish(_ piece: String = "") -> String {
        guard !stopped else { return "" }
        text += piece.unicodeScalars
        return release(final: true)
    }

    private mutating func release(final: Bool) -> String {
        if let cut = firstStop() {
            text.removeSubrange(cut...)
            stopped = true
        }
        var end = text.count
        if !stopped && !final { end -= heldBack() }
        guard end > emitted else { return "" }
        let out = String(String.UnicodeScalarView(text[emitted..<end]))
        emitted = end
        return out
    }

    /// Where the earliest stop string begins, if any does.
    private func firstStop() -> Int? {
        guard !stops.isEmpty else { return nil }
        var best: Int?
        for stop in stops where stop.count <= text.count {
            var i = max(0, emitted - stop.count)
            while i + stop.count <= text.count {
                if text[i] == stop[0], text[i..<i + stop.count].elementsEqual(stop) {
                    best = min(best ?? i, i)
                    break
                }
                i += 1
            }
        }
        return best
    }

    /// Length of the longest end of the text that begins some stop string.
    private func heldBack() -> Int {
        var longest = 0
        for stop in stops {
            for n in stride(from: min(stop.count - 1, text.count), to: longest, by: -1)
            where text[(text.count - n)...].elementsEqual(stop[..<n]) {
                longest = n
                break
            }
        }
        return longest
    }
}
