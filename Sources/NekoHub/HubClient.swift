import AsyncHTTPClient
import CNekoHash
import Foundation
import NekoJSON
import NIOCore
import NIOHTTP1

/// The Hub's HTTP API, as `huggingface_hub` uses it (Sources/NekoHub/README.md, "The protocol"):
/// the revision and tree APIs, `HEAD …/resolve/COMMIT/PATH` for a file's etag, size and place,
/// and a `GET` that follows redirects to a CDN — with the token sent to the Hub's own origin only.
final class HubClient: @unchecked Sendable {
    let env: HubEnvironment
    let http: HTTPClient
    /// Seconds a connection may take to open.
    let connectTimeout: Int64

    init(env: HubEnvironment, connectTimeout: Int64 = 10) {
        self.env = env
        self.connectTimeout = connectTimeout
        var config = HTTPClient.Configuration()
        config.redirectConfiguration = .disallow   // followed by hand: the token must not reach a CDN
        config.connectionPool.retryConnectionEstablishment = false
        config.timeout.connect = .seconds(connectTimeout)
        config.timeout.read = .seconds(60)
        config.decompression = .disabled
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    deinit { try? http.syncShutdown() }

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var url: String
    }

    static func origin(_ url: String) -> String? {
        guard let u = URL(string: url), let scheme = u.scheme?.lowercased(), let host = u.host?.lowercased() else { return nil }
        let port = u.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(host):\(port)"
    }

    /// Headers for a request to `url`: the token only when `url` is on the Hub's own origin.
    func headers(for url: String) -> HTTPHeaders {
        var h = HTTPHeaders()
        h.add(name: "User-Agent", value: "nekochat/0.2; hf_hub-compatible")
        if let token = env.token, Self.origin(url) == Self.origin(env.endpoint) {
            h.add(name: "Authorization", value: "Bearer \(token)")
        }
        return h
    }

    static func quote(_ s: String, keepSlash: Bool) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~" + (keepSlash ? "/" : ""))
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    func resolveURL(_ model: HubModelID, commit: String, path: String) -> String {
        "\(env.endpoint)/\(model.repo)/resolve/\(Self.quote(commit, keepSlash: false))/\(Self.quote(path, keepSlash: true))"
    }

    // MARK: - requests

    /// One request; redirects within the Hub's origin (a renamed repository) are followed, one
    /// to another origin (a CDN) is returned as it is. Retries connection failures, 5xx, 408 and
    /// 429 a few times with backoff.
    func send(_ method: HTTPMethod, _ url: String, extra: HTTPHeaders = [:], body limit: Int = 32 << 20,
              retries: Int = 3) async throws -> (Response, [UInt8]) {
        var attempt = 0
        while true {
            do {
                var current = url
                for _ in 0..<10 {
                    var request = HTTPClientRequest(url: current)
                    request.method = method
                    request.headers = headers(for: current)
                    request.headers.add(contentsOf: extra)
                    let response = try await http.execute(request, timeout: .seconds(120))
                    let status = Int(response.status.code)
                    if (300..<400).contains(status), let location = response.headers.first(name: "Location"),
                       let next = URL(string: location, relativeTo: URL(string: current))?.absoluteString,
                       Self.origin(next) == Self.origin(current) {
                        _ = try? await response.body.collect(upTo: 1 << 20)
                        current = next
                        continue
                    }
                    let bytes = method == .HEAD ? [] : Array(buffer: try await response.body.collect(upTo: limit))
                    let r = Response(status: status, headers: response.headers, url: current)
                    if [408, 429, 500, 502, 503, 504].contains(status), attempt < retries {
                        attempt += 1
                        try await Task.sleep(nanoseconds: backoff(attempt, r) * 1_000_000_000)
                        break
                    }
                    return (r, bytes)
                }
                if attempt == 0 { throw HubError.malformed(url: url, what: "too many redirects") }
            } catch let error as HubError {
                throw error
            } catch {
                guard attempt < retries, Self.isTransient(error) else { throw HubError.unreachable(env.endpoint, reason: Self.describe(error)) }
                attempt += 1
                try await Task.sleep(nanoseconds: backoff(attempt, nil) * 1_000_000_000)
            }
        }
    }

    func backoff(_ attempt: Int, _ r: Response?) -> UInt64 {
        if let after = r?.headers.first(name: "Retry-After").flatMap(UInt64.init) { return min(after, 30) }
        return UInt64(1 << min(attempt - 1, 4))
    }

