import Foundation
import NekoJSON

/// A Jinja value with Python's semantics (printing, equality, truthiness).
public indirect enum Value: Sendable {
    /// jinja2's default Undefined: prints as "", is falsy, iterates as empty; using it in most
    /// other ways is an error that names `hint`.
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case list([Value])
    case tuple([Value])
    case dict(Dict)
    case object(TemplateObject)

    /// An insertion-ordered dictionary (Python 3.7+ order; `tojson` and `items()` depend on it).
    public struct Dict: Sendable {
        public var keys: [Value] = []
        public var values: [Value] = []
        public init() {}

        public subscript(key: Value) -> Value? {
            get { keys.firstIndex { $0.pyEquals(key) }.map { values[$0] } }
            set {
                if let i = keys.firstIndex(where: { $0.pyEquals(key) }) {
                    if let newValue { values[i] = newValue } else { keys.remove(at: i); values.remove(at: i) }
                } else if let newValue {
                    keys.append(key)
                    values.append(newValue)
                }
            }
        }

        public subscript(key: String) -> Value? {
            get { self[.string(key)] }
            set { self[.string(key)] = newValue }
        }
        public var count: Int { keys.count }
        public var pairs: [(Value, Value)] { Array(zip(keys, values)) }
    }

    public static func string(_ s: Substring) -> Value { .string(String(s)) }

    // MARK: conversions

    /// From parsed JSON (messages, tools, tokenizer_config.json), keeping key order.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d): self = .float(d)
        case let .string(s): self = .string(s)
        case let .array(a): self = .list(a.map(Value.init(json:)))
        case let .object(members):
            var d = Dict()
            for (k, v) in members { d[.string(k)] = Value(json: v) }
            self = .dict(d)
        }
    }

    var isUndefined: Bool { if case .undefined = self { true } else { false } }
    var isNone: Bool { if case .none = self { true } else { false } }

    /// Python truthiness.
    public var truthy: Bool {
        switch self {
        case .undefined, .none: false
        case let .bool(b): b
        case let .int(i): i != 0
        case let .float(d): d != 0
        case let .string(s): !s.isEmpty
        case let .list(a), let .tuple(a): !a.isEmpty
        case let .dict(d): d.count > 0
        case .object: true
        }
    }

    /// The Python type name used in error messages.
    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .string: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case let .object(o): o.typeName
        }
    }

    /// Number as Double (bools count as 0/1, as in Python).
    var number: Double? {
        switch self {
        case let .int(i): Double(i)
        case let .float(d): d
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }

    var integer: Int? {
        switch self {
        case let .int(i): i
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }

    // MARK: equality and order (Python's)

    public func pyEquals(_ other: Value) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.pyEquals($1) }
        case let (.dict(a), .dict(b)):
            return a.count == b.count && zip(a.keys, a.values).allSatisfy { k, v in b[k].map { v.pyEquals($0) } ?? false }
        case let (.object(a), .object(b)): return a === b
        default:
            if let x = number, let y = other.number, !(isString || other.isString) { return x == y }
            return false
        }
    }

    var isString: Bool { if case .string = self { true } else { false } }

    /// Python's `<`; nil when the types do not order.
    func pyLess(_ other: Value) -> Bool? {
        switch (self, other) {
        case let (.string(a), .string(b)): return a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            for (x, y) in zip(a, b) where !x.pyEquals(y) { return x.pyLess(y) }
            return a.count < b.count
        default:
            if let x = number, let y = other.number { return x < y }
            return nil
        }
    }

    // MARK: printing

    /// Python's `str()`.
    public var str: String {
        switch self {
        case .undefined: ""
        case .string(let s): s
        default: repr
        }
    }

    /// Python's `repr()`.
    public var repr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case let .bool(b): b ? "True" : "False"
        case let .int(i): String(i)
        case let .float(d): Value.pyFloat(d)
        case let .string(s): Value.pyStringRepr(s)
        case let .list(a): "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case let .tuple(a): a.count == 1 ? "(" + a[0].repr + ",)" : "(" + a.map(\.repr).joined(separator: ", ") + ")"
        case let .dict(d): "{" + zip(d.keys, d.values).map { "\($0.repr): \($1.repr)" }.joined(separator: ", ") + "}"
        case let .object(o): o.repr
        }
    }

    /// Python's float repr: shortest round-trip digits; exponent form below 1e-4 and from 1e16.
    static func pyFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        // Swift's description has the shortest round-trip digits; re-lay them out as Python does.
        var text = "\(abs(d))"
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exponent = Int(text[text.index(after: e)...]) ?? 0
            text = String(text[..<e])
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let intPart = String(parts[0]), fracPart = parts.count > 1 ? String(parts[1]) : ""
        var digits = intPart + fracPart
        var pointPosition = intPart.count + exponent   // digits before the decimal point
        while digits.hasPrefix("0"), digits.count > 1 { digits.removeFirst(); pointPosition -= 1 }
        while digits.hasSuffix("0"), digits.count > 1 { digits.removeLast() }
        let decimalExponent = pointPosition - 1
        var out: String
        if decimalExponent < -4 || decimalExponent >= 16 {
            out = String(digits.first!)
            if digits.count > 1 { out += "." + digits.dropFirst() }
            out += "e" + (decimalExponent < 0 ? "-" : "+") + (abs(decimalExponent) < 10 ? "0" : "") + String(abs(decimalExponent))
        } else if pointPosition <= 0 {
            out = "0." + String(repeating: "0", count: -pointPosition) + digits
        } else if pointPosition >= digits.count {
            out = digits + String(repeating: "0", count: pointPosition - digits.count) + ".0"
        } else {
            let idx = digits.index(digits.startIndex, offsetBy: pointPosition)
            out = digits[..<idx] + "." + digits[idx...]
        }
        return (d < 0 ? "-" : "") + out
    }

    /// Python's repr of a str: single quotes unless the text has ' and no ".
    static func pyStringRepr(_ s: String) -> String {
        let useDouble = s.unicodeScalars.contains("'") && !s.unicodeScalars.contains("\"")
        let quote: Unicode.Scalar = useDouble ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            case quote: out.append("\\"); out.append(c)
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out.append(contentsOf: String(format: "\\x%02x", c.value).unicodeScalars)
                } else if !isPrintable(c) {
                    let hex = String(c.value, radix: 16)
                    let (prefix, width) = c.value <= 0xFF ? ("\\x", 2) : c.value <= 0xFFFF ? ("\\u", 4) : ("\\U", 8)
                    out.append(contentsOf: (prefix + String(repeating: "0", count: width - hex.count) + hex).unicodeScalars)
                } else {
                    out.append(c)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    /// Python's str.isprintable for one character (not Cc, Cf, Cs, Co, Cn, Zl, Zp, or Zs other than space).
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator: return false
        case .spaceSeparator: return c == " "
        default: return true
        }
    }
}

