import Dispatch
import Foundation
import NekoKernels
#if canImport(Glibc)
import Glibc
#endif

/// A model's quantised matrices: anonymous memory in transparent huge pages (the packed
/// kernels read it ~30% faster than 4 KB pages of a mapped file here), and the cache file they
/// were read from or written to.
///
/// Layout of the file and of the memory (all integers little-endian):
/// ```
/// [0, 64)    header: "NKWCACHE", u32 version, u32 format, u64 fingerprint, u64 entries,
///            u64 data offset, u64 file size, u64 checksum (FNV-1a over the header's first
///            48 bytes and the index), 8 bytes zero
/// [64, …)    index: per matrix 48 bytes: u64 name hash, u64 rows, u64 cols, u32 format,
///            u32 zero, u64 offset, u64 bytes
/// [data, …)  the packed matrices, each at a 4096-byte boundary
/// ```
public final class WeightCacheFile: @unchecked Sendable {
    /// The cache file, or nil when it could not be written (or caching is disabled).
    public let path: String?
    /// Whether the weights were read from an existing cache (no quantisation this run).
    public let reused: Bool
    /// Whether the weights are the cache file mapped in place (a cold start) rather than a
    /// copy in huge pages.
    public var mapped: Bool { memory.isFileMapping }
    let memory: WeightMemory

    var base: UnsafeMutableRawPointer { memory.base }
    var size: Int { memory.size }

    init(path: String?, reused: Bool, memory: WeightMemory) {
        self.path = path
        self.reused = reused
        self.memory = memory
    }

    static let magic = Array("NKWCACHE".utf8)
    /// Bumped whenever the packed layouts or the quantisers change.
    static let version: UInt32 = 2
    static let headerBytes = 64, entryBytes = 48, alignment = 4096

    /// One matrix of the plan: its place in the file.
    struct Entry: Equatable {
        var nameHash: UInt64
        var rows: Int
        var cols: Int
        var format: MatrixFormat
        var offset: Int
        var bytes: Int
    }

    /// Offsets for `entries` (their offset fields are overwritten) and the total file size.
    static func layout(_ entries: inout [Entry]) -> (dataOffset: Int, size: Int) {
        let dataOffset = align(headerBytes + entries.count * entryBytes)
        var offset = dataOffset
        for i in entries.indices {
            entries[i].offset = offset
            offset = align(offset + entries[i].bytes)
        }
        return (dataOffset, offset)
    }

    static func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The header and index bytes for `entries`.
    static func header(format: MatrixFormat, fingerprint: UInt64, entries: [Entry], dataOffset: Int,
                       size: Int) -> [UInt8] {
        var b = ByteWriter()
        b.bytes(magic)
        b.u32(version)
        b.u32(UInt32(format.rawValue))
        b.u64(fingerprint)
        b.u64(UInt64(entries.count))
        b.u64(UInt64(dataOffset))
        b.u64(UInt64(size))
        var index = ByteWriter()
        for e in entries {
            index.u64(e.nameHash)
            index.u64(UInt64(e.rows))
            index.u64(UInt64(e.cols))
            index.u32(UInt32(e.format.rawValue))
            index.u32(0)
            index.u64(UInt64(e.offset))
            index.u64(UInt64(e.bytes))
        }
        var sum = FNV1a()
        sum.add(b.data)
        sum.add(index.data)
        b.u64(sum.value)
        b.u64(0)
        return b.data + index.data
    }