    static func isTransient(_ error: Error) -> Bool {
        if let e = error as? HTTPClientError, e == .connectTimeout || e == .readTimeout || e == .remoteConnectionClosed { return true }
        return error is ChannelError || error is IOError || "\(error)".contains("connect")
    }

    static func describe(_ error: Error) -> String {
        let text = "\(error)"
        if text.contains("connectTimeout") { return "the connection timed out" }
        if text.contains("Connection refused") || text.contains("connectionRefused") { return "connection refused" }
        if text.contains("NXDOMAIN") || text.contains("resolve") || text.contains("DNS") { return "the host name does not resolve" }
        if text.contains("readTimeout") { return "the server stopped answering" }
        return text
    }

    /// The error a failed Hub response means (its `X-Error-Code`, else its status).
    func failure(_ r: Response, _ body: [UInt8], model: HubModelID) -> HubError {
        let code = r.headers.first(name: "X-Error-Code")
        var message = r.headers.first(name: "X-Error-Message") ?? ""
        if message.isEmpty, let json = try? JSONValue.parse(body) { message = json["error"]?.string ?? "" }
        if code == "GatedRepo" { return .gated(model, endpoint: env.endpoint, tokenSource: env.tokenSource) }
        if code == "RepoNotFound" || (code == nil && r.status == 404 && r.url.contains("/api/models/")) {
            return .notFound(model, endpoint: env.endpoint, hasToken: env.token != nil)
        }
        if code == "RevisionNotFound" { return .revisionNotFound(model) }
        if r.status == 401 || r.status == 403 { return .gated(model, endpoint: env.endpoint, tokenSource: env.tokenSource) }
        if r.status == 429 { return .rateLimited(r.url, retryAfter: r.headers.first(name: "Retry-After").flatMap(Int.init)) }
        return .http(r.status, url: r.url, message: message)
    }

    // MARK: - the API

    /// The commit a branch or tag names now.
    func commit(of model: HubModelID) async throws -> String {
        let url = "\(env.endpoint)/api/models/\(model.repo)/revision/\(Self.quote(model.revision, keepSlash: false))"
        let (r, body) = try await send(.GET, url)
        guard r.status == 200 else { throw failure(r, body, model: model) }
        return try HubWire.revisionSHA(body, url: url)
    }

    /// The files of the repository at `commit` (paths and sizes), through the pages of the tree API.
    func tree(of model: HubModelID, commit: String) async throws -> [TreeFile] {
        var url: String? = "\(env.endpoint)/api/models/\(model.repo)/tree/\(commit)?recursive=true&expand=false"
        var files: [TreeFile] = []
        var pages = 0
        while let u = url {
            pages += 1
            guard pages <= 10_000 else { throw HubError.malformed(url: u, what: "more than 10,000 pages") }
            let (r, body) = try await send(.GET, u)
            guard r.status == 200 else { throw failure(r, body, model: model) }
            files += try HubWire.treeFiles(body, url: u)
            url = HubWire.nextPage(r.headers.first(name: "Link"), after: u)
        }
        return files
    }

    typealias TreeFile = HubWire.TreeFile
    typealias FileInfo = HubWire.FileInfo

    /// What the Hub says of one file (nil: it does not exist at that commit).
    func info(_ model: HubModelID, commit: String, path: String) async throws -> FileInfo? {
        let url = resolveURL(model, commit: commit, path: path)
        var extra = HTTPHeaders()
        extra.add(name: "Accept-Encoding", value: "identity")
        let (r, body) = try await send(.HEAD, url, extra: extra)
        let headers = r.headers.map { ($0.name, $0.value) }
        if HubWire.isMissing(status: r.status, headers: headers) { return nil }
        guard (200..<400).contains(r.status) else { throw failure(r, body, model: model) }
        return try HubWire.fileInfo(status: r.status, headers: headers, url: r.url)
    }

    // MARK: - downloading

