import Foundation
import NekoJSON

/// The BPE model of tokenizers: vocabulary, ranked merges, byte fallback, unknown token,
/// subword prefix/suffix. Vocabulary keys are UTF-8 bytes, never `String` (Sources/README.md, "Traps").
final class BPE: @unchecked Sendable {
    /// token bytes → id
    let vocab: [[UInt8]: Int32]
    /// id → token text ("" where the vocabulary has a gap)
    let tokens: [String]
    /// (left id, right id) packed in 64 bits → (rank, merged id)
    let merges: [UInt64: (rank: Int32, id: Int32)]
    let unkId: Int32?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let prefix: [UInt8]?
    let suffix: [UInt8]?
    /// `<0xXX>` ids, when the vocabulary has them.
    let byteIds: [Int32?]
    /// scalar → id of the token that is just that scalar (the common first lookup).
    private let scalarIds: [UInt32: Int32]

    private let lock = NSLock()
    private var cache: [[Unicode.Scalar]: [Int32]] = [:]
    static let cacheLimit = 50_000

    init(_ r: ComponentReader) throws {
        guard let vocabMembers = r.json["vocab"]?.members else { throw r.fail("expected an object", "vocab") }
        var vocab: [[UInt8]: Int32] = [:]
        vocab.reserveCapacity(vocabMembers.count)
        var maxId = -1
        for (token, value) in vocabMembers {
            guard let id = value.int, id >= 0, id < Int(Int32.max) else {
                throw r.fail("token \(token.debugDescription) has no valid id", "vocab")
            }
            vocab[Array(token.utf8)] = Int32(id)
            maxId = max(maxId, id)
        }
        guard maxId < 4 * vocabMembers.count + 1024 else {
            throw r.fail("ids go up to \(maxId) for \(vocabMembers.count) tokens", "vocab")
        }
        var tokens = [String](repeating: "", count: maxId + 1)
        for (token, value) in vocabMembers { tokens[value.int!] = token }
        self.vocab = vocab
        self.tokens = tokens

        func optionalString(_ key: String) -> String? { r.json[key]?.string }
        prefix = optionalString("continuing_subword_prefix").map { Array($0.utf8) }
        suffix = optionalString("end_of_word_suffix").map { Array($0.utf8) }
        if let unk = optionalString("unk_token") {
            guard let id = vocab[Array(unk.utf8)] else { throw r.fail("'\(unk)' is not in the vocabulary", "unk_token") }
            unkId = id
        } else {
            unkId = nil
        }
        fuseUnk = try r.bool("fuse_unk", default: false)
        byteFallback = try r.bool("byte_fallback", default: false)
        ignoreMerges = try r.bool("ignore_merges", default: false)
        if let dropout = r.json["dropout"]?.double, dropout > 0 {
            throw TokenizerError.unsupported(file: r.file, field: r.field + ".dropout", type: "BPE dropout \(dropout)")
        }
        byteIds = (0..<256).map { vocab[Array(String(format: "<0x%02X>", $0).utf8)] }
        var scalarIds: [UInt32: Int32] = [:]
        for (bytes, id) in vocab {
            let s = String(decoding: bytes, as: UTF8.self).unicodeScalars
            if s.count == 1, Array(String(s).utf8) == bytes { scalarIds[s.first!.value] = id }
        }
        self.scalarIds = scalarIds

        // Merges: "a b" strings (older files) or ["a", "b"] pairs.
        guard let mergeList = r.json["merges"]?.array else { throw r.fail("expected a list", "merges") }
        var merges: [UInt64: (Int32, Int32)] = [:]
        merges.reserveCapacity(mergeList.count)
        let prefixLength = prefix?.count ?? 0
        for (rank, m) in mergeList.enumerated() {
            let pair: (String, String)
            if let s = m.string {
                let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw r.fail("merge \(rank) '\(s)' is not two tokens", "merges") }
                pair = (String(parts[0]), String(parts[1]))
            } else if let a = m.array, a.count == 2, let x = a[0].string, let y = a[1].string {
                pair = (x, y)
            } else {
                throw r.fail("merge \(rank) is neither \"a b\" nor [a, b]", "merges")
            }
            let left = Array(pair.0.utf8), right = Array(pair.1.utf8)
            guard let a = vocab[left], let b = vocab[right] else {
                throw r.fail("merge \(rank) uses a token missing from the vocabulary", "merges")
            }
            var mergedBytes = left
            if let prefix, right.starts(with: prefix) {
                mergedBytes += right[prefixLength...]
            } else {
                mergedBytes += right
            }
            guard let merged = vocab[mergedBytes] else {
                throw r.fail("merge \(rank) produces a token missing from the vocabulary", "merges")
            }
            let key = UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        self.merges = merges.mapValues { (rank: $0.0, id: $0.1) }
    }

