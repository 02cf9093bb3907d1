import Foundation
import NekoJSON
import NekoModel

/// Chat renders the conversation with the template; complete continues the plain text of
/// the messages, as a base model is often used.
public enum ChatMode: String, Sendable, CaseIterable { case chat, complete }

/// Everything a user may change about how replies are made. One value, saved in transcripts,
/// changed by `/set` in the chat and by flags on the command line — both through `SettingSpec`.
public struct ChatSettings: Sendable, Equatable {
    public var sampling = SamplingParameters()
    /// The longest reply, in tokens.
    public var maxTokens = 512
    public var mode = ChatMode.chat
    /// Replies end where one of these strings would begin (the string is not kept).
    public var stop: [String] = []
    /// How the MoE layers route (`/experts`, `--mask-experts` …): none by default.
    public var experts = Interventions.none

    /// The most stop strings, and the longest in bytes: every token is checked against each of
    /// them (for the server, on the thread every request shares).
    public static let maxStopStrings = 16
    public static let maxStopBytes = 1024
    /// The context windows (in tokens) that the chat, `generate` and the server accept.
    public static let contextSizes = 16...(1 << 22)

    public init(sampling: SamplingParameters = SamplingParameters(), maxTokens: Int = 512,
                mode: ChatMode = .chat, stop: [String] = []) {
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.mode = mode
        self.stop = stop
    }

    /// The settings as written in transcripts and shown by `/set`: numbers as they were set
    /// (`0.8`, not `0.800000011920929`), the seed as a number or `"random"`.
    /// Interventions, when there are any, are the member `experts` (`Interventions.json`).
    public var json: JSONValue {
        .object(SettingSpec.all.map { ($0.name, $0.value(self)) } + (experts.isEmpty ? [] : [("experts", experts.json)]))
    }

    /// Reads what `json` wrote; unknown names are ignored, a bad value is an error naming it.
    /// Settings without `experts` route as the model does (every settings line is complete).
    public init(json: JSONValue, defaults: ChatSettings = ChatSettings()) throws {
        self = defaults
        experts = .none
        for (key, value) in json.members ?? [] {
            if key == "experts" {
                do { experts = try Interventions(json: value) } catch { throw ChatError("experts: \(error)") }
                continue
            }
            guard let spec = SettingSpec.named(key) else { continue }
            try spec.set(&self, value.settingText)
        }
    }
}

extension ChatSettings {
    /// Sets `experts` from its JSON (`Interventions.json`'s shape); an error says what is wrong.
    public mutating func setExperts(json: JSONValue) throws {
        do { experts = try Interventions(json: json) } catch { throw ChatError("\(error)") }
    }

    /// The interventions in one line ("none" when there are none).
    public var expertsSummary: String { experts.summary }
}

extension JSONValue {
    /// A JSON value as `/set` would be given it.
    fileprivate var settingText: String {
        switch self {
        case let .string(s): s
        case let .int(i): String(i)
        case let .double(d): String(d)
        case let .bool(b): String(b)
        case let .array(items): items.compactMap(\.string).joined(separator: "\u{1F}")
        default: ""
        }
    }
}

/// One setting: its name (as `/set` and transcripts spell it), its command-line flag, the
/// values it accepts, and how it reads and writes `ChatSettings`. The chat's `/set`, the CLI's
/// flag validation and transcript replay all go through this table, so a range is written once.
public struct SettingSpec: Sendable {
    public let name: String
    public let flag: String
    /// The accepted values, in words (shown in errors and by `/set` alone).
    public let accepts: String
    public let help: String
    fileprivate let parse: @Sendable (inout ChatSettings, String) -> Bool
    fileprivate let read: @Sendable (ChatSettings) -> JSONValue

    /// Sets the value from text; an error names the setting and the accepted values.
    public func set(_ settings: inout ChatSettings, _ text: String) throws {
        guard parse(&settings, text.trimmingCharacters(in: .whitespaces)) else {
            throw ChatError("\(name) must be \(accepts); got '\(text)'")
        }
    }

    public func value(_ settings: ChatSettings) -> JSONValue { read(settings) }

    /// The value as one short line (`0.8`, `random`, `chat`).
    public func display(_ settings: ChatSettings) -> String {
        switch read(settings) {
        case let .string(s): s
        case let .array(items): items.isEmpty ? "(none)" : items.compactMap(\.string).map { $0.debugDescription }.joined(separator: " ")
        case let v: v.serialized
        }
    }

