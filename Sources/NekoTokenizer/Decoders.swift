import NekoJSON

/// Tokens → text pieces (tokenizers' `decoder.decode_chain`); the pieces are joined at the end.
protocol TokenDecoder: Sendable {
    func decode(_ tokens: [String]) -> [String]
}

enum Decoders {
    static func make(_ r: ComponentReader) throws -> TokenDecoder {
        switch try r.kind() {
        case "Sequence": return SequenceDecoder(steps: try r.children("decoders").map(make))
        case "ByteLevel": return ByteLevelDecoder()
        case "ByteFallback": return ByteFallbackDecoder()
        case "Fuse": return FuseDecoder()
        case "Strip":
            return StripDecoder(content: Array(try r.string("content").unicodeScalars).first ?? " ",
                                start: try r.int("start"), stop: try r.int("stop"))
        case "Replace":
            guard let p = r.child("pattern") else { throw r.fail("missing", "pattern") }
            return ReplaceDecoder(pattern: try Pattern(p), content: Array(try r.string("content").unicodeScalars))
        case "Metaspace":
            let m = try MetaspacePreTokenizer(r)
            return MetaspaceDecoder(replacement: m.replacement, stripFirst: m.prepend != .never)
        case "WordPiece":
            return WordPieceDecoder(prefix: r.json["prefix"]?.string ?? "##", cleanup: try r.bool("cleanup", default: true))
        case "BPEDecoder": return BPESuffixDecoder(suffix: r.json["suffix"]?.string ?? "</w>")
        default: throw r.unsupported()
        }
    }
}

struct SequenceDecoder: TokenDecoder {
    let steps: [TokenDecoder]
    func decode(_ tokens: [String]) -> [String] { steps.reduce(tokens) { $1.decode($0) } }
}

/// Maps GPT-2's byte scalars back to bytes; invalid UTF-8 becomes U+FFFD.
struct ByteLevelDecoder: TokenDecoder {
    func decode(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens {
            let mapped = t.unicodeScalars.map { ByteMap.scalarToByte[$0.value] }
            if mapped.allSatisfy({ $0 != nil }) { bytes += mapped.map { $0! } } else { bytes += t.utf8 }
        }
        return [String(decoding: bytes, as: UTF8.self)]
    }
}

/// `<0xXX>` tokens become bytes; a run that is not valid UTF-8 becomes one U+FFFD per byte.
struct ByteFallbackDecoder: TokenDecoder {
    static func byte(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3..<5], as: UTF8.self), radix: 16)
    }

    func decode(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validating: pending, as: UTF8.self) {
                out.append(s)
            } else {
                out.append(String(repeating: "\u{FFFD}", count: pending.count))
            }
            pending.removeAll()
        }
        for t in tokens {
            if let b = Self.byte(t) { pending.append(b) } else { flush(); out.append(t) }
        }
        flush()
        return out
    }
}

struct FuseDecoder: TokenDecoder {
    func decode(_ tokens: [String]) -> [String] { [tokens.joined()] }
}

struct StripDecoder: TokenDecoder {
    let content: Unicode.Scalar
    let start: Int, stop: Int
    func decode(_ tokens: [String]) -> [String] {
        tokens.map { t in
            var s = Array(t.unicodeScalars)
            var lo = 0, hi = s.count
            while lo < min(start, s.count), s[lo] == content { lo += 1 }
            var removed = 0
            while removed < stop, hi > lo, s[hi - 1] == content { hi -= 1; removed += 1 }
            s = Array(s[lo..<hi])
            return String(String.UnicodeScalarView(s))
        }
    }
}

struct ReplaceDecoder: TokenDecoder {
    let pattern: Pattern
    let content: [Unicode.Scalar]
    func decode(_ tokens: [String]) -> [String] {
        tokens.map { String(String.UnicodeScalarView(pattern.replace(in: Array($0.unicodeScalars), with: content))) }
    }
}

/// The replacement becomes a space, except in the first token, where (unless the scheme is
/// `never`) tokenizers drops every replacement character.
struct MetaspaceDecoder: TokenDecoder {
    let replacement: Unicode.Scalar
    let stripFirst: Bool
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            let s = t.unicodeScalars.compactMap { c -> Unicode.Scalar? in
                c != replacement ? c : (i == 0 && stripFirst ? nil : " ")
            }
            return String(String.UnicodeScalarView(s))
        }
    }
}

struct WordPieceDecoder: TokenDecoder {
    let prefix: String
    let cleanup: Bool
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s = t
            if i != 0 {
                if s.utf8.starts(with: prefix.utf8) { s = String(decoding: s.utf8.dropFirst(prefix.utf8.count), as: UTF8.self) } else { s = " " + s }
            }
            if cleanup {
                for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                               (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
                    s = s.replacingOccurrences(of: a, with: b)
                }
            }
            return s
        }
    }
}

struct BPESuffixDecoder: TokenDecoder {
    let suffix: String
    func decode(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ")
        }
    }
}

import Foundation
