import Foundation
import NekoChat
import NekoHub
import NekoJSON
import NekoModel
import NekoTemplate
import NekoTokenizer

/// Structure-aware fuzzing: the fuzzer's bytes are read as a stream of decisions that build an
/// input from its grammar (a Jinja template, a tokenizer.json, a config.json of each family, a
/// transcript, the Hub's answers). libFuzzer mutates the bytes, so it mutates the decisions, and
/// its coverage guides them — where random bytes almost never form a template that parses,
/// every input here does, and reaches the interpreter with the extremes it was built to hold:
/// nesting of every construct, integer and float extremes in every argument, huge widths and
/// counts. (The byte-level targets stay: they find what a grammar would not write.)
struct Choices {
    let bytes: [UInt8]
    var at = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A number in 0..<n (0 once the bytes run out, so every input ends).
    mutating func next(_ n: Int) -> Int {
        guard n > 1, at < bytes.count else { return 0 }
        defer { at += 1 }
        return Int(bytes[at]) % n
    }

    mutating func bool() -> Bool { next(2) == 1 }

    mutating func pick<T>(_ items: [T]) -> T { items[next(items.count)] }

    var exhausted: Bool { at >= bytes.count }

    /// How many times to repeat something: mostly few, sometimes the extremes a fuzz of real
    /// templates found (100,000 levels).
    mutating func count() -> Int { pick([0, 1, 2, 3, 5, 10, 100, 1000, 1100, 100_000]) }

    /// An integer: small ones, and every edge of 64 bits.
    mutating func integer() -> String {
        pick(["0", "1", "-1", "2", "7", "64", "1000", "1000000000", "9223372036854775807", "(-9223372036854775807 - 1)",
              "-9223372036854775807", "(2 ** 62)", "(10 ** 9)", "(-(10 ** 18))", "99999999999999999999"])
    }

    mutating func float() -> String {
        pick(["0.5", "-0.0", "1e308", "(1e308 * 10)", "(-1e308 * 10)", "(10.0 ** 400)", "(0.0 / 1.0)", "1e-320", "3.14159", "(2 ** -1074)"])
    }

    mutating func string() -> String {
        pick(["''", "'a'", "'hello world'", "'%d'", "'%1000000000d'", "'%.9999f'", "'%s %s'", "'%(x)s'", "'{}'", "'{:>1000000000}'",
              "'{:.99999f}'", "'{0}{1}'", "'{x}'", "'é\\u0301'", "'\\t\\t'", "'a\\nb\\nc'", "'<|im_start|>'", "'%'", "'{'", "'}}{{'"])
    }
}

enum Grammar {
    // MARK: Jinja templates

    static let filters = ["upper", "lower", "trim", "length", "first", "last", "list", "join", "default", "replace", "indent",
                          "tojson", "int", "float", "abs", "round", "center", "wordcount", "sum", "min", "max", "unique", "sort",
                          "reverse", "map", "select", "reject", "selectattr", "rejectattr", "string", "safe", "escape", "capitalize",
                          "title", "truncate", "batch", "slice", "items", "dictsort", "format", "striptags", "wordwrap", "count",
                          "attr", "groupby", "urlencode", "random", "filesizeformat"]
    static let tests = ["defined", "undefined", "none", "number", "string", "mapping", "iterable", "sequence", "true", "false",
                        "integer", "float", "divisibleby", "even", "odd", "in", "eq", "ne", "lt", "gt", "startingwith", "callable"]
    static let methods = ["strip", "split", "startswith", "endswith", "replace", "format", "center", "ljust", "rjust", "zfill",
                          "expandtabs", "join", "upper", "title", "get", "items", "keys", "values", "append", "pop", "count", "find"]

    /// A template made of the choices; `depth` bounds the recursion of the generator itself.
    static func template(_ c: inout Choices) -> String {
        var out = ""
        var budget = 64
        while !c.exhausted, budget > 0 {
            budget -= 1
            out += statement(&c, depth: 0)
        }
        return out
    }

