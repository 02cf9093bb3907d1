import Foundation
import NekoJSON

/// A model folder in the cache, ready to load.
public struct HubSnapshot: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        public var path: String
        public var size: Int64
        /// Fetched now (false: already in the cache).
        public var downloaded: Bool
    }

    public var model: HubModelID
    public var commit: String
    /// `CACHE/models--ORG--NAME/snapshots/COMMIT`.
    public var path: String
    public var files: [File]
    /// Something the user should know (the Hub could not be reached and the cache was used, say).
    public var notice: String?
}

/// How far a download has got: the file being fetched and all of them together.
public struct HubProgress: Sendable {
    public var file: String
    public var fileBytes: Int64
    public var fileSize: Int64
    /// Bytes of this run's downloads done, and to do in all.
    public var doneBytes: Int64
    public var totalBytes: Int64
    public var bytesPerSecond: Double
    /// The file is complete (and verified).
    public var fileFinished: Bool

    public var secondsLeft: Double? { bytesPerSecond > 0 ? Double(totalBytes - doneBytes) / bytesPerSecond : nil }
}

/// Finding models in the Hugging Face cache and downloading what is missing
/// (Sources/NekoHub/README.md).
public enum HubModels {
    /// Files nekochat reads besides the weights, fetched when the repository has them.
    static let optionalFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                "generation_config.json", "chat_template.jinja"]

    /// The snapshot of `model`: from the cache when it is there (and, unless offline, still what
    /// the revision names), else downloaded into it. `HF_HUB_OFFLINE` makes no request at all;
    /// without it, a cached model opens when the Hub cannot be reached, with a notice.
    public static func snapshot(_ model: HubModelID, env: HubEnvironment = .from(),
                                progress: @escaping @Sendable (HubProgress) -> Void = { _ in },
                                waiting: @escaping @Sendable (String) -> Void = { _ in }) throws -> HubSnapshot {
        let cache = HubRepoCache(cache: env.cacheDirectory, model: model)
        let cached = cache.cachedCommit(model.revision).flatMap { commit in
            completeFiles(cache, commit: commit).map { (commit, $0) }
        }
        @Sendable func fromCache(_ notice: String?) -> HubSnapshot? {
            guard let (commit, files) = cached else { return nil }
            return HubSnapshot(model: model, commit: commit, path: cache.snapshot(commit),
                               files: files.map { HubSnapshot.File(path: $0, size: fileSize(cache.snapshot(commit) + "/" + $0), downloaded: false) },
                               notice: notice)
        }
        if env.offline {
            guard let s = fromCache(nil) else { throw HubError.offline(model, cache: env.cacheDirectory) }
            return s
        }
        // A model in the cache must not wait long on a Hub that cannot be reached.
        let client = HubClient(env: env, connectTimeout: cached == nil ? 10 : 3)
        return try runBlocking {
            let commit: String
            do {
                commit = model.revisionIsCommit ? model.revision : try await client.commit(of: model)
            } catch let HubError.unreachable(_, reason) {
                guard let (commit, _) = cached,
                      let s = fromCache("the Hub (\(env.endpoint)) cannot be reached (\(reason)): using the cached \(model) (commit \(commit.prefix(12)))")
                else { throw HubError.unreachable(env.endpoint, reason: reason) }
                return s
            }
            return try await fetch(model, commit: commit, cache: cache, client: client, progress: progress, waiting: waiting)
        }
    }

    /// The files of a complete snapshot (config.json and every weight file, through the index when
    /// there is one), or nil when something is missing or a link leads nowhere.
    static func completeFiles(_ cache: HubRepoCache, commit: String) -> [String]? {
        let root = cache.snapshot(commit)
        let fm = FileManager.default
        guard fm.fileExists(atPath: root + "/config.json") else { return nil }
        var weights: [String]
        if let data = fm.contents(atPath: root + "/model.safetensors.index.json") {
            guard let shards = try? shardNames(data) else { return nil }
            weights = shards
        } else {
            weights = ["model.safetensors"]
        }
        guard weights.allSatisfy({ fm.fileExists(atPath: root + "/" + $0) }) else { return nil }
        return cache.files(commit: commit)
    }

    public static func shardNames(_ data: Data) throws -> [String] {
        guard let json = try? JSONValue.parse([UInt8](data)), let map = json["weight_map"]?.members else {
            throw HubError.malformed(url: "model.safetensors.index.json", what: "no weight_map")
        }
        var seen = Set<String>(), out: [String] = []
        for (_, v) in map {
            guard let name = v.string, !name.contains("/"), !name.hasPrefix("."), name.hasSuffix(".safetensors") else {
                throw HubError.malformed(url: "model.safetensors.index.json", what: "a shard name that is not a .safetensors file beside it")
            }
            if seen.insert(name).inserted { out.append(name) }
        }
        return out
    }

    static func fileSize(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// Downloads what the snapshot at `commit` lacks.
    static func fetch(_ model: HubModelID, commit: String, cache: HubRepoCache, client: HubClient,
                      progress: @escaping @Sendable (HubProgress) -> Void,
                      waiting: @escaping @Sendable (String) -> Void) async throws -> HubSnapshot {
        let root = cache.snapshot(commit)
        let listing = try await client.tree(of: model, commit: commit)
        let sizes = Dictionary(listing.map { ($0.path, $0.size) }, uniquingKeysWith: { a, _ in a })
        // The weights: the index and the shards it names, else model.safetensors.
        var wanted: [String] = ["config.json"] + optionalFiles.filter { sizes[$0] != nil }
        guard sizes["config.json"] != nil else {
            throw HubError.noWeights(model, files: listing.map(\.path))
        }
        var shards: [String] = []
        if sizes["model.safetensors.index.json"] != nil {
            wanted.append("model.safetensors.index.json")
        } else if sizes["model.safetensors"] != nil {
            shards = ["model.safetensors"]
        } else {
            throw HubError.noWeights(model, files: listing.map(\.path))
        }
        var files: [HubSnapshot.File] = []
        var plan: [(path: String, info: HubClient.FileInfo)] = []
        // Small files first: an interrupted pull leaves the weights, never the config, missing.
        for path in wanted {
            if let info = try await client.info(model, commit: commit, path: path) { plan.append((path, info)) }
        }
        let start = Date()
        let box = ProgressBox()
        func get(_ path: String, _ info: HubClient.FileInfo) async throws {
            let fetched = try await ensure(path, info, model: model, commit: commit, cache: cache, client: client,
                                           total: box, start: start, progress: progress, waiting: waiting)
            files.append(HubSnapshot.File(path: path, size: info.size, downloaded: fetched))
        }
        // Disk space for everything this run may write (what is not already in a blob).
        func need(_ items: [(path: String, info: HubClient.FileInfo)]) -> Int64 {
            items.reduce(0) { sum, item in
                FileManager.default.fileExists(atPath: cache.blob(item.info.etag)) ? sum
                    : sum + item.info.size - fileSize(cache.partial(item.info.etag))
            }
        }
        box.total = plan.reduce(0) { $0 + $1.info.size }
        try checkSpace(need(plan), cache: cache)
        for (path, info) in plan { try await get(path, info) }
        if sizes["model.safetensors.index.json"] != nil {
            guard let data = FileManager.default.contents(atPath: root + "/model.safetensors.index.json") else {
                throw HubError.io(root + "/model.safetensors.index.json", "cannot read it back")
            }
            shards = try shardNames(data)
            for s in shards where sizes[s] == nil {
                throw HubError.malformed(url: "\(model.repo)/model.safetensors.index.json", what: "it names \(s), which the repository does not have")
            }
        }
        var weights: [(path: String, info: HubClient.FileInfo)] = []
        for s in shards {
            guard let info = try await client.info(model, commit: commit, path: s) else {
                throw HubError.malformed(url: "\(model.repo)/\(s)", what: "listed, but not found")
            }
            weights.append((s, info))
        }
        box.total += weights.reduce(0) { $0 + $1.info.size }
        try checkSpace(need(weights), cache: cache)
        for (path, info) in weights { try await get(path, info) }
        for path in optionalFiles where sizes[path] == nil { cache.markMissing(commit: commit, path: path) }
        try cache.writeRef(model.revision, commit: commit)
        return HubSnapshot(model: model, commit: commit, path: root, files: files, notice: nil)
    }

    static func checkSpace(_ needed: Int64, cache: HubRepoCache) throws {
        guard needed > 0, let free = freeBytes(at: cache.cache) else { return }
        // Room for the files and a little more (the file system needs some too).
        if needed + (64 << 20) > free { throw HubError.noSpace(needed: needed, free: free, path: cache.cache) }
    }

    final class ProgressBox: @unchecked Sendable {
        var total: Int64 = 0
        var done: Int64 = 0
    }

    /// Makes `snapshots/COMMIT/PATH` lead to a verified blob; returns whether bytes were fetched.
    static func ensure(_ path: String, _ info: HubClient.FileInfo, model: HubModelID, commit: String, cache: HubRepoCache,
                       client: HubClient, total: ProgressBox, start: Date, progress: @escaping @Sendable (HubProgress) -> Void,
                       waiting: @escaping @Sendable (String) -> Void) async throws -> Bool {
        let fm = FileManager.default
        let blob = cache.blob(info.etag)
        func report(_ bytes: Int64, finished: Bool) {
            let done = total.done + bytes
            let rate = Double(done) / max(1e-3, Date().timeIntervalSince(start))
            progress(HubProgress(file: path, fileBytes: bytes, fileSize: info.size, doneBytes: done, totalBytes: total.total,
                                 bytesPerSecond: rate, fileFinished: finished))
        }
        if fileSize(blob) == info.size, fm.fileExists(atPath: blob) {
            try cache.link(commit: commit, path: path, etag: info.etag)
            total.done += info.size
            return false
        }
        try fm.createDirectory(atPath: cache.blobs, withIntermediateDirectories: true)
        let fetched: Bool = try await lockedDownload(info, path: path, cache: cache, client: client, waiting: waiting) { bytes in
            report(bytes, finished: false)
        }
        try cache.link(commit: commit, path: path, etag: info.etag)
        total.done += info.size
        report(0, finished: true)
        return fetched
    }

    /// Under the blob's lock: another process may have finished it meanwhile.
    static func lockedDownload(_ info: HubClient.FileInfo, path: String, cache: HubRepoCache, client: HubClient,
                               waiting: @escaping @Sendable (String) -> Void, progress: @escaping (Int64) -> Void) async throws -> Bool {
        let blob = cache.blob(info.etag), partial = cache.partial(info.etag)
        let lockFile = cache.locks + "/" + info.etag + ".lock"
        try FileManager.default.createDirectory(atPath: cache.locks, withIntermediateDirectories: true)
        let lock = try FileLock(lockFile) { waiting("waiting for another download of \(path) to finish (\(lockFile))") }
        defer { lock.release() }
        if fileSize(blob) == info.size, FileManager.default.fileExists(atPath: blob) { return false }
        let digest = try await client.download(info, name: path, to: partial, progress: progress)
        // A 64-hex etag is the file's sha256 and a 40-hex one its git sha1; other etags are
        // compared with neither (the size was checked).
        let checkable = info.etag.count == 64 || info.etag.count == 40
        if checkable, digest != info.etag.lowercased() {
            try? FileManager.default.removeItem(atPath: partial)
            throw HubError.corrupt(file: "\(cache.model.repo)/\(path)", expected: info.etag, got: digest)
        }
        guard rename(partial, blob) == 0 else { throw HubError.io(blob, String(cString: strerror(errno))) }
        return true
    }
}

/// An exclusive flock on a file (huggingface_hub's lock files), released by `release`.
final class FileLock {
    let fd: Int32

    init(_ path: String, waiting: () -> Void) throws {
        fd = open(path, O_RDWR | O_CREAT, 0o664)
        guard fd >= 0 else { throw HubError.io(path, String(cString: strerror(errno))) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            waiting()
            guard flock(fd, LOCK_EX) == 0 else {
                close(fd)
                throw HubError.io(path, String(cString: strerror(errno)))
            }
        }
    }

    func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// Runs async work from synchronous code (the commands are synchronous).
final class BlockingBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
    init() {}
}

func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = BlockingBox<T>(), done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}
