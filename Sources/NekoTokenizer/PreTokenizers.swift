import NekoJSON

/// A span of text on its way to the model; `atStart` is true when it begins at offset 0 of the
/// input (Metaspace's `prepend_scheme: first` needs it).
struct Piece: Sendable {
    var text: [Unicode.Scalar]
    var atStart: Bool
}

/// Text → smaller pieces (tokenizers' `pre_tokenizers`).
protocol PreTokenizer: Sendable {
    func split(_ piece: Piece) -> [Piece]
}

/// tokenizers' `SplitDelimiterBehavior`.
enum SplitBehavior: String, Sendable {
    case removed = "Removed", isolated = "Isolated", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"

    init(_ r: ComponentReader, key: String = "behavior", default value: SplitBehavior? = nil) throws {
        guard let s = r.json[key]?.string else {
            if let value { self = value; return }
            throw r.fail("expected a behavior", key)
        }
        guard let b = SplitBehavior(rawValue: s) else { throw r.fail("unknown behavior '\(s)'", key) }
        self = b
    }

    /// Splits `piece` at `matches` (ranges of delimiters) as `NormalizedString::split` does.
    func apply(_ piece: Piece, matches: [Range<Int>], invert: Bool = false) -> [Piece] {
        // (range, isDelimiter) covering the whole text.
        var parts: [(Range<Int>, Bool)] = []
        var prev = 0
        for m in matches {
            if prev != m.lowerBound { parts.append((prev..<m.lowerBound, false)) }
            parts.append((m, true))
            prev = m.upperBound
        }
        if prev != piece.text.count { parts.append((prev..<piece.text.count, false)) }
        if invert { parts = parts.map { ($0.0, !$0.1) } }

        var kept: [(Range<Int>, removed: Bool)] = []
        switch self {
        case .isolated: kept = parts.map { ($0.0, false) }
        case .removed: kept = parts.map { ($0.0, $0.1) }
        case .contiguous:
            var previous = false
            for (r, isMatch) in parts {
                if isMatch == previous, let last = kept.last {
                    kept[kept.count - 1] = (last.0.lowerBound..<r.upperBound, false)
                } else {
                    kept.append((r, false))
                }
                previous = isMatch
            }
        case .mergedWithPrevious:
            var previous = false
            for (r, isMatch) in parts {
                if isMatch && !previous, let last = kept.last {
                    kept[kept.count - 1] = (last.0.lowerBound..<r.upperBound, false)
                } else {
                    kept.append((r, false))
                }
                previous = isMatch
            }
        case .mergedWithNext:
            var previous = false
            for (r, isMatch) in parts.reversed() {
                if isMatch && !previous, let last = kept.last {
                    kept[kept.count - 1] = (r.lowerBound..<last.0.upperBound, false)
                } else {
                    kept.append((r, false))
                }
                previous = isMatch
            }
            kept.reverse()
        }
        return kept.compactMap { r, removed in
            removed || r.isEmpty ? nil : Piece(text: Array(piece.text[r]), atStart: piece.atStart && r.lowerBound == 0)
        }
    }
}

enum PreTokenizers {
    static func make(_ r: ComponentReader) throws -> PreTokenizer {
        switch try r.kind() {
        case "Sequence": return SequencePreTokenizer(steps: try r.children("pretokenizers").map(make))
        case "ByteLevel":
            return ByteLevelPreTokenizer(addPrefixSpace: try r.bool("add_prefix_space", default: true),
                                         useRegex: try r.bool("use_regex", default: true))
        case "Metaspace": return try MetaspacePreTokenizer(r)
        case "Split":
            guard let pattern = r.child("pattern") else { throw r.fail("missing", "pattern") }
            return SplitPreTokenizer(pattern: try Pattern(pattern), behavior: try SplitBehavior(r),
                                     invert: try r.bool("invert", default: false))
        case "Digits": return DigitsPreTokenizer(individual: try r.bool("individual_digits", default: false))
        case "Whitespace": return WhitespacePreTokenizer()
        case "WhitespaceSplit": return CharSplit(behavior: .removed) { $0.properties.isWhitespace }
        case "Punctuation":
            return CharSplit(behavior: try SplitBehavior(r, default: .isolated), isDelimiter: isPunctuation)
        case "BertPreTokenizer":
            return SequencePreTokenizer(steps: [CharSplit(behavior: .removed) { $0.properties.isWhitespace },
                                                CharSplit(behavior: .isolated, isDelimiter: isPunctuation)])
        default: throw r.unsupported()
        }
    }

    /// Rust's `char::is_ascii_punctuation() || char::is_punctuation()` (tokenizers' definition).
    @Sendable static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII {
            let v = s.value
            return (0x21...0x2F).contains(v) || (0x3A...0x40).contains(v) || (0x5B...0x60).contains(v) || (0x7B...0x7E).contains(v)
        }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }
}

