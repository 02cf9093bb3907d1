/// A small backtracking regular-expression engine over Unicode scalars, with Oniguruma's
/// semantics for what tokenizer patterns use (GPT-2, Llama 3, Qwen2 and friends): leftmost-first
/// alternation, greedy and lazy quantifiers, `(?:…)`, `(?i:…)`, lookahead, classes with
/// `\p{L}`-style properties, `\s \d \w` in their Unicode meaning.
///
/// Swift's `Regex` matches grapheme clusters (the GPT-2 pattern yields `" é"` where
/// `tokenizers` yields `" e"`, `"\u{301}"`), so tokenizers cannot use it (TRAPS.md).
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
        var stack: [(Int, Int)] = []
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
             stack: inout [(Int, Int)], requireEnd: Bool = false) -> Int? {
        stack.removeAll(keepingCapacity: true)
        stack.append((0, start))
        let n = s.count
        while let (pc0, sp0) = stack.popLast() {
            var pc = pc0, sp = sp0
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
                    stack.append((b, sp))
                    pc = a
                case let .jump(a):
                    pc = a
                case let .look(i, negative):
                    var inner: [(Int, Int)] = []
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

struct RegexParser {
    let p: [Unicode.Scalar]
    var i = 0
    var caseInsensitive = false

    init(_ p: [Unicode.Scalar]) { self.p = p }

    func fail(_ message: String) -> RegexError {
        RegexError(pattern: String(String.UnicodeScalarView(p)), message: "\(message) at offset \(i)")
    }

    mutating func parse() throws -> RegexNode {
        let node = try parseAlternation()
        guard i == p.count else { throw fail("unbalanced ')'") }
        return node
    }

    mutating func parseAlternation() throws -> RegexNode {
        var branches = [try parseSequence()]
        while i < p.count, p[i] == "|" {
            i += 1
            branches.append(try parseSequence())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func parseSequence() throws -> RegexNode {
        var items: [RegexNode] = []
        while i < p.count, p[i] != "|", p[i] != ")" {
            var atom = try parseAtom()
            atom = try parseQuantifiers(atom)
            items.append(atom)
        }
        return items.count == 1 ? items[0] : .sequence(items)
    }

    mutating func parseQuantifiers(_ atom: RegexNode) throws -> RegexNode {
        var node = atom
        while i < p.count {
            var min = 0, max: Int? = nil
            switch p[i] {
            case "*": i += 1
            case "+": min = 1; i += 1
            case "?": max = 1; i += 1
            case "{":
                guard let (lo, hi, next) = braces(at: i) else { return node }
                if let hi, hi < lo { throw fail("repetition {\(lo),\(hi)}: the maximum is below the minimum") }
                if lo > 1000 || (hi ?? 0) > 1000 { throw fail("repetition counts above 1000 are not supported") }
                min = lo; max = hi; i = next
            default: return node
            }
            var greedy = true
            if i < p.count, p[i] == "?" { greedy = false; i += 1 } else if i < p.count, p[i] == "+" {
                throw fail("possessive quantifiers are not supported")
            }
            node = .repetition(node, min: min, max: max, greedy: greedy)
        }
        return node
    }

    /// `{n}`, `{n,}`, `{n,m}`, `{,m}`; nil when the brace is a literal.
    func braces(at start: Int) -> (Int, Int?, Int)? {
        var j = start + 1
        func number() -> Int? {
            var v: Int? = nil
            while j < p.count, let d = Int(String(p[j])), p[j].isASCII, (v ?? 0) < 100_000 { v = (v ?? 0) * 10 + d; j += 1 }
            return v
        }
        let lo = number()
        if j < p.count, p[j] == "}" { return lo.map { ($0, $0, j + 1) } }
        guard j < p.count, p[j] == "," else { return nil }
        j += 1
        let hi = number()
        guard j < p.count, p[j] == "}", lo != nil || hi != nil else { return nil }
        return (lo ?? 0, hi, j + 1)
    }

    mutating func parseAtom() throws -> RegexNode {
        let c = p[i]
        switch c {
        case "(":
            i += 1
            if i < p.count, p[i] == "?" {
                i += 1
                guard i < p.count else { throw fail("unterminated group") }
                switch p[i] {
                case ":":
                    i += 1
                    return try group()
                case "=", "!":
                    let negative = p[i] == "!"
                    i += 1
                    return .look(try group(), negative: negative)
                case "<":
                    throw fail("lookbehind is not supported")
                default:
                    // Inline flags: (?i) or (?i:…), (?-i…)
                    var on = true, flags: [(Bool, Unicode.Scalar)] = []
                    while i < p.count, p[i] != ":", p[i] != ")" {
                        if p[i] == "-" { on = false } else { flags.append((on, p[i])) }
                        i += 1
                    }
                    guard i < p.count else { throw fail("unterminated group") }
                    for (_, f) in flags where f != "i" && f != "x" && f != "m" && f != "s" {
                        throw fail("unsupported flag '\(f)'")
                    }
                    let ci = flags.last { $0.1 == "i" }.map { $0.0 }
                    if p[i] == ")" {
                        i += 1
                        if let ci { caseInsensitive = ci }
                        return .empty
                    }
                    i += 1
                    let saved = caseInsensitive
                    if let ci { caseInsensitive = ci }
                    defer { caseInsensitive = saved }
                    return try group()
                }
            }
            return try group()
        case ")":
            throw fail("unbalanced ')'")
        case "[":
            return .set(try parseClass())
        case ".":
            i += 1
            return .any
        case "^":
            i += 1
            return .lineStart
        case "$":
            i += 1
            return .lineEnd
        case "\\":
            return try parseEscape(inClass: false)
        case "*", "+", "?":
            throw fail("nothing to repeat")
        default:
            i += 1
            return literal(c.value)
        }
    }

    mutating func group() throws -> RegexNode {
        let saved = caseInsensitive
        let node = try parseAlternation()
        caseInsensitive = saved
        guard i < p.count, p[i] == ")" else { throw fail("missing ')'") }
        i += 1
        return node
    }

    func literal(_ v: UInt32) -> RegexNode {
        caseInsensitive ? .scalar(fold(v), fold: true) : .scalar(v, fold: false)
    }

    mutating func hex(count: Int?) throws -> UInt32 {
        var v: UInt32 = 0, digits = 0
        let braced = count == nil
        if braced {
            guard i < p.count, p[i] == "{" else { throw fail("expected '{'") }
            i += 1
        }
        while i < p.count, p[i].isASCII, let d = UInt32(String(p[i]), radix: 16) {
            if let count, digits == count { break }
            v = v * 16 + d; digits += 1; i += 1
        }
        if braced {
            guard i < p.count, p[i] == "}" else { throw fail("expected '}'") }
            i += 1
        }
        guard digits > 0 else { throw fail("invalid hex escape") }
        return v
    }

    /// An escape: a literal, or a class such as `\s` / `\p{L}`.
    mutating func parseEscape(inClass: Bool) throws -> RegexNode {
        i += 1
        guard i < p.count else { throw fail("trailing backslash") }
        let c = p[i]
        i += 1
        func set(_ prop: ScalarSet.Property, negated: Bool = false) -> RegexNode {
            var s = ScalarSet()
            s.properties = [negated ? .not(prop) : prop]
            s.finish()
            return .set(s)
        }
        switch c {
        case "s": return set(.whitespace)
        case "S": return set(.whitespace, negated: true)
        case "d": return set(.digit)
        case "D": return set(.digit, negated: true)
        case "w": return set(.word)
        case "W": return set(.word, negated: true)
        case "p", "P":
            let prop = try property()
            return set(prop, negated: c == "P")
        case "n": return .scalar(0x0A, fold: false)
        case "r": return .scalar(0x0D, fold: false)
        case "t": return .scalar(0x09, fold: false)
        case "f": return .scalar(0x0C, fold: false)
        case "v": return .scalar(0x0B, fold: false)
        case "a": return .scalar(0x07, fold: false)
        case "e": return .scalar(0x1B, fold: false)
        case "0": return .scalar(0, fold: false)
        case "x":
            return literal(try (i < p.count && p[i] == "{") ? hex(count: nil) : hex(count: 2))
        case "u": return literal(try hex(count: 4))
        case "A" where !inClass: return .textStart
        case "z" where !inClass, "Z" where !inClass: return .textEnd
        case "b" where !inClass: return .wordBoundary(negative: false)
        case "B" where !inClass: return .wordBoundary(negative: true)
        default:
            if c.properties.isAlphabetic || ("1"..."9").contains(c) {
                throw fail("unsupported escape '\\\(c)'")
            }
            return literal(c.value)
        }
    }

    /// `{L}`, `{Lu}`, `{^N}`, `L` (one letter), `{Letter}`…
    mutating func property() throws -> ScalarSet.Property {
        var name = ""
        var negate = false
        if i < p.count, p[i] == "{" {
            i += 1
            if i < p.count, p[i] == "^" { negate = true; i += 1 }
            while i < p.count, p[i] != "}" { name.unicodeScalars.append(p[i]); i += 1 }
            guard i < p.count else { throw fail("unterminated \\p{") }
            i += 1
        } else if i < p.count {
            name = String(p[i]); i += 1
        }
        guard let cats = Self.categories[name.replacingOccurrences(of: "_", with: "").lowercased()] else {
            throw fail("unknown property '\(name)'")
        }
        let prop = ScalarSet.Property.categories(cats)
        return negate ? .not(prop) : prop
    }

    static let categories: [String: Set<Unicode.GeneralCategory>] = {
        let letters: Set<Unicode.GeneralCategory> = [.uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter]
        let marks: Set<Unicode.GeneralCategory> = [.nonspacingMark, .spacingMark, .enclosingMark]
        let numbers: Set<Unicode.GeneralCategory> = [.decimalNumber, .letterNumber, .otherNumber]
        let punct: Set<Unicode.GeneralCategory> = [.connectorPunctuation, .dashPunctuation, .openPunctuation,
            .closePunctuation, .initialPunctuation, .finalPunctuation, .otherPunctuation]
        let symbols: Set<Unicode.GeneralCategory> = [.mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol]
        let separators: Set<Unicode.GeneralCategory> = [.spaceSeparator, .lineSeparator, .paragraphSeparator]
        let other: Set<Unicode.GeneralCategory> = [.control, .format, .surrogate, .privateUse, .unassigned]
        return [
            "l": letters, "letter": letters, "lu": [.uppercaseLetter], "ll": [.lowercaseLetter], "lt": [.titlecaseLetter],
            "lm": [.modifierLetter], "lo": [.otherLetter], "uppercaseletter": [.uppercaseLetter],
            "lowercaseletter": [.lowercaseLetter],
            "m": marks, "mark": marks, "mn": [.nonspacingMark], "mc": [.spacingMark], "me": [.enclosingMark],
            "n": numbers, "number": numbers, "nd": [.decimalNumber], "nl": [.letterNumber], "no": [.otherNumber],
            "p": punct, "punctuation": punct, "pc": [.connectorPunctuation], "pd": [.dashPunctuation],
            "ps": [.openPunctuation], "pe": [.closePunctuation], "pi": [.initialPunctuation],
            "pf": [.finalPunctuation], "po": [.otherPunctuation],
            "s": symbols, "symbol": symbols, "sm": [.mathSymbol], "sc": [.currencySymbol], "sk": [.modifierSymbol],
            "so": [.otherSymbol],
            "z": separators, "separator": separators, "zs": [.spaceSeparator], "zl": [.lineSeparator],
            "zp": [.paragraphSeparator],
            "c": other, "other": other, "cc": [.control], "cf": [.format], "co": [.privateUse], "cn": [.unassigned],
            "cs": [.surrogate],
        ]
    }()

    mutating func parseClass() throws -> ScalarSet {
        i += 1
        var set = ScalarSet()
        set.caseInsensitive = caseInsensitive
        if i < p.count, p[i] == "^" { set.negated = true; i += 1 }
        var first = true
        while i < p.count, p[i] != "]" || first {
            first = false
            if p[i] == "[" { throw fail("nested classes are not supported") }
            var lo: UInt32
            if p[i] == "\\" {
                let node = try parseEscape(inClass: true)
                switch node {
                case let .scalar(v, _): lo = v
                case let .set(inner):
                    set.properties += inner.properties
                    continue
                default: throw fail("unsupported escape in a class")
                }
            } else {
                lo = p[i].value
                i += 1
            }
            if i + 1 < p.count, p[i] == "-", p[i + 1] != "]" {
                i += 1
                var hi: UInt32
                if p[i] == "\\" {
                    guard case let .scalar(v, _) = try parseEscape(inClass: true) else { throw fail("invalid range") }
                    hi = v
                } else {
                    hi = p[i].value
                    i += 1
                }
                guard lo <= hi else { throw fail("invalid range") }
                set.ranges.append(lo...hi)
            } else {
                set.ranges.append(lo...lo)
            }
        }
        guard i < p.count else { throw fail("unterminated class") }
        i += 1
        set.finish()
        return set
    }
}

struct RegexCompiler {
    var sets: [ScalarSet] = []
    var subprograms: [[Instruction]] = []

    mutating func compile(_ node: RegexNode) -> [Instruction] {
        var prog: [Instruction] = []
        emit(node, into: &prog)
        prog.append(.match)
        return prog
    }

    static func nullable(_ node: RegexNode) -> Bool {
        switch node {
        case .empty, .look, .lineStart, .lineEnd, .textStart, .textEnd, .wordBoundary: true
        case .scalar, .any, .set: false
        case let .sequence(items): items.allSatisfy(nullable)
        case let .alternation(branches): branches.contains(where: nullable)
        case let .repetition(body, min, _, _): min == 0 || nullable(body)
        }
    }

    mutating func emit(_ node: RegexNode, into prog: inout [Instruction]) {
        switch node {
        case .empty: break
        case let .scalar(v, f): prog.append(f ? .scalarFold(v) : .scalar(v))
        case .any: prog.append(.any)
        case let .set(s):
            sets.append(s)
            prog.append(.set(sets.count - 1))
        case let .sequence(items): for item in items { emit(item, into: &prog) }
        case let .alternation(branches):
            // split L1, next; L1: a; jump end; next: split L2, …
            var jumps: [Int] = []
            for (k, branch) in branches.enumerated() {
                if k < branches.count - 1 {
                    let split = prog.count
                    prog.append(.split(0, 0))
                    emit(branch, into: &prog)
                    jumps.append(prog.count)
                    prog.append(.jump(0))
                    prog[split] = .split(split + 1, prog.count)
                } else {
                    emit(branch, into: &prog)
                }
            }
            for j in jumps { prog[j] = .jump(prog.count) }
        case let .repetition(body, min, max, greedy):
            for _ in 0..<min { emit(body, into: &prog) }
            if let max {
                // (body (body …)?)? up to max − min times
                var splits: [Int] = []
                for _ in min..<max {
                    splits.append(prog.count)
                    prog.append(.split(0, 0))
                    emit(body, into: &prog)
                }
                for s in splits { prog[s] = greedy ? .split(s + 1, prog.count) : .split(prog.count, s + 1) }
            } else if Self.nullable(body) {
                // A body that can match nothing would loop forever: take it at most once.
                let s = prog.count
                prog.append(.split(0, 0))
                emit(body, into: &prog)
                prog[s] = greedy ? .split(s + 1, prog.count) : .split(prog.count, s + 1)
            } else {
                let loop = prog.count
                prog.append(.split(0, 0))
                emit(body, into: &prog)
                prog.append(.jump(loop))
                prog[loop] = greedy ? .split(loop + 1, prog.count) : .split(prog.count, loop + 1)
            }
        case let .look(body, negative):
            var sub: [Instruction] = []
            emit(body, into: &sub)
            sub.append(.match)
            subprograms.append(sub)
            prog.append(.look(subprograms.count - 1, negative: negative))
        case .lineStart: prog.append(.lineStart)
        case .lineEnd: prog.append(.lineEnd)
        case .textStart: prog.append(.textStart)
        case .textEnd: prog.append(.textEnd)
        case let .wordBoundary(negative): prog.append(.wordBoundary(negative: negative))
        }
    }
}
