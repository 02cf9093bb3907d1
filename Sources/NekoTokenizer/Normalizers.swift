import Foundation
import NekoJSON

/// Text → text, before pre-tokenization (tokenizers' `normalizers`).
protocol Normalizer: Sendable {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar]
}

enum Normalizers {
    static func make(_ r: ComponentReader) throws -> Normalizer {
        switch try r.kind() {
        case "Sequence": return SequenceNormalizer(steps: try r.children("normalizers").map(make))
        case "NFC": return UnicodeForm(form: .nfc)
        case "NFD": return UnicodeForm(form: .nfd)
        case "NFKC": return UnicodeForm(form: .nfkc)
        case "NFKD": return UnicodeForm(form: .nfkd)
        case "Lowercase": return Lowercase()
        case "Prepend": return Prepend(prefix: Array(try r.string("prepend").unicodeScalars))
        case "Replace": return Replace(pattern: try Pattern(r.child("pattern") ?? { throw r.fail("missing", "pattern") }()),
                                       content: Array(try r.string("content").unicodeScalars))
        case "Strip": return Strip(left: try r.bool("strip_left", default: true), right: try r.bool("strip_right", default: true))
        case "StripAccents": return StripAccents()
        default: throw r.unsupported()
        }
    }
}

struct SequenceNormalizer: Normalizer {
    let steps: [Normalizer]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { steps.reduce(text) { $1.normalize($0) } }
}

struct UnicodeForm: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        if text.allSatisfy({ $0.isASCII }) { return text }
        let s = String(String.UnicodeScalarView(text))
        let out: String
        switch form {
        case .nfc: out = s.precomposedStringWithCanonicalMapping
        case .nfd: out = s.decomposedStringWithCanonicalMapping
        // NFC(NFKD(s)): Foundation's own NFKC on Linux leaves half-width voiced marks uncomposed.
        case .nfkc: out = s.decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
        case .nfkd: out = s.decomposedStringWithCompatibilityMapping
        }
        return Array(out.unicodeScalars)
    }
}

/// Per-scalar full lowercase mapping (Rust's `char::to_lowercase`, no final-sigma context).
struct Lowercase: Normalizer {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for s in text {
            if s.isASCII {
                out.append(s.value >= 0x41 && s.value <= 0x5A ? Unicode.Scalar(s.value + 32)! : s)
            } else {
                out.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return out
    }
}

struct Prepend: Normalizer {
    let prefix: [Unicode.Scalar]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { text.isEmpty ? text : prefix + text }
}

struct Replace: Normalizer {
    let pattern: Pattern
    let content: [Unicode.Scalar]
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] { pattern.replace(in: text, with: content) }
}

struct Strip: Normalizer {
    let left: Bool, right: Bool
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var lo = 0, hi = text.count
        if left { while lo < hi, text[lo].properties.isWhitespace { lo += 1 } }
        if right { while hi > lo, text[hi - 1].properties.isWhitespace { hi -= 1 } }
        return Array(text[lo..<hi])
    }
}

/// Removes combining marks (Mn), as tokenizers' StripAccents does after NFD.
struct StripAccents: Normalizer {
    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        text.filter { $0.properties.generalCategory != .nonspacingMark }
    }
}

/// A `{"String": …}` or `{"Regex": …}` pattern of Split, Replace and friends.
struct Pattern: Sendable {
    enum Kind: Sendable {
        case literal([Unicode.Scalar])
        case regex(ScalarRegex)
    }
    let kind: Kind

    init(_ r: ComponentReader) throws {
        if let s = r.json["String"]?.string {
            kind = .literal(Array(s.unicodeScalars))
        } else if let s = r.json["Regex"]?.string {
            do { kind = .regex(try ScalarRegex(s)) } catch let e as RegexError {
                throw r.fail(e.description, "Regex")
            }
        } else {
            throw r.fail("expected {\"String\": …} or {\"Regex\": …}")
        }
    }

    init(literal: [Unicode.Scalar]) { kind = .literal(literal) }

    /// Non-overlapping matches, left to right.
    func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        switch kind {
        case let .regex(re): return re.matches(in: text)
        case let .literal(p):
            guard !p.isEmpty, p.count <= text.count else { return [] }
            var out: [Range<Int>] = []
            var i = 0
            while i + p.count <= text.count {
                if text[i] == p[0], Array(text[i..<i + p.count]) == p {
                    out.append(i..<i + p.count)
                    i += p.count
                } else {
                    i += 1
                }
            }
            return out
        }
    }

    func replace(in text: [Unicode.Scalar], with content: [Unicode.Scalar]) -> [Unicode.Scalar] {
        let ms = matches(in: text)
        guard !ms.isEmpty else { return text }
        var out: [Unicode.Scalar] = []
        var last = 0
        for m in ms {
            out += text[last..<m.lowerBound]
            out += content
            last = m.upperBound
        }
        out += text[last...]
        return out
    }
}