struct SequencePreTokenizer: PreTokenizer {
    let steps: [PreTokenizer]
    func split(_ piece: Piece) -> [Piece] {
        steps.reduce([piece]) { pieces, step in pieces.flatMap(step.split) }
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let pattern: Pattern
    let behavior: SplitBehavior
    let invert: Bool
    func split(_ piece: Piece) -> [Piece] {
        behavior.apply(piece, matches: pattern.matches(in: piece.text), invert: invert)
    }
}

/// Splits where single characters satisfy a predicate (each such character is a delimiter).
struct CharSplit: PreTokenizer {
    let behavior: SplitBehavior
    let isDelimiter: @Sendable (Unicode.Scalar) -> Bool
    func split(_ piece: Piece) -> [Piece] {
        let matches = piece.text.indices.filter { isDelimiter(piece.text[$0]) }.map { $0..<$0 + 1 }
        return behavior.apply(piece, matches: matches)
    }
}

struct DigitsPreTokenizer: PreTokenizer {
    let individual: Bool
    func split(_ piece: Piece) -> [Piece] {
        let isNumeric = { (s: Unicode.Scalar) in
            switch s.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: true
            default: false
            }
        }
        let matches = piece.text.indices.filter { isNumeric(piece.text[$0]) }.map { $0..<$0 + 1 }
        return (individual ? SplitBehavior.isolated : .contiguous).apply(piece, matches: matches)
    }
}

/// `\w+|[^\w\s]+`, keeping the matches, with the Rust `regex` crate's Unicode `\w`
/// (Alphabetic, marks, decimal digits, connector punctuation and Join_Control: a ZWJ is a word
/// character there, unlike in Oniguruma).
struct WhitespacePreTokenizer: PreTokenizer {
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return ScalarSet.isWord(s) }
        if s.value == 0x200C || s.value == 0x200D || s.properties.isAlphabetic { return true }
        switch s.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    func split(_ piece: Piece) -> [Piece] {
        var matches: [Range<Int>] = []
        var i = 0
        let t = piece.text
        while i < t.count {
            if t[i].properties.isWhitespace { i += 1; continue }
            let word = Self.isWord(t[i])
            var j = i + 1
            while j < t.count, !t[j].properties.isWhitespace, Self.isWord(t[j]) == word { j += 1 }
            matches.append(i..<j)
            i = j
        }
        return SplitBehavior.removed.apply(piece, matches: matches, invert: true)
    }
}

/// GPT-2's byte-to-unicode table: every byte becomes a printable scalar.
enum ByteMap {
    static let byteToScalar: [Unicode.Scalar] = {
        var bs = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()
}

struct ByteLevelPreTokenizer: PreTokenizer {
    static let gpt2 = try! ScalarRegex(#"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#)
    let addPrefixSpace: Bool
    let useRegex: Bool

    func split(_ piece: Piece) -> [Piece] {
        var piece = piece
        if addPrefixSpace, piece.text.first != " " { piece.text.insert(" ", at: 0) }
        let pieces = useRegex ? SplitBehavior.isolated.apply(piece, matches: Self.gpt2.matches(in: piece.text)) : [piece]
        return pieces.map { p in
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(p.text.count)
            for s in p.text {
                if s.isASCII {
                    out.append(ByteMap.byteToScalar[Int(s.value)])
                } else {
                    for b in String(s).utf8 { out.append(ByteMap.byteToScalar[Int(b)]) }
                }
            }
            return Piece(text: out, atStart: p.atStart)
        }
    }
}

struct MetaspacePreTokenizer: PreTokenizer {
    enum Prepend: String { case always, first, never }
    let replacement: Unicode.Scalar
    let prepend: Prepend
    let splitPieces: Bool

    init(_ r: ComponentReader) throws {
        let rep = r.json["replacement"]?.string ?? "▁"
        guard rep.unicodeScalars.count == 1 else { throw r.fail("expected one character", "replacement") }
        replacement = rep.unicodeScalars.first!
        if let scheme = r.json["prepend_scheme"]?.string {
            guard let p = Prepend(rawValue: scheme) else { throw r.fail("unknown scheme '\(scheme)'", "prepend_scheme") }
            prepend = p
        } else {
            prepend = try r.bool("add_prefix_space", default: true) ? .always : .never
        }
        splitPieces = try r.bool("split", default: true)
    }

    init(replacement: Unicode.Scalar, prepend: Prepend, split: Bool) {
        self.replacement = replacement
        self.prepend = prepend
        splitPieces = split
    }

    func split(_ piece: Piece) -> [Piece] {
        var p = piece
        p.text = p.text.map { $0 == " " ? replacement : $0 }
        if p.text.first != replacement && (prepend == .always || (prepend == .first && p.atStart)) {
            p.text.insert(replacement, at: 0)
        }
        guard splitPieces else { return [p] }
        let matches = p.text.indices.filter { p.text[$0] == replacement }.map { $0..<$0 + 1 }
        return SplitBehavior.mergedWithNext.apply(p, matches: matches)
    }
}
