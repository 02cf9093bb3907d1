/// Pattern text → regex AST (the Oniguruma / PCRE subset tokenizer.json pre-tokenizers use), and the AST → instructions.

struct RegexParser {
    let p: [Unicode.Scalar]
    var i = 0
    var caseInsensitive = false
    var depth = 0

    /// Deepest group nesting, and most instructions a compiled pattern may have: a pattern is a
    /// string in tokenizer.json, and `((((…` or `((a{1000}){1000}){1000}` must fail, not
    /// overflow the stack or fill memory. Real pre-tokenizers nest 2–3 deep in a few hundred.
    static let maxDepth = 100
    static let maxProgram = 200_000

    init(_ p: [Unicode.Scalar]) { self.p = p }

    func fail(_ message: String) -> RegexError {
        RegexError(pattern: String(String.UnicodeScalarView(p)), message: "\(message) at offset \(i)")
    }

    mutating func parse() throws -> RegexNode {
        let node = try parseAlternation()
        guard i == p.count else { throw fail("unbalanced ')'") }
        guard Self.programSize(node) <= Self.maxProgram else {
            throw fail("the pattern expands to more than \(Self.maxProgram) instructions")
        }
        return node
    }

    /// The instructions `emit` makes for `node`, saturating just above the limit.
    static func programSize(_ node: RegexNode) -> Int {
        let cap = maxProgram + 1
        switch node {
        case let .sequence(items): return min(cap, items.reduce(0) { min(cap, $0 + programSize($1)) })
        case let .alternation(items): return min(cap, items.reduce(0) { min(cap, $0 + programSize($1) + 2) })
        case let .repetition(body, lo, hi, _):
            let b = programSize(body) + 4, copies = hi ?? (lo + 1)
            return copies > 0 && b > cap / copies ? cap : min(cap, b * max(copies, 1))
        case let .look(body, _): return min(cap, programSize(body) + 2)
        default: return 1
        }
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
            if max == nil || (max ?? 0) > 1, Self.hasVariableRepetition(node) {
                // (a+)+, (\w*\s*)*, (a{0,1000}){0,1000}: exponential backtracking on a failing
                // match (tokenizers' Oniguruma gives up on them after its retry limit). No real
                // tokenizer uses them.
                throw fail("a repetition of a repetition (like (a+)+) can take exponential time; nekochat refuses such patterns")
            }
            node = .repetition(node, min: min, max: max, greedy: greedy)
        }
        return node
    }

    /// Whether `node` contains a repetition of a varying count above one (outside lookarounds).
    static func hasVariableRepetition(_ node: RegexNode) -> Bool {
        switch node {
        case let .repetition(inner, lo, hi, _): return hi == nil || (hi! > 1 && hi! != lo) || hasVariableRepetition(inner)
        case let .sequence(items), let .alternation(items): return items.contains(where: hasVariableRepetition)
        default: return false
        }
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
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("groups nest deeper than \(Self.maxDepth)") }
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
                // A body that can match nothing: a turn must move forward, or the loop ends.
                let loop = prog.count
                prog.append(.split(0, 0))
                prog.append(.markTurn)
                emit(body, into: &prog)
                prog.append(.requireProgress)
                prog.append(.jump(loop))
                prog[loop] = greedy ? .split(loop + 1, prog.count) : .split(prog.count, loop + 1)
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
