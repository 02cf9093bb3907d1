import Foundation

/// What the Hugging Face cache holds (for `nekochat models`).
public enum HubCacheListing {
    public struct Repository: Sendable {
        public var model: HubModelID
        public var cache: HubRepoCache
        /// Each snapshot's commit, with the refs (branches, tags) that name it.
        public var snapshots: [(commit: String, revisions: [String])]
    }

    /// The model repositories in `cache`, sorted by name.
    public static func repositories(in cache: String) -> [Repository] {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: cache)) ?? []).filter { $0.hasPrefix("models--") }.sorted()
        var out: [Repository] = []
        for name in names {
            let parts = name.dropFirst("models--".count).components(separatedBy: "--")
            guard parts.count == 2 else { continue }
            let model = HubModelID(organisation: parts[0], name: parts[1])
            let repo = HubRepoCache(cache: cache, model: model)
            var refs: [String: [String]] = [:]
            if let walker = fm.enumerator(atPath: repo.folder + "/refs") {
                while let ref = walker.nextObject() as? String {
                    if let commit = repo.cachedCommit(ref) { refs[commit, default: []].append(ref) }
                }
            }
            let commits = ((try? fm.contentsOfDirectory(atPath: repo.folder + "/snapshots")) ?? []).filter(HubModelID.isCommit).sorted()
            out.append(Repository(model: model, cache: repo, snapshots: commits.map { ($0, (refs[$0] ?? []).sorted()) }))
        }
        return out
    }

    /// Bytes of the files in `folder` (through the snapshot's links to the blobs).
    public static func bytes(in folder: String) -> Int64 {
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return 0 }
        var total: Int64 = 0
        while let p = walker.nextObject() as? String {
            if p.hasPrefix(".nekochat") { continue }
            let path = URL(fileURLWithPath: folder + "/" + p).resolvingSymlinksInPath().path
            if let attrs = try? FileManager.default.attributesOfItem(atPath: path), attrs[.type] as? FileAttributeType == .typeRegular {
                total += (attrs[.size] as? NSNumber)?.int64Value ?? 0
            }
        }
        return total
    }
}
