import Foundation

/// What can go wrong finding or fetching a model, each said the way a user can act on it.
public enum HubError: Error, CustomStringConvertible, Equatable {
    case io(String, String)
    /// `HF_HUB_OFFLINE` is set and the model (at that revision) is not in the cache.
    case offline(HubModelID, cache: String)
    /// The Hub has no such repository (or it is private and no token can see it).
    case notFound(HubModelID, endpoint: String, hasToken: Bool)
    case revisionNotFound(HubModelID)
    /// A gated or private model that needs a token, or whose licence the token's user has not accepted.
    case gated(HubModelID, endpoint: String, tokenSource: String?)
    case rateLimited(String, retryAfter: Int?)
    /// No connection to the Hub (and nothing cached to fall back on).
    case unreachable(String, reason: String)
    case http(Int, url: String, message: String)
    /// The bytes received are not the file the Hub announced: discarded, never cached.
    case corrupt(file: String, expected: String, got: String)
    case noSpace(needed: Int64, free: Int64, path: String)
    /// The repository holds no weights nekochat reads.
    case noWeights(HubModelID, files: [String])
    case malformed(url: String, what: String)
    /// A download that ended early, more times than it was retried.
    case interrupted(file: String, got: Int64, of: Int64, reason: String)

    public var description: String {
        switch self {
        case let .io(path, message):
            return "\(path): \(message)"
        case let .offline(model, cache):
            return "HF_HUB_OFFLINE is set and \(model) is not in the Hugging Face cache (\(cache)); "
                + "unset HF_HUB_OFFLINE to download it, or run `nekochat pull \(model)` where there is a network"
        case let .notFound(model, endpoint, hasToken):
            return "no model \(model.repo) on the Hub (\(endpoint))\(hasToken ? "" : " that can be seen without a token"), "
                + "and no local folder named \(model.repo)"
        case let .revisionNotFound(model):
            return "\(model.repo) has no revision '\(model.revision)' (a branch, a tag or a 40-hex commit)"
        case let .gated(model, endpoint, source):
            let page = "\(endpoint)/\(model.repo)"
            if let source {
                return "\(model.repo) is gated or private and the token from \(source) has no access: accept its licence "
                    + "(or ask for access) on \(page), with the account that token belongs to"
            }
            return "\(model.repo) is gated or private: accept its licence on \(page), then set HF_TOKEN to a token "
                + "of that account (made at \(endpoint)/settings/tokens), or save it to ~/.cache/huggingface/token"
        case let .rateLimited(url, retryAfter):
            return "the Hub is refusing requests for now (429 rate limit at \(url))"
                + (retryAfter.map { "; try again in \($0) s" } ?? "; try again later, or set HF_TOKEN (signed-in users get higher limits)")
        case let .unreachable(endpoint, reason):
            return "the Hub (\(endpoint)) cannot be reached: \(reason); nothing of this model is in the cache to fall back on"
        case let .http(status, url, message):
            return "\(url): the Hub answered \(status)\(message.isEmpty ? "" : ": " + message)"
        case let .corrupt(file, expected, got):
            return "\(file): the downloaded bytes do not match the Hub's checksum (expected \(expected), got \(got)); "
                + "they were discarded: run the command again to download it anew"
        case let .noSpace(needed, free, path):
            return String(format: "not enough disk space in %@: the download needs %.2f GB, %.2f GB are free",
                          path, Double(needed) / 1e9, Double(free) / 1e9)
        case let .noWeights(model, files):
            return "\(model) has no safetensors weights nekochat can run (its files: \(files.prefix(12).joined(separator: ", "))"
                + (files.count > 12 ? ", …" : "") + ")"
        case let .malformed(url, what):
            return "\(url): the Hub's answer is not what was expected (\(what))"
        case let .interrupted(file, got, total, reason):
            return "\(file): the download broke off at \(got) of \(total) bytes (\(reason)); the part received is kept, "
                + "and the next run goes on from there"
        }
    }
}
