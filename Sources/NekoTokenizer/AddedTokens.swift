import NekoJSON

/// One entry of tokenizer.json's `added_tokens`.
public struct AddedToken: Sendable {
    public let id: Int
    public let content: String
    public let special: Bool
    let singleWord: Bool
    let lstrip: Bool
    let rstrip: Bool
    let normalized: Bool
}

/// A piece of input: text still to tokenize, or an added token already recognised.
enum Segment {
    case text(Piece)
    case token(Int)
}

/// Finds added tokens in text: leftmost match, longest first, then `single_word`, `lstrip`,
/// `rstrip` as tokenizers' AddedVocabulary applies them.
struct AddedTokenMatcher: Sendable {
    final class Node: @unchecked Sendable {
        var next: [Unicode.Scalar: Node] = [:]
        var token: Int?   // index into `tokens`
    }
    let root = Node()
    let tokens: [AddedToken]
    let patterns: [[Unicode.Scalar]]

    /// `patterns[i]` is what to look for for `tokens[i]` (its content, normalized if it says so).
    init(tokens: [AddedToken], patterns: [[Unicode.Scalar]]) {
        self.tokens = tokens
        self.patterns = patterns
        for (i, p) in patterns.enumerated() where !p.isEmpty {
            var node = root
            for s in p {
                if let n = node.next[s] { node = n } else {
                    let n = Node()
                    node.next[s] = n
                    node = n
                }
            }
            if node.token == nil { node.token = i }
        }
    }

    /// `single_word` refuses a match next to a `\w` character (the Rust regex crate's `\w`).
    static func isWordScalar(_ s: Unicode.Scalar) -> Bool { WhitespacePreTokenizer.isWord(s) }

    /// Splits `piece` into added tokens and the text between them.
    func split(_ piece: Piece) -> [Segment] {
        let text = piece.text
        guard !tokens.isEmpty, !text.isEmpty else { return [.text(piece)] }
        var found: [(Range<Int>, Int)] = []
        var i = 0, startOffset = 0
        while i < text.count {
            // Longest token starting at i.
            var node = root, j = i
            var best: (end: Int, token: Int)?
            while j < text.count, let n = node.next[text[j]] {
                node = n
                j += 1
                if let t = n.token { best = (j, t) }
            }
            guard let (end, index) = best else { i += 1; continue }
            let token = tokens[index]
            var start = i, stop = end
            if token.singleWord {
                let startOK = start == 0 || !Self.isWordScalar(text[start - 1])
                let stopOK = stop == text.count || !Self.isWordScalar(text[stop])
                if !startOK || !stopOK { i += 1; continue }
            }
            if token.lstrip {
                var s = start
                while s > 0, text[s - 1].properties.isWhitespace { s -= 1 }
                start = max(s, startOffset)
            }
            if token.rstrip {
                while stop < text.count, text[stop].properties.isWhitespace { stop += 1 }
            }
            found.append((start..<stop, token.id))
            startOffset = stop
            i = stop
        }
        guard !found.isEmpty else { return [.text(piece)] }
        var out: [Segment] = []
        var last = 0
        for (r, id) in found {
            if r.lowerBound > last {
                out.append(.text(Piece(text: Array(text[last..<r.lowerBound]), atStart: piece.atStart && last == 0)))
            }
            out.append(.token(id))
            last = r.upperBound
        }
        if last < text.count { out.append(.text(Piece(text: Array(text[last...]), atStart: false))) }
        return out
    }
}
