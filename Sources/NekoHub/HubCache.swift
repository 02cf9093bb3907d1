import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One repository's folder in the Hugging Face cache, laid out as every tool expects
/// (Sources/NekoHub/README.md, "The cache"):
/// ```
/// CACHE/models--ORG--NAME/blobs/ETAG                 the files' bytes (ETAG: sha256 for LFS files, git sha1 else)
///                        blobs/ETAG.incomplete      a download in progress (resumed by the next run)
///                        snapshots/COMMIT/PATH      relative symlinks to ../../blobs/ETAG
///                        refs/BRANCH_OR_TAG         the commit, 40 hex digits, no newline
///                        .no_exist/COMMIT/PATH      empty: the file does not exist at that commit
/// CACHE/.locks/models--ORG--NAME/ETAG.lock          flock'd while ETAG is being written
/// ```
public struct HubRepoCache: Sendable {
    public let cache: String
    public let model: HubModelID

    public init(cache: String, model: HubModelID) {
        self.cache = cache
        self.model = model
    }

    public var folder: String { cache + "/" + model.folderName }
    var blobs: String { folder + "/blobs" }
    var locks: String { cache + "/.locks/" + model.folderName }

    public func snapshot(_ commit: String) -> String { folder + "/snapshots/" + commit }
    func blob(_ etag: String) -> String { blobs + "/" + etag }
    func partial(_ etag: String) -> String { blobs + "/" + etag + ".incomplete" }
    func ref(_ name: String) -> String { folder + "/refs/" + name }

    /// The commit the revision names in the cache: the revision itself when it is a commit whose
    /// snapshot exists, else what `refs/REVISION` says.
    public func cachedCommit(_ revision: String) -> String? {
        if HubModelID.isCommit(revision) {
            return FileManager.default.fileExists(atPath: snapshot(revision)) ? revision : nil
        }
        // Written by huggingface_hub without a newline; read leniently all the same.
        guard let text = try? String(contentsOfFile: ref(revision), encoding: .utf8) else { return nil }
        let commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return HubModelID.isCommit(commit) ? commit : nil
    }

    /// Writes `refs/NAME` (a branch or tag) as huggingface_hub does: the commit, no newline,
    /// replaced atomically.
    func writeRef(_ name: String, commit: String) throws {
        guard !HubModelID.isCommit(name) else { return }
        let path = ref(name)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let temp = path + ".tmp-\(getpid())"
        try Data(commit.utf8).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, path) == 0 else {
            try? FileManager.default.removeItem(atPath: temp)
            throw HubError.io(path, String(cString: strerror(errno)))
        }
    }

    /// Links `snapshots/COMMIT/PATH` to `blobs/ETAG` with a relative symlink (one `../` per
    /// folder of PATH more), replacing what was there.
    func link(commit: String, path: String, etag: String) throws {
        let target = snapshot(commit) + "/" + path
        let dir = (target as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let depth = path.split(separator: "/").count - 1
        let relative = String(repeating: "../", count: depth + 2) + "blobs/" + etag
        try? FileManager.default.removeItem(atPath: target)
        guard symlink(relative, target) == 0 else { throw HubError.io(target, String(cString: strerror(errno))) }
    }

    /// Marks PATH as absent at COMMIT (so other tools need not ask again).
    func markMissing(commit: String, path: String) {
        let marker = folder + "/.no_exist/" + commit + "/" + path
        try? FileManager.default.createDirectory(atPath: (marker as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: marker) { FileManager.default.createFile(atPath: marker, contents: nil) }
    }

    /// Whether PATH is marked absent at COMMIT.
    func isMarkedMissing(commit: String, path: String) -> Bool {
        FileManager.default.fileExists(atPath: folder + "/.no_exist/" + commit + "/" + path)
    }

    /// Files of the snapshot at COMMIT whose link leads to a blob (relative paths).
    public func files(commit: String) -> [String] {
        let root = snapshot(commit)
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        var out: [String] = []
        while let p = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDirectory), !isDirectory.boolValue { out.append(p) }
        }
        return out.sorted()
    }
}

/// The bytes free for the cache (the file system it is on, or would be on).
func freeBytes(at path: String) -> Int64? {
    var dir = path
    while !FileManager.default.fileExists(atPath: dir), dir.count > 1 { dir = (dir as NSString).deletingLastPathComponent }
    var st = statvfs()
    guard statvfs(dir, &st) == 0 else { return nil }
    return Int64(st.f_bavail) * Int64(st.f_frsize)
}