    public static func named(_ name: String) -> SettingSpec? {
        let key = name.replacingOccurrences(of: "-", with: "_")
        return all.first { $0.name == key }
    }

    private static func float(_ name: String, _ accepts: String, help: String, _ ok: @escaping @Sendable (Float) -> Bool,
                              _ keyPath: WritableKeyPath<SamplingParameters, Float> & Sendable) -> SettingSpec {
        SettingSpec(name: name, flag: "--" + name.replacingOccurrences(of: "_", with: "-"), accepts: accepts, help: help,
                    parse: { s, text in
                        guard let v = Float(text), v.isFinite, ok(v) else { return false }
                        s.sampling[keyPath: keyPath] = v
                        return true
                    },
                    read: { .float($0.sampling[keyPath: keyPath]) })
    }

    private static func integer(_ name: String, _ accepts: String, help: String, _ range: ClosedRange<Int>,
                                _ keyPath: WritableKeyPath<ChatSettings, Int> & Sendable) -> SettingSpec {
        SettingSpec(name: name, flag: "--" + name.replacingOccurrences(of: "_", with: "-"), accepts: accepts, help: help,
                    parse: { s, text in
                        guard let v = Int(text), range.contains(v) else { return false }
                        s[keyPath: keyPath] = v
                        return true
                    },
                    read: { .int($0[keyPath: keyPath]) })
    }

    /// Seeds are kept within 0 … 2⁶³−1 so that every JSON reader keeps them exact as integers.
    public static let maxSeed = UInt64(Int64.max)

    /// Every setting, in the order `/set` lists them.
    public static let all: [SettingSpec] = [
        float("temperature", "a number from 0 to 100 (0 = greedy)", help: "randomness of sampling", { $0 >= 0 && $0 <= 100 }, \.temperature),
        integer("top_k", "an integer from 0 to 1000000 (0 = off)", help: "sample among the k most likely tokens", 0...1_000_000, \.sampling.topK),
        float("top_p", "a number in (0, 1] (1 = off)", help: "nucleus sampling", { $0 > 0 && $0 <= 1 }, \.topP),
        float("min_p", "a number in [0, 1] (0 = off)", help: "drop tokens less likely than p × the best", { $0 >= 0 && $0 <= 1 }, \.minP),
        float("repeat_penalty", "a number from 0.01 to 100 (1 = off)", help: "penalise the last 64 tokens", { $0 >= 0.01 && $0 <= 100 }, \.repeatPenalty),
        integer("max_tokens", "an integer from 1 to 1000000", help: "the longest reply, in tokens", 1...1_000_000, \.maxTokens),
        SettingSpec(name: "seed", flag: "--seed", accepts: "an integer from 0 to \(maxSeed), or random", help: "random seed of the sampler",
                    parse: { s, text in
                        if text == "random" { s.sampling.seed = nil; return true }
                        guard let v = UInt64(text), v <= maxSeed else { return false }
                        s.sampling.seed = v
                        return true
                    },
                    read: { s in s.sampling.seed.map { .int(Int($0)) } ?? .string("random") }),
        SettingSpec(name: "mode", flag: "--mode", accepts: "chat or complete", help: "chat template, or plain continuation",
                    parse: { s, text in
                        guard let m = ChatMode(rawValue: text) else { return false }
                        s.mode = m
                        return true
                    },
                    read: { .string($0.mode.rawValue) }),
        SettingSpec(name: "stop", flag: "--stop",
                    accepts: "a string of at most \(ChatSettings.maxStopBytes) bytes, at most \(ChatSettings.maxStopStrings) of them "
                        + "(repeat /set stop to add more; /set stop none clears)",
                    help: "end replies before this text",
                    parse: { s, text in
                        if text == "none" || text.isEmpty { s.stop = []; return true }
                        // Replay from JSON joins several strings with U+001F.
                        var stop = s.stop
                        for part in text.split(separator: "\u{1F}").map(String.init) where !stop.contains(part) {
                            guard part.utf8.count <= ChatSettings.maxStopBytes else { return false }
                            stop.append(part)
                        }
                        guard stop.count <= ChatSettings.maxStopStrings else { return false }
                        s.stop = stop
                        return true
                    },
                    read: { .array($0.stop.map { .string($0) }) }),
    ]
}