    static func statement(_ c: inout Choices, depth: Int) -> String {
        guard depth < 6 else { return "{{ " + expression(&c, depth: depth) + " }}" }
        switch c.next(12) {
        case 0: return c.pick(["text ", "\n", "{# comment #}", "  ", "<|im_end|>\n"])
        case 1: return "{% if " + expression(&c, depth: depth) + " %}" + statement(&c, depth: depth + 1)
            + (c.bool() ? "{% elif " + expression(&c, depth: depth) + " %}" + statement(&c, depth: depth + 1) : "")
            + (c.bool() ? "{% else %}" + statement(&c, depth: depth + 1) : "") + "{% endif %}"
        case 2: return "{% for " + c.pick(["x", "k, v", "message"]) + " in " + expression(&c, depth: depth)
            + (c.bool() ? " if " + expression(&c, depth: depth) : "") + (c.bool() ? " recursive" : "") + " %}"
            + statement(&c, depth: depth + 1) + c.pick(["", "{{ loop.index }}", "{% if loop.last %}{% break %}{% endif %}", "{{ loop(x) if x is iterable and x is not string else '' }}"])
            + (c.bool() ? "{% else %}" + statement(&c, depth: depth + 1) : "") + "{% endfor %}"
        case 3: return "{% set " + c.pick(["x", "y", "ns.v"]) + " = " + expression(&c, depth: depth) + " %}"
        case 4: return "{% set x %}" + statement(&c, depth: depth + 1) + "{% endset %}"
        case 5: return "{% macro m(a, b=" + expression(&c, depth: depth) + ") %}" + statement(&c, depth: depth + 1)
            + "{% endmacro %}{{ m(" + expression(&c, depth: depth) + ") }}"
        case 6: return "{% filter " + c.pick(filters) + " %}" + statement(&c, depth: depth + 1) + "{% endfilter %}"
        case 7:
            // Nesting of one block construct, repeated many times.
            let n = min(c.count(), 5000), open = c.pick(["{% if true %}", "{% for i in [1] %}", "{% with %}", "{% filter upper %}"])
            let close = ["{% if true %}": "{% endif %}", "{% for i in [1] %}": "{% endfor %}", "{% with %}": "{% endwith %}",
                         "{% filter upper %}": "{% endfilter %}"][open]!
            return String(repeating: open, count: n) + "x" + String(repeating: close, count: n)
        case 8: return "{% set ns = namespace(v=" + expression(&c, depth: depth) + ") %}"
        case 9: return "{{ raise_exception(" + c.string() + ") if " + expression(&c, depth: depth) + " }}"
        default: return "{{ " + expression(&c, depth: depth) + " }}"
        }
    }