    /// Ids of one pre-tokenized word.
    func tokenize(_ word: [Unicode.Scalar]) -> [Int32] {
        if word.isEmpty { return [] }
        lock.lock()
        if let hit = cache[word] { lock.unlock(); return hit }
        lock.unlock()
        let ids = merge(word)
        lock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[word] = ids
        lock.unlock()
        return ids
    }

    private func lookup(_ bytes: [UInt8]) -> Int32? { vocab[bytes] }

    func merge(_ word: [Unicode.Scalar]) -> [Int32] {
        if ignoreMerges {
            var bytes: [UInt8] = []
            for s in word { bytes += String(s).utf8 }
            if let id = vocab[bytes] { return [id] }
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var pendingUnk = false
        for (i, scalar) in word.enumerated() {
            let isFirst = i == 0, isLast = i == word.count - 1
            var id: Int32?
            var bytes: [UInt8]?
            if (isFirst || prefix == nil) && (!isLast || suffix == nil) {
                id = scalarIds[scalar.value]
            }
            if id == nil {
                var b: [UInt8] = []
                if !isFirst, let prefix { b += prefix }
                b += String(scalar).utf8
                if isLast, let suffix { b += suffix }
                bytes = b
                id = vocab[b]
            }
            if let id {
                if pendingUnk, let unkId { symbols.append(unkId); pendingUnk = false }
                symbols.append(id)
                continue
            }
            if byteFallback {
                let fallback = bytes!.map { byteIds[Int($0)] }
                if fallback.allSatisfy({ $0 != nil }) {
                    // tokenizers adds these before a pending unknown token: kept for parity.
                    symbols += fallback.map { $0! }
                    continue
                }
            }
            if let unkId {
                if pendingUnk && !fuseUnk { symbols.append(unkId) }
                pendingUnk = true
            }
        }
        if pendingUnk, let unkId { symbols.append(unkId) }

        if symbols.count > 1 { applyMerges(&symbols) }
        return symbols
    }

    /// Merges the lowest-ranked adjacent pair, leftmost first, until none applies — with a heap
    /// over a linked list, so long words (a whole line when there is no pre-tokenizer) stay
    /// O(n log n), as tokenizers' `Word::merge_all`.
    func applyMerges(_ symbols: inout [Int32]) {
        let n = symbols.count
        var next = Array(1...n), prev = Array(-1..<(n - 1))
        next[n - 1] = -1
        var heap = MergeHeap()
        func push(_ pos: Int) {
            let right = next[pos]
            guard pos >= 0, right >= 0 else { return }
            let key = UInt64(UInt32(symbols[pos])) << 32 | UInt64(UInt32(symbols[right]))
            if let m = merges[key] { heap.push(.init(rank: m.rank, pos: Int32(pos), left: symbols[pos], right: symbols[right], merged: m.id)) }
        }
        for p in 0..<n - 1 { push(p) }
        var alive = [Bool](repeating: true, count: n)
        while let top = heap.pop() {
            let pos = Int(top.pos)
            guard alive[pos], symbols[pos] == top.left else { continue }
            let right = next[pos]
            guard right >= 0, symbols[right] == top.right else { continue }
            symbols[pos] = top.merged
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[next[right]] = pos }
            if prev[pos] >= 0 { push(prev[pos]) }
            push(pos)
        }
        var out: [Int32] = []
        out.reserveCapacity(n)
        var p = 0
        while p >= 0 { out.append(symbols[p]); p = next[p] }
        symbols = out
    }

    func token(for id: Int) -> String? { id >= 0 && id < tokens.count && !tokens[id].isEmpty ? tokens[id] : nil }
    func id(for token: String) -> Int? { vocab[Array(token.utf8)].map(Int.init) }
    var vocabularySize: Int { tokens.count }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
struct MergeHeap {
    struct Entry {
        var rank: Int32
        var pos: Int32
        var left: Int32
        var right: Int32
        var merged: Int32
        func precedes(_ o: Entry) -> Bool { rank != o.rank ? rank < o.rank : pos < o.pos }
    }
    private var items: [Entry] = []

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].precedes(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count, items[l].precedes(items[m]) { m = l }
                if r < items.count, items[r].precedes(items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return first
    }
}