    /// Why the file at `path` is not the cache the plan wants, or nil when it is.
    static func problem(path: String, format: MatrixFormat, fingerprint: UInt64, entries: [Entry],
                        dataOffset: Int, size: Int) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return "cannot open: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return "cannot stat: \(String(cString: strerror(errno)))" }
        guard Int(st.st_size) == size else {
            return "\(st.st_size) bytes where \(size) are expected (truncated or from another model)"
        }
        let want = header(format: format, fingerprint: fingerprint, entries: entries, dataOffset: dataOffset, size: size)
        var got = [UInt8](repeating: 0, count: want.count)
        let n = got.withUnsafeMutableBytes { pread(fd, $0.baseAddress, want.count, 0) }
        guard n == want.count else { return "cannot read the header" }
        guard Array(got[0..<8]) == magic else { return "not a nekochat weights cache (bad magic)" }
        var r = ByteReader(got)
        r.skip(8)
        let version = r.u32(), fmt = r.u32(), fp = r.u64(), count = r.u64()
        r.skip(16)
        let checksum = r.u64()
        guard version == self.version else { return "format version \(version), this nekochat writes \(self.version)" }
        var sum = FNV1a()
        sum.add(Array(got[0..<48]))
        sum.add(Array(got[headerBytes...]))
        guard sum.value == checksum else { return "header or index checksum mismatch" }
        guard fmt == UInt32(format.rawValue), fp == fingerprint, count == UInt64(entries.count) else {
            return "made for other weights (format, fingerprint or matrix count differ)"
        }
        guard got == want else { return "its index does not match this model's matrices" }
        return nil
    }

    /// Reads an existing, validated cache into memory (`threads` reads in parallel); nil with
    /// a reason when the file cannot be read whole.
    ///
    /// When the file is not (98%) in the page cache (a cold disk), reading it whole would hold
    /// the start up for seconds: the file is mapped instead (4 KB pages, read as the model
    /// touches them), and the start stays well under a second. The same when the copy into
    /// huge pages would not finish within 0.8 s.
    static func read(path: String, size: Int, pool: WorkerPool) -> (WeightCacheFile?, String?) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return (nil, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let mapped = WeightMemory(mapping: fd, size: size) else {
            return (nil, "cannot mmap: \(String(cString: strerror(errno)))")
        }
        if mapped.residentFraction() < 0.98 { return (inPlace(path, mapped), nil) }
        // Copy into huge pages — unless that gets slow (the kernel compacting memory for them on
        // a busy machine): past the deadline the copy stops and the mapping is used.
        let memory: WeightMemory
        do { memory = try WeightMemory(size: size) } catch { return (inPlace(path, mapped), nil) }
        let piece = 32 << 20, pieces = (size + piece - 1) / piece
        let start = DispatchTime.now().uptimeNanoseconds, budget: UInt64 = 800_000_000
        let status = UnsafeMutablePointer<Int32>.allocate(capacity: max(1, pieces))   // 0 done, errno, or -1 skipped
        status.initialize(repeating: -1, count: max(1, pieces))
        defer { status.deallocate() }
        let base = memory.base
        pool.parallelRanges(pieces) { begin, end in
            for i in begin..<end {
                // Stop when past the budget, or when the pace so far would overrun it.
                let elapsed = DispatchTime.now().uptimeNanoseconds - start, done = i - begin
                let share = end - begin
                if elapsed > budget || (done >= max(2, share / 4) && elapsed / UInt64(done) * UInt64(share) > budget) { return }
                var at = i * piece, failure: Int32 = 0
                let stop = min(size, at + piece)
                while at < stop {
                    let n = pread(fd, base + at, stop - at, off_t(at))
                    if n <= 0 { failure = n < 0 ? errno : EIO; break }
                    at += n
                }
                status[i] = failure
            }
        }
        if let bad = (0..<pieces).first(where: { status[$0] > 0 }) {
            return (nil, "cannot read: \(String(cString: strerror(status[bad])))")
        }
        if (0..<pieces).contains(where: { status[$0] != 0 }) { return (inPlace(path, mapped), nil) }
        return (WeightCacheFile(path: path, reused: true, memory: memory), nil)
    }

    /// The cache file mapped in place, with the kernel asked to read it ahead.
    static func inPlace(_ path: String, _ mapped: WeightMemory) -> WeightCacheFile {
        madvise(mapped.base, mapped.size, MADV_WILLNEED)
        return WeightCacheFile(path: path, reused: true, memory: mapped)
    }
}

/// Memory for packed weights: anonymous, 2 MB aligned and advised into transparent huge pages;
/// or a read-only mapping of the cache file.
final class WeightMemory: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let size: Int
    /// Whether this is a mapping of the cache file (not huge pages).
    let isFileMapping: Bool
    private let mapping: UnsafeMutableRawPointer
    private let mappedBytes: Int

    /// A read-only mapping of `size` bytes of the file `fd`, or nil when it cannot be mapped.
    init?(mapping fd: Int32, size: Int) {
        guard size > 0, let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else { return nil }
        mapping = map
        mappedBytes = size
        base = map
        self.size = size
        isFileMapping = true
    }

    /// The share of the mapping's pages that are in memory already (mincore).
    func residentFraction() -> Double {
        let page = Int(sysconf(Int32(_SC_PAGESIZE))), pages = (mappedBytes + page - 1) / page
        var vec = [UInt8](repeating: 0, count: pages)
        guard mincore(mapping, mappedBytes, &vec) == 0 else { return 1 }
        return Double(vec.reduce(0) { $0 + Int($1 & 1) }) / Double(max(1, pages))
    }

    init(size: Int) throws {
        let huge = 2 << 20
        self.size = max(1, size)
        mappedBytes = self.size + huge
        guard let map = mmap(nil, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              map != MAP_FAILED else {
            throw ModelError.input("cannot reserve \(mappedBytes) bytes of memory for the quantised weights: \(String(cString: strerror(errno)))")
        }
        mapping = map
        isFileMapping = false
        base = UnsafeMutableRawPointer(bitPattern: (Int(bitPattern: map) + huge - 1) / huge * huge)!
        madvise(base, self.size, MADV_HUGEPAGE)
    }

    deinit { munmap(mapping, mappedBytes) }
}

/// 64-bit FNV-1a.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf29ce484222325
    mutating func add(_ bytes: [UInt8]) { for b in bytes { add(b) } }
    mutating func add(_ byte: UInt8) { value = (value ^ UInt64(byte)) &* 0x100000001b3 }
    mutating func add(_ s: String) { add(Array(s.utf8)); add(UInt8(0)) }
    mutating func add(_ n: UInt64) { for i in 0..<8 { add(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) } }
}

struct ByteWriter {
    var data: [UInt8] = []
    mutating func bytes(_ b: [UInt8]) { data += b }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt32(i)))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { data.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
}

struct ByteReader {
    let data: [UInt8]
    var at = 0
    init(_ data: [UInt8]) { self.data = data }
    mutating func skip(_ n: Int) { at += n }
    mutating func u32() -> UInt32 {
        defer { at += 4 }
        return (0..<4).reduce(0) { $0 | UInt32(data[at + $1]) << (8 * UInt32($1)) }
    }
    mutating func u64() -> UInt64 {
        defer { at += 8 }
        return (0..<8).reduce(0) { $0 | UInt64(data[at + $1]) << (8 * UInt64($1)) }
    }
}