    static func expression(_ c: inout Choices, depth: Int) -> String {
        guard depth < 8 else { return c.pick(["1", "'a'", "x", "messages"]) }
        let d = depth + 1
        switch c.next(16) {
        case 0: return c.integer()
        case 1: return c.float()
        case 2: return c.string()
        case 3: return c.pick(["messages", "x", "y", "ns", "loop", "bos_token", "eos_token", "add_generation_prompt", "tools", "none", "true", "undefinedname"])
        case 4: return "[" + (0..<c.next(4)).map { _ in expression(&c, depth: d) }.joined(separator: ", ") + "]"
        case 5: return "{" + (0..<c.next(3)).map { _ in c.string() + ": " + expression(&c, depth: d) }.joined(separator: ", ") + "}"
        case 6:
            let op = c.pick(["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "in", "not in", "and", "or"])
            return "(" + expression(&c, depth: d) + " " + op + " " + expression(&c, depth: d) + ")"
        case 7:
            var args = (0..<c.next(4)).map { _ in c.bool() ? c.integer() : expression(&c, depth: d) }
            if c.bool() { args.append(c.pick(["indent", "width", "first", "blank", "separators", "ensure_ascii", "sort_keys", "attribute", "default", "precision"]) + "=" + c.integer()) }
            return expression(&c, depth: d) + "|" + c.pick(filters) + (args.isEmpty ? "" : "(" + args.joined(separator: ", ") + ")")
        case 8: return expression(&c, depth: d) + " is " + (c.bool() ? "not " : "") + c.pick(tests)
        case 9: return expression(&c, depth: d) + "." + c.pick(methods) + "(" + (0..<c.next(3)).map { _ in c.bool() ? c.integer() : c.string() }.joined(separator: ", ") + ")"
        case 10: return expression(&c, depth: d) + c.pick(["[0]", "[-1]", "[1:]", "[::-1]", "['content']", ".role", "[" + c.integer() + "]", "[" + c.integer() + ":" + c.integer() + "]"])
        case 11: return "(" + expression(&c, depth: d) + " if " + expression(&c, depth: d) + " else " + expression(&c, depth: d) + ")"
        case 12: return c.pick(["range(", "range(0, ", "namespace(a=", "dict(a="]) + c.integer() + ")"
        case 13: return c.string() + " % " + c.pick(["1", "(1, 2)", "'a'", "{'x': 1}", c.integer(), c.float()])
        case 14:
            // One construct chained many times: the shapes that overflowed the stack.
            let link = c.pick([" ~ 'a'", " + 1", " * 1", " or x", " and x", "[0]", ".a", "|upper", "|trim|lower", " is number", "()", " - 1"])
            return c.pick(["'a'", "1", "x"]) + String(repeating: link, count: c.count())
        default:
            let n = min(c.count(), 5000)
            let open = c.pick(["(", "[", "not ", "-", "{'a': "])
            let close = ["(": ")", "[": "]", "not ": "", "-": "", "{'a': ": "}"][open]!
            return String(repeating: open, count: n) + "1" + String(repeating: close, count: n)
        }
    }

    static let templateContext: [String: JSONValue] = [
        "messages": .array([.object([("role", .string("system")), ("content", .string("be kind"))]),
                            .object([("role", .string("user")), ("content", .string("hi\t%d {}"))]),
                            .object([("role", .string("assistant")), ("content", .string("yo"))])]),
        "x": .array([.int(1), .string("a"), .array([.int(2)])]),
        "tools": .array([.object([("name", .string("f")), ("parameters", .object([]))])]),
    ]

    // MARK: tokenizer.json

    static let patterns = [#"\s+"#, #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#, "(a+)+", "(a|a)*b",
                           "[^]", "\\p{L}{1,3}", "(?i:abc)", "\\d{1000}", "x*?", "(?=a)", "[\\u0000-\\uFFFF]+", "(((((a)))))", ".", "\\", "", "((a*)*)*"]

    static func tokenizerJSON(_ c: inout Choices) -> String {
        func normalizer(_ depth: Int) -> String {
            switch c.next(9) {
            case 0 where depth < 3: return #"{"type": "Sequence", "normalizers": ["# + (0..<c.next(4)).map { _ in normalizer(depth + 1) }.joined(separator: ",") + "]}"
            case 1: return #"{"type": "Replace", "pattern": {"Regex": "# + JSONValue.string(c.pick(patterns)).serialized + #"}, "content": "# + JSONValue.string(c.pick(["", "x", "▁", String(repeating: "y", count: c.count())])).serialized + "}"
            case 2: return #"{"type": "Replace", "pattern": {"String": "# + JSONValue.string(c.pick([" ", "", "a", "é"])).serialized + #"}, "content": "▁"}"#
            case 3: return #"{"type": "Prepend", "prepend": "# + JSONValue.string(c.pick(["▁", "", String(repeating: "z", count: c.count())])).serialized + "}"
            default: return #"{"type": ""# + c.pick(["NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "Strip", "Nmt"]) + #""}"#
            }
        }
        func pre(_ depth: Int) -> String {
            switch c.next(8) {
            case 0 where depth < 3: return #"{"type": "Sequence", "pretokenizers": ["# + (0..<c.next(4)).map { _ in pre(depth + 1) }.joined(separator: ",") + "]}"
            case 1: return #"{"type": "Split", "pattern": {"Regex": "# + JSONValue.string(c.pick(patterns)).serialized + #"}, "behavior": ""#
                + c.pick(["Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"]) + #"", "invert": "# + (c.bool() ? "true" : "false") + "}"
            case 2: return #"{"type": "Metaspace", "replacement": "▁", "prepend_scheme": ""# + c.pick(["always", "first", "never"]) + #"", "split": "# + (c.bool() ? "true" : "false") + "}"
            case 3: return #"{"type": "ByteLevel", "add_prefix_space": "# + (c.bool() ? "true" : "false") + #", "use_regex": "# + (c.bool() ? "true" : "false") + "}"
            case 4: return #"{"type": "Digits", "individual_digits": "# + (c.bool() ? "true" : "false") + "}"
            default: return #"{"type": ""# + c.pick(["Whitespace", "WhitespaceSplit", "Punctuation", "BertPreTokenizer"]) + #""}"#
            }
        }
        let letters = ["a", "b", "c", "é", "▁", " ", "ab", "bc", "abc", "Ġ"]
        let vocab = (0..<min(4 + c.next(8), letters.count)).map { JSONValue.string(letters[$0]).serialized + ": \($0)" }.joined(separator: ", ")
        let merges = c.pick([#"["a b", "ab c"]"#, #"[["a", "b"]]"#, "[]", #"["a b", "a b"]"#, #"["x y"]"#])
        return #"{"added_tokens": [{"id": 0, "content": "<s>", "special": true, "lstrip": "# + (c.bool() ? "true" : "false")
            + #", "rstrip": false, "single_word": "# + (c.bool() ? "true" : "false") + #", "normalized": false}],"#
            + #" "normalizer": "# + (c.bool() ? normalizer(0) : "null") + #", "pre_tokenizer": "# + (c.bool() ? pre(0) : "null")
            + #", "decoder": {"type": ""# + c.pick(["Fuse", "ByteLevel", "Metaspace", "ByteFallback", "BPEDecoder"]) + #""},"#
            + #" "model": {"type": "BPE", "unk_token": "<s>", "byte_fallback": "# + (c.bool() ? "true" : "false") + #", "vocab": {"#
            + vocab + #"}, "merges": "# + merges + "}}"
    }

    // MARK: config.json of every family

    static func configJSON(_ c: inout Choices) -> String {
        let type = c.pick(ModelFamily.supportedModelTypes + ["", "llama", "gpt_oss"])
        func value() -> String {
            switch c.next(10) {
            case 0: return "null"
            case 1: return "\"8\""
            case 2: return "[1, 2]"
            case 3: return "{\"rope_theta\": 5.0, \"rope_type\": \"" + c.pick(["default", "yarn", "linear", ""]) + "\"}"
            case 4: return c.float().replacingOccurrences(of: "(", with: "").replacingOccurrences(of: ")", with: "").split(separator: " ").first.map(String.init) ?? "1.0"
            case 5: return "true"
            case 6: return ["-1", "0", "1", "9223372036854775807", "4096", "65536", "1e400"][c.next(7)]
            default: return String(c.pick([1, 2, 4, 8, 16, 32, 64]))
            }
        }
        let fields = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size",
                      "intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts", "num_local_experts",
                      "n_routed_experts", "num_experts_per_tok", "norm_topk_prob", "mlp_only_layers", "first_k_dense_replace",
                      "decoder_sparse_step", "rms_norm_eps", "rope_theta", "rope_parameters", "rope_scaling", "max_position_embeddings",
                      "tie_word_embeddings", "attention_bias", "qkv_bias", "clip_qkv", "sliding_window", "use_sliding_window",
                      "max_window_layers", "layer_types", "embedding_multiplier", "attention_multiplier", "residual_multiplier",
                      "logits_scaling", "bos_token_id", "eos_token_id"]
        var parts = ["\"model_type\": \"\(type)\"", "\"hidden_size\": 8", "\"num_hidden_layers\": 2", "\"num_attention_heads\": 2", "\"vocab_size\": 16"]
        for _ in 0..<c.next(12) {
            let f = c.pick(fields)
            let v = f == "layer_types" ? c.pick(["[\"sliding_attention\", \"full_attention\"]", "[\"x\"]", "[]", "[1]"]) : value()
            parts.append("\"\(f)\": \(v)")
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }

    // MARK: transcripts

    static func transcript(_ c: inout Choices) -> [UInt8] {
        var lines = [c.pick([#"{"type":"header","version":2,"experts":8}"#, #"{"type":"header","version":1}"#,
                             #"{"type":"header","version":99}"#, #"{"type":"header","version":-1}"#, "{}"])]
        for _ in 0..<min(64, 1 + c.next(40)) {
            let id = c.pick(["1", "2", "3", "0", "-1", "9223372036854775807", "\"x\"", "null"])
            let parent = c.pick(["null", "1", "2", "99", "\"1\""])
            switch c.next(9) {
            case 0: lines.append(#"{"type":"message","id":"# + id + #","parent":"# + parent + #","role":""# + c.pick(["user", "assistant", "system", "tool", ""]) + #"","content":"hi"}"#)
            case 1: lines.append(#"{"type":"message","id":"# + id + #","parent":"# + parent + #","role":"assistant","content":"yo","finish_reason":""#
                                 + c.pick(["eos", "length", "stop", "nope"]) + #"","routing":{"layers":[2,3],"k":2,"tokens":"# + c.pick(["1", "0", "1000000", "-3"])
                                 + #","experts":"# + c.pick(["\"AAAA\"", "\"AAECAwQFBgc=\"", "\"!!\"", "null", "\"\""]) + #","weights":"AACAPwAAgD8AAIA/AACAPw=="}}"#)
            case 2: lines.append(#"{"type":"settings","settings":{"temperature":"# + c.pick(["0.5", "-1", "1e400", "\"hot\""]) + #","max_tokens":"# + c.integer() + "}}")
            case 3: lines.append(#"{"type":"regen","of":"# + id + "}")
            case 4: lines.append(#"{"type":"select","leaf":"# + id + "}")
            case 5: lines.append(#"{"type":"title","title":"# + c.pick(["\"t\"", "1", "null"]) + "}")
            case 6: lines.append(#"{"type":"new"}"#)
            case 7: lines.append(c.pick(["{not json", "", "[]", "\"x\"", #"{"type":"unknown"}"#]))
            default: lines.append(#"{"type":"system","content":"# + c.pick(["\"be\"", "null", "1"]) + "}")
            }
        }
        return Array(lines.joined(separator: c.bool() ? "\n" : "\r\n").utf8)
    }

    // MARK: the Hub's answers

    static func hubAnswer(_ c: inout Choices) -> (body: [UInt8], headers: [(String, String)], status: Int, link: String) {
        let path = c.pick(["\"config.json\"", "\"../../etc/passwd\"", "\"a/b/c.safetensors\"", "\"\"", "1", "null", "\"model.safetensors\""])
        let size = c.pick(["12", "-1", "9223372036854775807", "1e30", "\"7\"", "null"])
        let entry = #"{"type": ""# + c.pick(["file", "directory", "x"]) + #"", "path": "# + path + #", "size": "# + size
            + (c.bool() ? #", "lfs": {"oid": "abc", "size": "# + size + "}" : "") + "}"
        let body = c.pick(["[" + (0..<c.next(5)).map { _ in entry }.joined(separator: ",") + "]",
                           #"{"sha": ""# + c.pick(["0123456789abcdef0123456789abcdef01234567", "xyz", ""]) + #""}"#, "{}", "[", "null"])
        let etag = c.pick(["\"34398b85297bf7d9dfb59b8d511d8bbb44ab23e891570e4395e7871475fc8afb\"", "W/\"abc\"", "\"../x\"", "\"\"",
                           "\"" + String(repeating: "a", count: c.count()) + "\"", "\"a b\""])
        var headers: [(String, String)] = []
        if c.bool() { headers.append(("X-Linked-Etag", etag)) }
        if c.bool() { headers.append(("ETag", etag)) }
        if c.bool() { headers.append(("X-Linked-Size", size)) }
        if c.bool() { headers.append(("Content-Length", size)) }
        if c.bool() { headers.append(("Location", c.pick(["https://cdn.example/x", "/relative", "javascript:alert(1)", "", "http://[::1", "ftp://x"]))) }
        if c.bool() { headers.append(("X-Error-Code", c.pick(["EntryNotFound", "GatedRepo", "RepoNotFound", ""]))) }
        let link = c.pick(["<https://huggingface.co/api?cursor=1>; rel=\"next\"", "<>; rel=\"next\"", "<x>", "rel=\"next\"",
                           "<javascript:1>; rel=\"next\"", String(repeating: "<a>, ", count: c.count())])
        return (Array(body.utf8), headers, c.pick([200, 302, 307, 404, 401, 500]), link)
    }
}

extension FuzzTargets {
    /// A template built from Jinja's grammar, rendered as a chat template.
    static func templateGrammar(_ data: [UInt8]) {
        var c = Choices(data)
        let source = Grammar.template(&c)
        guard let t = try? Template(source) else { return }
        _ = try? t.render(Grammar.templateContext.mapValues { Value(json: $0) })
        let chat = ChatTemplate(template: t, origin: "fuzz", specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
        _ = try? chat.render(messages: Grammar.templateContext["messages"]!.array!, addGenerationPrompt: true)
    }

    /// A tokenizer.json built from its grammar: normalizer and pre-tokenizer sequences, regexes.
    static func tokenizerGrammar(_ data: [UInt8]) {
        var c = Choices(data)
        let json = Grammar.tokenizerJSON(&c)
        guard let tokenizer = try? Tokenizer.load(write(Array(json.utf8), "grammar-tokenizer.json")) else { return }
        for text in ["abc abc", "é\u{301} ▁ab", String(repeating: "a", count: 2000), "<s>hi<s>", "12345 \t\n ab"] {
            let ids = tokenizer.encode(text)
            _ = tokenizer.decode(ids)
        }
    }

    /// A config.json of any family, with the extremes of each field.
    static func configGrammar(_ data: [UInt8]) {
        var c = Choices(data)
        let json = Grammar.configJSON(&c)
        guard let config = try? ModelConfig.load(path: write(Array(json.utf8), "config.json")) else { return }
        _ = config.moeLayers
        _ = try? KVCache(config: config, capacity: 16)
    }

    /// A transcript built of every line type, with bad ids, parents and routing.
    static func transcriptGrammar(_ data: [UInt8]) {
        var c = Choices(data)
        transcript(Grammar.transcript(&c))
    }

    /// The Hub's answers built with the extremes of each field and header.
    static func hubGrammar(_ data: [UInt8]) {
        var c = Choices(data)
        let (body, headers, status, link) = Grammar.hubAnswer(&c)
        let url = "https://huggingface.co/api/models/acme/model/tree/main"
        _ = try? HubWire.treeFiles(body, url: url)
        _ = try? HubWire.revisionSHA(body, url: url)
        _ = HubWire.isMissing(status: status, headers: headers)
        _ = try? HubWire.fileInfo(status: status, headers: headers, url: url)
        _ = HubWire.nextPage(link, after: url)
    }
}
