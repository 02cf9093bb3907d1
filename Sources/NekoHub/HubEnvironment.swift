import Foundation

/// The Hugging Face settings a user has, read from the environment as `huggingface_hub` reads
/// them (Sources/NekoHub/README.md, "Environment").
public struct HubEnvironment: Sendable, Equatable {
    /// The Hub's base URL, without a trailing slash (`HF_ENDPOINT`, default https://huggingface.co).
    public var endpoint: String
    /// The cache shared with every other tool (`HF_HUB_CACHE`, …, `~/.cache/huggingface/hub`).
    public var cacheDirectory: String
    /// The access token for gated and private models, if any.
    public var token: String?
    /// Where the token came from (for messages): "HF_TOKEN", a file's path, or nil.
    public var tokenSource: String?
    /// `HF_HUB_OFFLINE`: no request at all.
    public var offline: Bool
    /// nekochat's own cache (q8/q4 weights of Hub models live here, never in the HF cache).
    public var nekochatCache: String

    public init(endpoint: String = "https://huggingface.co", cacheDirectory: String, token: String? = nil,
                tokenSource: String? = nil, offline: Bool = false, nekochatCache: String) {
        self.endpoint = endpoint
        self.cacheDirectory = cacheDirectory
        self.token = token
        self.tokenSource = tokenSource
        self.offline = offline
        self.nekochatCache = nekochatCache
    }

    /// The settings `environment` gives.
    public static func from(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> HubEnvironment {
        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        let home = value("HOME") ?? NSHomeDirectory()
        func expand(_ path: String) -> String {
            path == "~" ? home : path.hasPrefix("~/") ? home + path.dropFirst(1) : path
        }
        let xdgCache = value("XDG_CACHE_HOME").map(expand) ?? home + "/.cache"
        let hfHome = value("HF_HOME").map(expand) ?? xdgCache + "/huggingface"
        let cache = (value("HF_HUB_CACHE") ?? value("HUGGINGFACE_HUB_CACHE")).map(expand) ?? hfHome + "/hub"
        var endpoint = value("HF_ENDPOINT") ?? "https://huggingface.co"
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        var token: String?, source: String?
        if let t = value("HF_TOKEN") {
            token = t; source = "HF_TOKEN"
        } else if let t = value("HUGGING_FACE_HUB_TOKEN") {
            token = t; source = "HUGGING_FACE_HUB_TOKEN"
        } else {
            let file = value("HF_TOKEN_PATH").map(expand) ?? hfHome + "/token"
            if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                let t = text.replacingOccurrences(of: "\r", with: "").replacingOccurrences(of: "\n", with: "")
                    .trimmingCharacters(in: .whitespaces)
                if !t.isEmpty { token = t; source = file }
            }
        }
        let offline = ["1", "ON", "YES", "TRUE"].contains((value("HF_HUB_OFFLINE") ?? "").uppercased())
        return HubEnvironment(endpoint: endpoint, cacheDirectory: cache, token: token, tokenSource: source,
                              offline: offline, nekochatCache: xdgCache + "/nekochat")
    }
}

/// A model on the Hub: `ORG/NAME` at a revision (a branch, a tag or a 40-hex commit).
public struct HubModelID: Sendable, Equatable, CustomStringConvertible {
    public var organisation: String
    public var name: String
    /// The revision asked for (default `main`).
    public var revision: String

    public var repo: String { organisation + "/" + name }
    public var description: String { revision == "main" ? repo : repo + "@" + revision }
    /// The repository's folder in the cache: `models--ORG--NAME`.
    public var folderName: String { "models--\(organisation)--\(name)" }
    /// Whether the revision is a full commit hash (then no ref is needed to find it).
    public var revisionIsCommit: Bool { Self.isCommit(revision) }

    public init(organisation: String, name: String, revision: String = "main") {
        self.organisation = organisation
        self.name = name
        self.revision = revision
    }

    static func isCommit(_ s: String) -> Bool { s.count == 40 && s.allSatisfy { "0123456789abcdef".contains($0) } }

    /// `ORG/NAME[@REVISION]` as a Hub id, or nil when the text is a path: it starts with `/`, `.`
    /// or `~`, does not have exactly one `/`, or has characters a repository name cannot have.
    public static func parse(_ text: String) -> HubModelID? {
        guard let first = text.first, !"/.~".contains(first) else { return nil }
        var id = Substring(text), revision = "main"
        if let at = text.firstIndex(of: "@") {
            id = text[..<at]
            revision = String(text[text.index(after: at)...])
            guard !revision.isEmpty, !revision.contains(where: { $0.isWhitespace || $0 == "@" }) else { return nil }
        }
        let parts = id.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        for p in parts {
            guard !p.isEmpty, p.count <= 96, p.allSatisfy(allowed.contains), !p.hasPrefix("."), !p.hasPrefix("-"),
                  !p.contains(".."), !p.contains("--") else { return nil }
        }
        return HubModelID(organisation: String(parts[0]), name: String(parts[1]), revision: revision)
    }

    /// The model whose cache snapshot folder `path` is (…/models--ORG--NAME/snapshots/COMMIT),
    /// with that commit as the revision.
    public static func ofSnapshot(_ path: String) -> HubModelID? {
        let parts = URL(fileURLWithPath: path).standardizedFileURL.pathComponents
        guard parts.count >= 3, parts[parts.count - 2] == "snapshots", isCommit(parts[parts.count - 1]) else { return nil }
        let folder = parts[parts.count - 3]
        guard folder.hasPrefix("models--") else { return nil }
        let names = folder.dropFirst("models--".count).components(separatedBy: "--")
        guard names.count == 2 else { return nil }
        return HubModelID(organisation: names[0], name: names[1], revision: parts[parts.count - 1])
    }
}
