/// Turns ids into text one id at a time for a chat stream: never emits the U+FFFD of an
/// incomplete UTF-8 sequence, and the pieces it emits, concatenated, equal `decode(all ids)`.
///
/// It re-decodes a short window (the ids since the last emitted text, plus the one before it
/// for context) and emits what the new id added, as tokenizers' `DecodeStream` does.
public struct StreamingDetokenizer {
    let tokenizer: Tokenizer
    let skipSpecialTokens: Bool
    private var ids: [Int] = []
    private var prefixStart = 0
    private var readStart = 0
    /// All text emitted so far.
    public private(set) var text = ""

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the new text it completes (possibly empty).
    public mutating func add(_ id: Int) -> String {
        ids.append(id)
        let before = tokenizer.decode(Array(ids[prefixStart..<readStart]), skipSpecialTokens: skipSpecialTokens)
        let after = tokenizer.decode(Array(ids[prefixStart...]), skipSpecialTokens: skipSpecialTokens)
        if !after.unicodeScalars.starts(with: before.unicodeScalars) {
            // The window re-decodes differently (a decoder that rewrites earlier text): fall back
            // to the difference against the full decode, which never grows without bound.
            let full = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
            guard full.unicodeScalars.starts(with: text.unicodeScalars), full.unicodeScalars.last != "\u{FFFD}" else { return "" }
            let new = String(String.UnicodeScalarView(full.unicodeScalars.dropFirst(text.unicodeScalars.count)))
            prefixStart = ids.count - 1
            readStart = ids.count
            text += new
            return new
        }
        guard after.unicodeScalars.count > before.unicodeScalars.count,
              after.unicodeScalars.last != "\u{FFFD}" else { return "" }
        let new = String(String.UnicodeScalarView(after.unicodeScalars.dropFirst(before.unicodeScalars.count)))
        prefixStart = readStart
        readStart = ids.count
        text += new
        return new
    }

    /// Whatever is held back (an incomplete sequence at the very end), as decoded.
    public mutating func finish() -> String {
        let before = tokenizer.decode(Array(ids[prefixStart..<readStart]), skipSpecialTokens: skipSpecialTokens)
        let after = tokenizer.decode(Array(ids[prefixStart...]), skipSpecialTokens: skipSpecialTokens)
        prefixStart = ids.count
        readStart = ids.count
        guard after.unicodeScalars.starts(with: before.unicodeScalars) else {
            let full = tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens)
            guard full.unicodeScalars.starts(with: text.unicodeScalars) else { return "" }
            let rest = String(String.UnicodeScalarView(full.unicodeScalars.dropFirst(text.unicodeScalars.count)))
            text += rest
            return rest
        }
        guard after.unicodeScalars.count > before.unicodeScalars.count else { return "" }
        let rest = String(String.UnicodeScalarView(after.unicodeScalars.dropFirst(before.unicodeScalars.count)))
        text += rest
        return rest
    }
}