    /// Downloads `file` into `partial`, going on from the bytes already there (a `Range` request;
    /// anything but a 206 from the right offset restarts it cleanly), hashing as it goes. Returns
    /// the digest (hex) of the whole file: sha256, or git's blob sha1 when the etag is 40 hex.
    func download(_ file: FileInfo, name: String, to partial: String, progress: (Int64) -> Void) async throws -> String {
        let fm = FileManager.default
        if !fm.fileExists(atPath: partial) { fm.createFile(atPath: partial, contents: nil) }
        guard let handle = FileHandle(forUpdatingAtPath: partial) else { throw HubError.io(partial, "cannot open it for writing") }
        defer { try? handle.close() }
        var hasher = Digest(gitSize: file.etag.count == 40 ? file.size : nil)
        // The bytes already there: hashed again (they were not kept), then continued.
        var have: Int64 = Int64((try? handle.seekToEnd()) ?? 0)
        if have > file.size { try handle.truncate(atOffset: 0); have = 0 }
        if have > 0 {
            try handle.seek(toOffset: 0)
            var left = have
            while left > 0 {
                guard let chunk = try handle.read(upToCount: Int(min(left, 8 << 20))), !chunk.isEmpty else { break }
                hasher.update(chunk)
                left -= Int64(chunk.count)
            }
            guard left == 0 else { throw HubError.io(partial, "cannot read back the part already downloaded") }
        }
        progress(have)
        var attempt = 0
        while have < file.size {
            do {
                let got = try await fetch(file, from: have, into: handle, hasher: &hasher, progress: progress)
                have = got
            } catch let error as HubError {
                throw error
            } catch {
                have = Int64((try? handle.offset()) ?? UInt64(have))
                attempt += 1
                guard attempt <= 3 else { throw HubError.interrupted(file: name, got: have, of: file.size, reason: Self.describe(error)) }
                try await Task.sleep(nanoseconds: UInt64(1 << (attempt - 1)) * 1_000_000_000)
            }
        }
        try handle.synchronize()
        return hasher.finish()
    }

    /// One GET from `offset` on, appended to `handle`; returns the bytes now in the file.
    private func fetch(_ file: FileInfo, from offset: Int64, into handle: FileHandle, hasher: inout Digest,
                       progress: (Int64) -> Void) async throws -> Int64 {
        var url = file.location
        for _ in 0..<10 {
            var request = HTTPClientRequest(url: url)
            request.headers = headers(for: url)
            request.headers.add(name: "Accept-Encoding", value: "identity")
            if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
            let response = try await http.execute(request, timeout: .seconds(3600 * 24))
            let status = Int(response.status.code)
            if (300..<400).contains(status), let location = response.headers.first(name: "Location"),
               let next = URL(string: location, relativeTo: URL(string: url))?.absoluteString {
                _ = try? await response.body.collect(upTo: 1 << 20)
                url = next   // the token is dropped if `next` is another origin (headers(for:))
                continue
            }
            var at = offset
            if offset > 0 {
                // Only a 206 that starts where the part ends continues it; anything else restarts.
                let range = response.headers.first(name: "Content-Range") ?? ""
                if status != 206 || !range.hasPrefix("bytes \(offset)-") {
                    guard status == 200 else { throw failureOfDownload(status, url) }
                    try handle.truncate(atOffset: 0)
                    hasher = Digest(gitSize: file.etag.count == 40 ? file.size : nil)
                    at = 0
                }
            } else if status != 200 {
                throw failureOfDownload(status, url)
            }
            try handle.seek(toOffset: UInt64(at))
            var last = Date.distantPast
            for try await buffer in response.body {
                let data = Data(buffer.readableBytesView)
                guard at + Int64(data.count) <= file.size else {
                    throw HubError.malformed(url: url, what: "more bytes than the \(file.size) announced")
                }
                try handle.write(contentsOf: data)
                hasher.update(data)
                at += Int64(data.count)
                if Date().timeIntervalSince(last) > 0.1 { progress(at); last = Date() }
            }
            progress(at)
            if at < file.size { throw HTTPClientError.remoteConnectionClosed }
            return at
        }
        throw HubError.malformed(url: file.location, what: "too many redirects")
    }

    func failureOfDownload(_ status: Int, _ url: String) -> HubError {
        switch status {
        case 401, 403: .http(status, url: url, message: "the file's server refused the download")
        case 429: .rateLimited(url, retryAfter: nil)
        default: .http(status, url: url, message: "")
        }
    }
}

/// SHA-256 of a file, or git's blob SHA-1 (`sha1("blob SIZE\0" + bytes)`), as the Hub's etags are.
public struct Digest {
    private var state = nk_hash()

    /// `gitSize`: git's blob SHA-1 of a file of that many bytes; nil: SHA-256.
    public init(gitSize: Int64?) {
        nk_hash_init(&state, gitSize == nil ? 0 : 1)
        if let gitSize { update(Data("blob \(gitSize)\0".utf8)) }
    }

    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { raw in nk_hash_update(&state, raw.baseAddress, raw.count) }
    }

    /// The digest as lowercase hex.
    public mutating func finish() -> String {
        var out = [UInt8](repeating: 0, count: 32)
        let n = state.sha1 != 0 ? 20 : 32
        nk_hash_final(&state, &out)
        return out.prefix(n).map { String(format: "%02x", $0) }.joined()
    }
}