/// Objects with attributes: namespaces, loop variables, macros, functions.
public class TemplateObject: @unchecked Sendable {
    var typeName: String { "object" }
    var repr: String { "<\(typeName) object>" }
    func attribute(_ name: String) -> Value? { nil }
    /// Called as a function; nil when the object is not callable.
    func call(_ args: [Value], _ kwargs: [(String, Value)], _ interpreter: Interpreter) throws -> Value? { nil }
}

/// `namespace(...)`: the one mutable object templates may set attributes on.
final class Namespace: TemplateObject, @unchecked Sendable {
    var values = Value.Dict()
    override var typeName: String { "Namespace" }
    override var repr: String { "<Namespace \(Value.dict(values).repr)>" }
    override func attribute(_ name: String) -> Value? { values[name] }
}

/// A built-in function (`range`, `raise_exception`, bound methods such as `'a'.upper`).
final class Function: TemplateObject, @unchecked Sendable {
    let name: String
    let body: ([Value], [(String, Value)], Interpreter) throws -> Value
    init(_ name: String, _ body: @escaping ([Value], [(String, Value)], Interpreter) throws -> Value) {
        self.name = name
        self.body = body
    }
    override var typeName: String { "function" }
    override var repr: String { "<function \(name)>" }
    override func call(_ args: [Value], _ kwargs: [(String, Value)], _ interpreter: Interpreter) throws -> Value? {
        try body(args, kwargs, interpreter)
    }
}
