/// Errors loading a tokenizer, each naming the file and the field or component at fault.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case io(path: String, message: String)
    /// Invalid JSON or a malformed field.
    case format(file: String, field: String, message: String)
    /// A component type (normalizer, pre-tokenizer, model, …) nekochat does not implement.
    case unsupported(file: String, field: String, type: String)

    public var description: String {
        switch self {
        case let .io(path, message): "\(path): \(message)"
        case let .format(file, field, message): "\(file): \(field): \(message)"
        case let .unsupported(file, field, type):
            "\(file): \(field): unsupported type '\(type)' (nekochat does not implement it; refusing rather than tokenizing differently)"
        }
    }
}

/// Reads one component's JSON, with the path of fields for error messages.
struct ComponentReader {
    let file: String
    let field: String
    let json: JSONValue

    func fail(_ message: String, _ sub: String? = nil) -> TokenizerError {
        .format(file: file, field: sub.map { "\(field).\($0)" } ?? field, message: message)
    }

    /// The component's `type`; one that is present but not a string is an error (it was read as
    /// "absent", making a malformed model a BPE).
    func kind() throws -> String? {
        guard let v = json["type"], !v.isNull else { return nil }
        guard let s = v.string else { throw fail("expected a string", "type") }
        return s
    }

    func child(_ key: String) -> ComponentReader? {
        guard let v = json[key], !v.isNull else { return nil }
        return ComponentReader(file: file, field: "\(field).\(key)", json: v)
    }

    func children(_ key: String) throws -> [ComponentReader] {
        guard let items = json[key]?.array else { throw fail("expected a list", key) }
        return items.enumerated().map { ComponentReader(file: file, field: "\(field).\(key)[\($0.offset)]", json: $0.element) }
    }

    func string(_ key: String) throws -> String {
        guard let s = json[key]?.string else { throw fail("expected a string", key) }
        return s
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let v = json[key], !v.isNull else { return value }
        guard let b = v.bool else { throw fail("expected true or false", key) }
        return b
    }

    func int(_ key: String) throws -> Int {
        guard let i = json[key]?.int else { throw fail("expected an integer", key) }
        return i
    }

    func unsupported() -> TokenizerError {
        .unsupported(file: file, field: field, type: json["type"]?.string ?? "(no type)")
    }
}

import NekoJSON
