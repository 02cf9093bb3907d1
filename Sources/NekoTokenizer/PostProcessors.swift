import NekoJSON

/// Adds special tokens around an encoded sequence (tokenizers' `post_processor`).
protocol PostProcessor: Sendable {
    func process(_ ids: [Int]) -> [Int]
}

enum PostProcessors {
    static func make(_ r: ComponentReader, vocabulary: (String) -> Int?) throws -> PostProcessor {
        switch try r.kind() {
        case "TemplateProcessing": return try TemplateProcessing(r)
        case "ByteLevel": return IdentityProcessor()   // trims offsets only; ids are unchanged
        case "Sequence": return SequenceProcessor(steps: try r.children("processors").map { try make($0, vocabulary: vocabulary) })
        case "BertProcessing", "RobertaProcessing":
            func pair(_ key: String) throws -> Int {
                guard let a = r.json[key]?.array, a.count == 2, let id = a[1].int else { throw r.fail("expected [token, id]", key) }
                return id
            }
            return WrapProcessor(before: [try pair("cls")], after: [try pair("sep")])
        default: throw r.unsupported()
        }
    }
}

struct IdentityProcessor: PostProcessor {
    func process(_ ids: [Int]) -> [Int] { ids }
}

struct SequenceProcessor: PostProcessor {
    let steps: [PostProcessor]
    func process(_ ids: [Int]) -> [Int] { steps.reduce(ids) { $1.process($0) } }
}

struct WrapProcessor: PostProcessor {
    let before: [Int], after: [Int]
    func process(_ ids: [Int]) -> [Int] { before + ids + after }
}

/// `single`: a list of `{"SpecialToken": {"id": name}}` and `{"Sequence": {"id": "A"}}`.
struct TemplateProcessing: PostProcessor {
    enum Item { case special([Int]), sequence }
    let items: [Item]

    init(_ r: ComponentReader) throws {
        var specials: [String: [Int]] = [:]
        if let table = r.json["special_tokens"]?.members {
            for (name, value) in table {
                guard let ids = value["ids"]?.array?.compactMap(\.int) else {
                    throw r.fail("special token '\(name)' has no ids", "special_tokens")
                }
                specials[name] = ids
            }
        }
        guard let single = r.json["single"]?.array else { throw r.fail("expected a list", "single") }
        items = try single.map { item in
            if let s = item["SpecialToken"] {
                guard let name = s["id"]?.string, let ids = specials[name] else {
                    throw r.fail("names a special token missing from special_tokens", "single")
                }
                return .special(ids)
            }
            if let seq = item["Sequence"] {
                guard seq["id"]?.string == "A" else { throw r.fail("a single template may only use sequence A", "single") }
                return .sequence
            }
            throw r.fail("unknown template item", "single")
        }
    }

    func process(_ ids: [Int]) -> [Int] {
        items.flatMap { item -> [Int] in
            switch item {
            case let .special(s): s
            case .sequence: ids
            }
        }
    }
}
