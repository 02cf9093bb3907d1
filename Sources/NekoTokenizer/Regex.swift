/// A small backtracking regular-expression engine over Unicode scalars, with Oniguruma's
/// semantics for what tokenizer patterns use (GPT-2, Llama 3, Qwen2 and friends): leftmost-first
/// alternation, greedy and lazy quantifiers, `(?:…)`, `(?i:…)`, lookahead, classes with
/// `\p{L}`-style properties, `\s \d \w` in their Unicode meaning.
///
/// Swift's `Regex` matches grapheme clusters (the GPT-2 pattern yields `" é"` where
/// `tokenizers` yields `" e"`, `"\u{301}"`), so tokenizers cannot use it (Sources/README.md, "Traps").
public struct ScalarRegex: Sendable {
    public let pattern: String
    let program: [Instruction]
    let sets: [ScalarSet]
    let subprograms: [[Instruction]]

    public init(_ pattern: String) throws {
        self.pattern = pattern
        var parser = RegexParser(Array(pattern.unicodeScalars))
        let ast = try parser.parse()
        var compiler = RegexCompiler()
        program = compiler.compile(ast)
        sets = compiler.sets
        subprograms = compiler.subprograms
    }

    /// Non-overlapping matches, left to right, as ranges of scalar offsets.
    public func matches(in text: [Unicode.Scalar]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start = 0
        var stack: [(Int, Int, Int)] = []
        while start <= text.count {
            if let end = run(program, text, at: start, stack: &stack) {
                result.append(start..<end)
                start = end > start ? end : start + 1
            } else {
                start += 1
            }
        }
        return result
    }

    func run(_ prog: [Instruction], _ s: [Unicode.Scalar], at start: Int,
             stack: inout [(Int, Int, Int)], requireEnd: Bool = false) -> Int? {
        stack.removeAll(keepingCapacity: true)
        stack.append((0, start, -1))
        let n = s.count
        while let (pc0, sp0, reg0) = stack.popLast() {
            var pc = pc0, sp = sp0, reg = reg0
            thread: while true {
                switch prog[pc] {
                case let .scalar(c):
                    guard sp < n, s[sp].value == c else { break thread }
                    pc += 1; sp += 1
                case let .scalarFold(c):
                    guard sp < n, fold(s[sp].value) == c else { break thread }
                    pc += 1; sp += 1
                case .any:
                    guard sp < n, s[sp] != "\n" else { break thread }
                    pc += 1; sp += 1
                case let .set(i):
                    guard sp < n, sets[i].contains(s[sp]) else { break thread }
                    pc += 1; sp += 1
                case let .split(a, b):
                    stack.append((b, sp, reg))
                    pc = a
                case .markTurn:
                    reg = sp
                    pc += 1
                case .requireProgress:
                    guard sp > reg else { break thread }
                    pc += 1
                case let .jump(a):
                    pc = a
                case let .look(i, negative):
                    var inner: [(Int, Int, Int)] = []
                    let found = run(subprograms[i], s, at: sp, stack: &inner) != nil
                    guard found != negative else { break thread }
                    pc += 1
                case .lineStart:
                    guard sp == 0 || s[sp - 1] == "\n" else { break thread }
                    pc += 1
                case .lineEnd:
                    guard sp == n || s[sp] == "\n" else { break thread }
                    pc += 1
                case .textStart:
                    guard sp == 0 else { break thread }
                    pc += 1
                case .textEnd:
                    guard sp == n else { break thread }
                    pc += 1
                case let .wordBoundary(negative):
                    let before = sp > 0 && ScalarSet.isWord(s[sp - 1])
                    let after = sp < n && ScalarSet.isWord(s[sp])
                    guard (before != after) != negative else { break thread }
                    pc += 1
                case .match:
                    if requireEnd && sp != n { break thread }
                    return sp
                }
            }
        }
        return nil
    }
}

/// Simple case folding: the lowercase mapping when it is one scalar.
@inline(__always) func fold(_ v: UInt32) -> UInt32 {
    if v < 0x80 { return (v >= 0x41 && v <= 0x5A) ? v + 32 : v }
    guard let s = Unicode.Scalar(v) else { return v }
    let lower = s.properties.lowercaseMapping.unicodeScalars
    return lower.count == 1 ? lower.first!.value : v
}

enum Instruction: Sendable {
    case scalar(UInt32)
    case scalarFold(UInt32)
    case any
    case set(Int)
    /// Try `a` first, then `b`.
    case split(Int, Int)
    case jump(Int)
    case look(Int, negative: Bool)
    case lineStart, lineEnd, textStart, textEnd
    case wordBoundary(negative: Bool)
    /// A loop whose body can match nothing: remember where this turn starts, and fail a turn
    /// that did not move (its exit, pushed by the loop's split, is taken instead). One register
    /// is enough: nested unbounded loops are refused by the parser.
    case markTurn
    case requireProgress
    case match
}

/// A character class: ranges and Unicode properties, possibly negated.
struct ScalarSet: Sendable {
    enum Property: Sendable {
        case categories(Set<Unicode.GeneralCategory>)
        case whitespace, digit, word
        indirect case not(Property)
    }
    var ranges: [ClosedRange<UInt32>] = []
    var properties: [Property] = []
    var negated = false
    var caseInsensitive = false
    /// Answers for ASCII, precomputed.
    var ascii: [Bool] = []

    mutating func finish() {
        ascii = (0..<128).map { containsSlow(Unicode.Scalar(UInt8($0))) }
    }

    @inline(__always) func contains(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128, !ascii.isEmpty { return ascii[Int(s.value)] }
        return containsSlow(s)
    }

    func containsSlow(_ s: Unicode.Scalar) -> Bool {
        var hit = matches(s.value) || properties.contains { Self.has($0, s) }
        if !hit, caseInsensitive {
            let f = fold(s.value)
            hit = matches(f) || ranges.contains { r in (r.lowerBound...r.upperBound).count < 512
                && r.contains { fold($0) == f } }
        }
        return hit != negated
    }

    func matches(_ v: UInt32) -> Bool { ranges.contains { $0.contains(v) } }

    static func has(_ p: Property, _ s: Unicode.Scalar) -> Bool {
        switch p {
        case let .categories(set): set.contains(s.properties.generalCategory)
        case .whitespace: s.properties.isWhitespace
        case .digit: s.properties.generalCategory == .decimalNumber
        case .word: isWord(s)
        case let .not(inner): !has(inner, s)
        }
    }

    /// Oniguruma's Unicode `\w`: letters, marks, decimal numbers, connector punctuation.
    static func isWord(_ s: Unicode.Scalar) -> Bool {
        if s.value < 128 {
            let v = s.value
            return (v >= 0x30 && v <= 0x39) || (v >= 0x41 && v <= 0x5A) || (v >= 0x61 && v <= 0x7A) || v == 0x5F
        }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }
}

/// A regex or tokenizer pattern the engine cannot compile.
public struct RegexError: Error, CustomStringConvertible, Equatable {
    public let pattern: String
    public let message: String
    public var description: String { "regex \(pattern.debugDescription): \(message)" }
}

indirect enum RegexNode {
    case empty
    case scalar(UInt32, fold: Bool)
    case any
    case set(ScalarSet)
    case sequence([RegexNode])
    case alternation([RegexNode])
    case repetition(RegexNode, min: Int, max: Int?, greedy: Bool)
    case look(RegexNode, negative: Bool)
    case lineStart, lineEnd, textStart, textEnd
    case wordBoundary(negative: Bool)
}
