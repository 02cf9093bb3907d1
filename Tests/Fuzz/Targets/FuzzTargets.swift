import Foundation
import NekoChat
import NekoHub
import NekoJSON
import NekoModel
import NekoOpenAI
import NekoRouting
import NekoTemplate
import NekoTokenizer
import NekoTUI

/// The parsers a user (or an attacker) can feed, each as a function of one byte string. The
/// libFuzzer build of `nekofuzz` calls them with mutated inputs; `NekoFuzzTests` replays the
/// seeds and every input that once crashed (Tests/Fuzz/regressions). A target must never crash,
/// hang or leak: errors are fine, they are the point.
public enum FuzzTargets {
    public static let names = ["safetensors", "config", "tokenizer", "template", "transcript", "keys", "http", "hub",
                               "template-grammar", "tokenizer-grammar", "config-grammar", "transcript-grammar", "hub-grammar"]

    /// A scratch folder of this process, for the parsers that read files.
    static let scratch: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nekofuzz-\(getpid())").path
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static func write(_ bytes: [UInt8], _ name: String) -> String {
        let path = scratch + "/" + name
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    /// Input that holds two parts: before the first NUL byte, and after it.
    static func halves(_ data: [UInt8]) -> ([UInt8], [UInt8]) {
        guard let nul = data.firstIndex(of: 0) else { return (data, []) }
        return (Array(data[..<nul]), Array(data[(nul + 1)...]))
    }

    public static func run(_ name: String, _ data: [UInt8]) {
        switch name {
        case "safetensors": safetensors(data)
        case "config": config(data)
        case "tokenizer": tokenizer(data)
        case "template": template(data)
        case "transcript": transcript(data)
        case "keys": keys(data)
        case "http": http(data)
        case "hub": hub(data)
        case "template-grammar": templateGrammar(data)
        case "tokenizer-grammar": tokenizerGrammar(data)
        case "config-grammar": configGrammar(data)
        case "transcript-grammar": transcriptGrammar(data)
        case "hub-grammar": hubGrammar(data)
        default: fatalError("no fuzz target \(name); targets: \(names.joined(separator: ", "))")
        }
    }

    /// A safetensors file, and the same bytes as a model's index of shards.
    static func safetensors(_ data: [UInt8]) {
        _ = try? SafetensorsFile(path: write(data, "model.safetensors"))
        let dir = scratch + "/sharded"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: dir + "/config.json", contents: Data(tinyConfig.utf8))
        _ = FileManager.default.createFile(atPath: dir + "/model.safetensors.index.json", contents: Data(data))
        _ = try? LanguageModel.load(directory: dir)
    }

    static let tinyConfig = #"{"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 8, "vocab_size": 16}"#

    static func config(_ data: [UInt8]) {
        if let c = try? ModelConfig.load(path: write(data, "config.json")) {
            _ = c.moeLayers
            _ = c.parameterCount()
        }
    }

    /// tokenizer.json, NUL, a text: load, encode, decode, stream.
    static func tokenizer(_ data: [UInt8]) {
        let (file, textBytes) = halves(data)
        guard let t = try? Tokenizer(path: write(file, "tokenizer.json")) else { return }
        let text = String(decoding: textBytes, as: UTF8.self)
        for special in [true, false] {
            let ids = t.encode(text, addSpecialTokens: special)
            _ = t.decode(ids)
            _ = t.decode(ids, skipSpecialTokens: true)
            var stream = StreamingDetokenizer(tokenizer: t)
            for id in ids { _ = stream.add(id) }
            _ = stream.finish()
        }
        // Ids the model may produce that the text never would.
        _ = t.decode(textBytes.prefix(64).map { Int($0) * 131 })
    }

