import Foundation
import NekoJSON

/// A Hugging Face `tokenizer.json`, run as the `tokenizers` library runs it:
/// added tokens → normalizer → pre-tokenizer → BPE → post-processor; decoding through the decoder.
public final class Tokenizer: @unchecked Sendable {
    public let path: String
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: BPE
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    public let addedTokens: [AddedToken]
    /// Added tokens matched on the raw text, and those matched after normalization.
    let rawMatcher: AddedTokenMatcher
    let normalizedMatcher: AddedTokenMatcher
    let addedById: [Int: AddedToken]
    /// What decoding writes for an added token: its content, normalized when the token is.
    let addedText: [Int: String]
    let addedByContent: [[UInt8]: Int]
    /// From tokenizer_config.json, when there is one.
    public private(set) var bosToken: String?
    public private(set) var eosToken: String?
    /// tokenizer_config.json as parsed (the chat template lives there), or nil.
    public private(set) var config: JSONValue?

    /// Loads `tokenizer.json` from a file, or `tokenizer.json` (+ `tokenizer_config.json`) from a directory.
    /// The longest added token accepted (the longest in real tokenizers is a few dozen).
    public static let maxAddedTokenLength = 4096

    public static func load(_ fileOrDirectory: String) throws -> Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: fileOrDirectory, isDirectory: &isDirectory) else {
            throw TokenizerError.io(path: fileOrDirectory, message: "no such file or directory")
        }
        let directory = isDirectory.boolValue ? fileOrDirectory : (fileOrDirectory as NSString).deletingLastPathComponent
        let file = isDirectory.boolValue ? directory + "/tokenizer.json" : fileOrDirectory
        let tokenizer = try Tokenizer(path: file)
        let configPath = (directory.isEmpty ? "." : directory) + "/tokenizer_config.json"
        if FileManager.default.fileExists(atPath: configPath) { try tokenizer.readConfig(configPath) }
        return tokenizer
    }

    public init(path: String) throws {
        self.path = path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.io(path: path, message: "cannot read the file")
        }
        let json: JSONValue
        do { json = try JSONValue.parse([UInt8](data)) } catch let e as JSONSyntaxError {
            throw TokenizerError.format(file: path, field: "(file)", message: "not valid JSON: \(e)")
        }
        let root = ComponentReader(file: path, field: "tokenizer", json: json)
        guard let modelReader = root.child("model") else { throw root.fail("missing", "model") }
        let modelType = try modelReader.kind() ?? (modelReader.json["merges"] != nil ? "BPE" : nil)
        guard modelType == "BPE" else { throw modelReader.unsupported() }
        model = try BPE(modelReader)
        normalizer = try root.child("normalizer").map(Normalizers.make)
        preTokenizer = try root.child("pre_tokenizer").map(PreTokenizers.make)
        decoder = try root.child("decoder").map(Decoders.make)

        var added: [AddedToken] = []
        for r in root.json["added_tokens"] == nil || root.json["added_tokens"]!.isNull ? [] : try root.children("added_tokens") {
            let id = try r.int("id"), content = try r.string("content")
            // Bounds that keep hostile files cheap: real added tokens are short, ids small.
            guard (0..<(1 << 24)).contains(id) else { throw r.fail("must be from 0 to \(1 << 24 - 1), found \(id)", "id") }
            guard content.unicodeScalars.count <= Self.maxAddedTokenLength else {
                throw r.fail("is \(content.unicodeScalars.count) characters long; nekochat accepts added tokens of at most \(Self.maxAddedTokenLength)", "content")
            }
            added.append(AddedToken(id: id, content: content,
                                    special: try r.bool("special", default: false),
                                    singleWord: try r.bool("single_word", default: false),
                                    lstrip: try r.bool("lstrip", default: false), rstrip: try r.bool("rstrip", default: false),
                                    normalized: try r.bool("normalized", default: true)))
        }
        addedTokens = added
        addedById = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        addedByContent = Dictionary(added.map { (Array($0.content.utf8), $0.id) }, uniquingKeysWith: { a, _ in a })
        let normalizerForText = normalizer
        addedText = Dictionary(added.map { token in
            let scalars = Array(token.content.unicodeScalars)
            let text = token.normalized ? normalizerForText.map { String(String.UnicodeScalarView($0.normalize(scalars))) } : nil
            return (token.id, text ?? token.content)
        }, uniquingKeysWith: { a, _ in a })
        let raw = added.filter { !$0.normalized }
        rawMatcher = AddedTokenMatcher(tokens: raw, patterns: raw.map { Array($0.content.unicodeScalars) })
        let norm = added.filter(\.normalized)
        let normalizer = self.normalizer
        normalizedMatcher = AddedTokenMatcher(tokens: norm, patterns: norm.map {
            let s = Array($0.content.unicodeScalars)
            return normalizer?.normalize(s) ?? s
        })
        let model = self.model, byContent = addedByContent
        postProcessor = try root.child("post_processor").map {
            try PostProcessors.make($0) { byContent[Array($0.utf8)] ?? model.id(for: $0) }
        }
    }

    func readConfig(_ path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenizerError.io(path: path, message: "cannot read the file")
        }
        do { config = try JSONValue.parse([UInt8](data)) } catch let e as JSONSyntaxError {
            throw TokenizerError.format(file: path, field: "(file)", message: "not valid JSON: \(e)")
        }
        // A special token is a string or an AddedToken object {"content": …}.
        func token(_ key: String) -> String? { config?[key]?.string ?? config?[key]?["content"]?.string }
        bosToken = token("bos_token")
        eosToken = token("eos_token")
    }

    // MARK: encode

    /// `tokenizers`' `encode(text, add_special_tokens:)`.ids.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        let input = Piece(text: Array(text.unicodeScalars), atStart: true)
        for segment in rawMatcher.split(input) {
            switch segment {
            case let .token(id): ids.append(id)
            case let .text(piece):
                guard !piece.text.isEmpty else { continue }
                var normalized = piece
                if let normalizer { normalized.text = normalizer.normalize(piece.text) }
                for inner in normalizedMatcher.split(normalized) {
                    switch inner {
                    case let .token(id): ids.append(id)
                    case let .text(p):
                        guard !p.text.isEmpty else { continue }
                        let words = preTokenizer?.split(p) ?? [p]
                        for w in words { ids += model.tokenize(w.text).map(Int.init) }
                    }
                }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        return ids
    }

    // MARK: decode

    /// The token text of `id` (added tokens first), or nil outside the vocabulary.
    public func token(for id: Int) -> String? { addedText[id] ?? model.token(for: id) }

    /// The id of `token` (added tokens first).
    public func id(for token: String) -> Int? { addedByContent[Array(token.utf8)] ?? model.id(for: token) }

    public func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }

    /// Largest id + 1 over the model vocabulary and the added tokens.
    public var vocabularySize: Int { max(model.vocabularySize, (addedTokens.map(\.id).max() ?? -1) + 1) }

    /// `tokenizers`' `decode(ids, skip_special_tokens:)`; ids outside the vocabulary are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let tokens = ids.compactMap { id -> String? in
            guard let t = token(for: id) else { return nil }
            return skipSpecialTokens && isSpecial(id) ? nil : t
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decode(tokens).joined()
    }
}
