import Foundation
import NekoJSON
import NekoModel
import NekoTemplate
import NekoTokenizer

/// `generation_config.json`: extra EOS ids and sampling defaults (all optional).
public struct GenerationConfig: Decodable, Sendable, Equatable {
    public var eosTokenIds: [Int] = []
    public var doSample: Bool?
    public var temperature: Float?
    public var topK: Int?
    public var topP: Float?
    public var minP: Float?
    public var repetitionPenalty: Float?

    enum CodingKeys: String, CodingKey {
        case eosTokenId = "eos_token_id", doSample = "do_sample", temperature, topK = "top_k",
             topP = "top_p", minP = "min_p", repetitionPenalty = "repetition_penalty"
    }

    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        eosTokenIds = try ModelConfig.decodeIds(c, .eosTokenId)
        doSample = try c.decodeIfPresent(Bool.self, forKey: .doSample)
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        topP = try c.decodeIfPresent(Float.self, forKey: .topP)
        minP = try c.decodeIfPresent(Float.self, forKey: .minP)
        repetitionPenalty = try c.decodeIfPresent(Float.self, forKey: .repetitionPenalty)
    }

    /// Reads `path` if it exists; a missing file is an empty config.
    public static func load(path: String) throws -> GenerationConfig {
        guard FileManager.default.fileExists(atPath: path) else { return GenerationConfig() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.io(path: path, message: "cannot read the file")
        }
        do {
            return try JSONDecoder().decode(GenerationConfig.self, from: data)
        } catch let error as DecodingError {
            throw ModelError.config(file: path, field: ModelConfig.fieldName(of: error), message: "is malformed")
        }
    }

    /// `defaults` with this file's sampling settings applied (flags are applied after this).
    /// `do_sample: false` means greedy, as in transformers.
    public func apply(to defaults: SamplingParameters) -> SamplingParameters {
        var p = defaults
        if let temperature { p.temperature = temperature }
        if doSample == false { p.temperature = 0 }
        if let topK { p.topK = topK }
        if let topP { p.topP = topP }
        if let minP { p.minP = minP }
        if let repetitionPenalty { p.repeatPenalty = repetitionPenalty }
        return p
    }
}

/// A model directory made ready for generation: the model, its tokenizer (when the directory
/// has a tokenizer.json), its generation config and the token ids that end generation.
public final class ModelBundle: @unchecked Sendable {
    public let directory: String
    public let model: LanguageModel
    public let tokenizer: Tokenizer?
    public let generationConfig: GenerationConfig
    /// EOS ids: config.json's, generation_config.json's and the tokenizer's `eos_token`, united.
    public let eosTokenIds: Set<Int>

    /// Loads the model directory with its weights in `weights` (quantised ones are cached;
    /// `progress` sees the first quantisation).
    public init(directory: String, weights: WeightFormat = .bf16, weightCache: WeightCachePolicy = .automatic,
                progress: ((QuantizationProgress) -> Void)? = nil) throws {
        self.directory = directory
        model = try LanguageModel.load(directory: directory, weights: weights, cache: weightCache, progress: progress)
        let generationPath = directory + "/generation_config.json"
        generationConfig = try GenerationConfig.load(path: generationPath)
        for id in generationConfig.eosTokenIds where id < 0 || id >= model.config.vocabSize {
            throw ModelError.config(file: generationPath, field: "eos_token_id",
                                    message: "\(id) is outside the vocabulary (vocab_size \(model.config.vocabSize))")
        }
        var eos = Set(model.config.eosTokenIds + generationConfig.eosTokenIds)
        if FileManager.default.fileExists(atPath: directory + "/tokenizer.json") {
            let tokenizer = try Tokenizer.load(directory)
            if let token = tokenizer.eosToken, let id = tokenizer.id(for: token) { eos.insert(id) }
            self.tokenizer = tokenizer
        } else {
            tokenizer = nil
        }
        eosTokenIds = eos
    }

    /// The chat template (chat_template.jinja, tokenizer_config.json, or the ChatML default),
    /// with the tokenizer's special tokens as variables. Loaded when first asked for, so a
    /// broken template does not stop plain completion.
    public func chatTemplate() throws -> ChatTemplate {
        try ChatTemplate.load(directory: directory)
    }

    /// Chat prompt ids for `messages`: rendered with the generation prompt and encoded without
    /// added special tokens (the template writes its own), as `apply_chat_template` does.
    /// `continuing`: the last message is a reply to go on with (rendered without its end of turn).
    public func chatPrompt(_ messages: [JSONValue], template: ChatTemplate, continuing: Bool = false) throws -> [Int] {
        let tokenizer = try requireTokenizer()
        let text = try template.render(messages: messages, addGenerationPrompt: !continuing, continueFinalMessage: continuing)
        return tokenizer.encode(text, addSpecialTokens: false)
    }

    /// The end-of-turn token ids of a chat template: the special token the template writes right
    /// after an assistant message (`<|im_end|>` for ChatML), when the tokenizer knows it.
    public func endOfTurnIds(_ template: ChatTemplate) -> Set<Int> {
        guard let tokenizer, let text = template.endOfTurnText() else { return [] }
        if let id = tokenizer.id(for: text) { return [id] }
        // The text may start with a special token followed by more (e.g. "</s>[INST]").
        let ids = tokenizer.encode(text, addSpecialTokens: false)
        if let first = ids.first, tokenizer.isSpecial(first) { return [first] }
        return []
    }

    /// Tells transcripts apart by model: FNV-1a over config.json and the weight files' names
    /// and sizes.
    public var fingerprint: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 } }
        mix(FileManager.default.contents(atPath: directory + "/config.json") ?? Data())
        for f in model.files { mix(Array("\(URL(fileURLWithPath: f.path).lastPathComponent):\(f.byteCount)".utf8)) }
        return String(hash, radix: 16)
    }

    /// The tokenizer, or an error saying the model directory has none.
    public func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else {
            throw ModelError.io(path: directory + "/tokenizer.json", message: "missing: text input and output need the model's tokenizer")
        }
        return tokenizer
    }

}