    /// A template, NUL, a JSON list of messages (or an object of variables).
    static func template(_ data: [UInt8]) {
        let (source, json) = halves(data)
        guard let t = try? Template(String(decoding: source, as: UTF8.self)) else { return }
        let messages: [JSONValue] = (try? JSONValue.parse(json))?.array
            ?? [.object([("role", .string("user")), ("content", .string("hi"))]), .object([("role", .string("assistant")), ("content", .string("yo"))])]
        let chat = ChatTemplate(template: t, origin: "fuzz", specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
        _ = try? chat.render(messages: messages, addGenerationPrompt: true)
        _ = try? chat.render(messages: messages, addGenerationPrompt: false, continueFinalMessage: true)
        _ = chat.endOfTurnText()
    }

    /// A transcript (any version), and the same bytes as OpenAI-style JSON.
    static func transcript(_ data: [UInt8]) {
        if let (_, c, _) = try? TranscriptFormat.replay(data, path: "fuzz", defaults: ChatSettings()) {
            _ = c.path
            _ = c.prompt
            _ = Transcript.log(c, header: TranscriptHeader())
            if let trace = try? RoutingTrace.of(c.routingSequences, experts: 256) { _ = RoutingAnalysis.analyze(trace).json.serialized }
        }
        _ = try? Transcript.load(path: write(data, "chat.json"))
    }

    /// Terminal input bytes → keys → the chat screen (editing, commands that touch no files).
    static func keys(_ data: [UInt8]) {
        var decoder = KeyDecoder()
        var state = ScreenState(backend: BackendInfo(kind: "local", modelName: "fuzz", location: "fuzz", fingerprint: "f", contextSize: 64,
                                                     experts: 4, expertsPerToken: 2, moeLayers: [1, 2], reportsRouting: true))
        var keys: [Key] = []
        for s in String(decoding: data, as: UTF8.self).unicodeScalars { keys += decoder.feed(character: s.value) }
        keys += decoder.flushEscape()
        for key in keys.prefix(2_000) {
            switch key {
            case let .char(c): state.input.insert(String(c))
            case let .paste(p): state.input.insert(p)
            case .newline: state.input.insert("\n")
            case .backspace: state.input.backspace()
            case .delete: state.input.deleteForward()
            case .left: state.input.left()
            case .right: state.input.right()
            case .up: state.input.up()
            case .down: state.input.down()
            case .home: state.input.home()
            case .end: state.input.end()
            case .ctrl("k"): state.input.killToEnd()
            case .ctrl("u"): state.input.killToStart()
            case .ctrl("w"): state.input.deleteWord()
            case .enter: _ = state.input.submit()
            case .pageUp: state.scrollBack += 5
            case .pageDown: state.scrollBack = max(0, state.scrollBack - 5)
            case .tab: state.notice(state.input.string)
            default: break
            }
        }
        let w = 20 + Int(data.first ?? 0) % 200, h = 6 + Int(data.last ?? 0) % 60
        _ = ChatView.render(state, width: w, height: h)
        _ = ChatView.cursor(state, width: w, height: h)
    }

    /// An HTTP request body of /v1/chat/completions and of /v1/completions.
    static func http(_ data: [UInt8]) {
        _ = try? CompletionRequest.parse(data, chat: true, defaults: ChatSettings(), maxTokens: 4096)
        _ = try? CompletionRequest.parse(data, chat: false, defaults: ChatSettings(), maxTokens: 4096)
    }

    /// The Hub's answers: a revision or a tree page as JSON, a shard index, a Link header, a
    /// resolve answer's headers ("Name: value" lines after the first NUL, the first byte choosing
    /// the status), Hub ids and snapshot paths, and the environment's variables.
    static func hub(_ data: [UInt8]) {
        let (a, b) = halves(data)
        let url = "https://huggingface.co/api/models/acme/model/tree/main"
        _ = try? HubWire.revisionSHA(data, url: url)
        _ = try? HubWire.treeFiles(data, url: url)
        _ = try? HubModels.shardNames(Data(data))
        let text = String(decoding: a, as: UTF8.self)
        _ = HubModelID.parse(text)
        _ = HubModelID.ofSnapshot(text)
        _ = HubWire.nextPage(text, after: url)
        let headers = String(decoding: b, as: UTF8.self).split(separator: "\n").prefix(256).compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces))
        }
        let status = [200, 302, 307, 404, 401, 500][Int(data.first ?? 0) % 6]
        _ = HubWire.isMissing(status: status, headers: headers)
        _ = try? HubWire.fileInfo(status: status, headers: headers, url: text.isEmpty ? url : text)
        _ = HubEnvironment.from(["HF_HOME": text, "HF_ENDPOINT": text, "HF_HUB_OFFLINE": text, "HOME": "/nonexistent"])
    }
}
