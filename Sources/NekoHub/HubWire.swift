import Foundation
import NekoJSON

/// The Hub's answers read into values: pure functions of the bytes and headers received, so
/// that they are fuzzed alone (Tests/Fuzz, target `hub`). Whatever a server sends, the result
/// is a value or a `HubError` naming what was wrong — never a trap.
public enum HubWire {
    /// A file of the repository's tree: its path and size (an LFS file's real size).
    public struct TreeFile: Equatable, Sendable {
        public var path: String
        public var size: Int64
    }

    /// What the Hub says of one file: its etag (the sha256 of an LFS file, the git sha1 of
    /// another), its size, and where its bytes are.
    public struct FileInfo: Equatable, Sendable {
        public var etag: String
        public var size: Int64
        public var location: String
    }

    /// The commit of a `/api/models/…/revision/REV` answer.
    public static func revisionSHA(_ body: [UInt8], url: String) throws -> String {
        guard let json = try? JSONValue.parse(body), let sha = json["sha"]?.string, HubModelID.isCommit(sha) else {
            throw HubError.malformed(url: url, what: "no 40-hex \"sha\"")
        }
        return sha
    }

    /// The files of one page of `/api/models/…/tree/COMMIT` (folders are left out).
    public static func treeFiles(_ body: [UInt8], url: String) throws -> [TreeFile] {
        guard let json = try? JSONValue.parse(body), let items = json.array else {
            throw HubError.malformed(url: url, what: "not a JSON list of files")
        }
        var files: [TreeFile] = []
        for item in items where item["type"]?.string == "file" {
            guard let path = item["path"]?.string, !path.isEmpty, path.utf8.count <= 4096,
                  let size = item["lfs"]?["size"]?.int ?? item["size"]?.int, size >= 0 else {
                throw HubError.malformed(url: url, what: "a file without a path or a size")
            }
            files.append(TreeFile(path: path, size: Int64(size)))
        }
        return files
    }

    /// The `rel="next"` target of a Link header, resolved against the page it came with.
    public static func nextPage(_ link: String?, after current: String) -> String? {
        guard let link else { return nil }
        for part in link.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
            guard let target = fields.first, target.hasPrefix("<"), target.hasSuffix(">"), target.count >= 2,
                  fields.dropFirst().contains(where: { $0.replacingOccurrences(of: " ", with: "") == "rel=\"next\"" }) else { continue }
            let raw = String(target.dropFirst().dropLast())
            guard let next = URL(string: raw, relativeTo: URL(string: current))?.absoluteString,
                  ["http", "https"].contains(URL(string: next)?.scheme?.lowercased() ?? "") else { return nil }
            return next
        }
        return nil
    }

    /// The value of header `name` (case-insensitive), the first one.
    static func header(_ headers: [(String, String)], _ name: String) -> String? {
        headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    /// Whether a resolve answer says the file does not exist (and not that the repository is missing).
    public static func isMissing(status: Int, headers: [(String, String)]) -> Bool {
        let code = header(headers, "X-Error-Code")
        return code == "EntryNotFound" || (status == 404 && code == nil)
    }

    /// A file's etag, size and place from a `HEAD …/resolve/COMMIT/PATH` answer (a 200, or the
    /// 3xx that leads to a CDN, whose own headers hold the metadata).
    public static func fileInfo(status: Int, headers: [(String, String)], url: String) throws -> FileInfo {
        guard let raw = header(headers, "X-Linked-Etag") ?? header(headers, "ETag") else {
            throw HubError.malformed(url: url, what: "no ETag")
        }
        let etag = normalise(raw)
        // The etag names a file in the cache: letters, digits, - and _ only (never a path).
        guard !etag.isEmpty, etag.count <= 128, etag.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw HubError.malformed(url: url, what: "an ETag that cannot name a file: \(raw.prefix(80))")
        }
        let redirected = (300..<400).contains(status)
        guard let size = (header(headers, "X-Linked-Size") ?? (redirected ? nil : header(headers, "Content-Length"))).flatMap({ Int64($0) }),
              size >= 0 else {
            throw HubError.malformed(url: url, what: "no size (X-Linked-Size or Content-Length)")
        }
        var location = url
        if redirected, let l = header(headers, "Location") {
            guard let abs = URL(string: l, relativeTo: URL(string: url))?.absoluteString,
                  ["http", "https"].contains(URL(string: abs)?.scheme?.lowercased() ?? "") else {
                throw HubError.malformed(url: url, what: "a redirect that is not an http(s) URL")
            }
            location = abs
        }
        return FileInfo(etag: etag, size: size, location: location)
    }

    /// `W/"abc"` → `abc`.
    public static func normalise(_ etag: String) -> String {
        var e = etag.trimmingCharacters(in: .whitespaces)
        if e.hasPrefix("W/") { e.removeFirst(2) }
        return e.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
}
