import CNekoPlatform
import Foundation
import NekoKernels
#if canImport(Glibc)
import Glibc
#endif

extension ModelWeights {
    /// The weights with every matrix that quantisation replaces passed through `f`, in a fixed
    /// order (LM head; per layer q, k, v, o, then the MLP or each expert's and the shared expert's
    /// gate, up, down). The embedding (read a row at a time) and the routers (tiny; the choice of
    /// experts stays exactly as stored) are kept.
    func mapQuantizable(_ f: (WeightMatrix, String) throws -> WeightMatrix) rethrows -> ModelWeights {
        var w = self
        w.lmHead = try f(lmHead, "lm_head")
        func mlp(_ m: MLPWeights, _ p: String) throws -> MLPWeights {
            MLPWeights(gate: try f(m.gate, p + "gate"), up: try f(m.up, p + "up"), down: try f(m.down, p + "down"))
        }
        for (i, layer) in layers.enumerated() {
            let p = "layers.\(i)."
            var a = layer.attention
            a.q = try f(a.q, p + "q")
            a.k = try f(a.k, p + "k")
            a.v = try f(a.v, p + "v")
            a.o = try f(a.o, p + "o")
            w.layers[i].attention = a
            switch layer.feedForward {
            case let .dense(m):
                w.layers[i].feedForward = .dense(try mlp(m, p + "mlp."))
            case var .moe(m):
                m.experts = try m.experts.enumerated().map { e, x in try mlp(x, p + "experts.\(e).") }
                if let s = m.shared { m.shared = try mlp(s, p + "shared.") }
                w.layers[i].feedForward = .moe(m)
            }
        }
        return w
    }
}

/// Quantises a model's weights to Q8 or Q4 — or finds them in the cache — and keeps the stored
/// weights' pages out of memory once quantised.
struct Quantizer {
    let directory: String
    let files: [SafetensorsFile]
    let format: WeightFormat
    let policy: WeightCachePolicy
    let threads: Int
    let progress: ((QuantizationProgress) -> Void)?

    init(directory: String, files: [SafetensorsFile], format: WeightFormat, policy: WeightCachePolicy,
         threads: Int, progress: ((QuantizationProgress) -> Void)?) {
        self.directory = directory
        self.files = files
        self.format = format
        self.policy = policy
        self.threads = max(1, threads)
        self.progress = progress
    }

    struct Result {
        var weights: ModelWeights
        var file: WeightCacheFile
        var notices: [String]
    }

    var packedFormat: MatrixFormat { format == .q8 ? .q8 : .q4 }

    func run(_ weights: ModelWeights) throws -> Result {
        var plan: [WeightMatrix] = []
        var entries: [WeightCacheFile.Entry] = []
        _ = weights.mapQuantizable { m, name in
            var h = FNV1a()
            h.add(name)
            plan.append(m)
            entries.append(.init(nameHash: h.value, rows: m.rows, cols: m.cols, format: packedFormat, offset: 0,
                                 bytes: packedFormat.byteCount(rows: m.rows, cols: m.cols)))
            return m
        }
        let (dataOffset, size) = WeightCacheFile.layout(&entries)
        let fingerprint = try self.fingerprint()
        let places = cachePlaces(fingerprint: fingerprint)
        let pool = WorkerPool(threads: threads)
        var notices: [String] = []
        for place in places where FileManager.default.fileExists(atPath: place.path) {
            var problem = WeightCacheFile.problem(path: place.path, format: packedFormat, fingerprint: fingerprint,
                                                  entries: entries, dataOffset: dataOffset, size: size)
            if problem == nil {
                let (file, failure) = WeightCacheFile.read(path: place.path, size: size, pool: pool)
                if let file { return Result(weights: packed(weights, entries, file), file: file, notices: notices) }
                problem = failure
            }
            notices.append("weights cache \(place.path) is unusable (\(problem ?? "?")); quantising again")
            unlink(place.path)
        }

        let memory = try WeightMemory(size: size)
        // Progress counts the stored bytes quantised, then the cache bytes written (when caching).
        let total = plan.reduce(0) { $0 + $1.byteCount } + (places.isEmpty ? 0 : size)
        var done = 0
        progress?(QuantizationProgress(format: format, doneBytes: 0, totalBytes: total))
        for (m, e) in zip(plan, entries) {
            let dst = memory.base + e.offset
            let target = packedFormat
            pool.parallelRanges(m.groups, minChunk: 4) { begin, end in
                m.pack(target, groups: begin..<end, into: dst)
            }
            release(m)
            done += m.byteCount
            progress?(QuantizationProgress(format: format, doneBytes: done, totalBytes: total))
        }
        let header = WeightCacheFile.header(format: packedFormat, fingerprint: fingerprint, entries: entries,
                                            dataOffset: dataOffset, size: size)
        header.withUnsafeBytes { memory.base.copyMemory(from: $0.baseAddress!, byteCount: header.count) }
        let quantised = done
        let path = write(memory, places: places, notices: &notices) { written in
            progress?(QuantizationProgress(format: format, doneBytes: quantised + written, totalBytes: total))
        }
        if done < total { progress?(QuantizationProgress(format: format, doneBytes: total, totalBytes: total)) }
        let file = WeightCacheFile(path: path, reused: false, memory: memory)
        return Result(weights: packed(weights, entries, file), file: file, notices: notices)
    }

    /// `weights` with every planned matrix pointing at its packed copy in `file`.
    func packed(_ weights: ModelWeights, _ entries: [WeightCacheFile.Entry], _ file: WeightCacheFile) -> ModelWeights {
        var i = 0
        return weights.mapQuantizable { m, _ in
            defer { i += 1 }
            return WeightMatrix(packed: UnsafeRawPointer(file.base + entries[i].offset), format: entries[i].format,
                                rows: m.rows, cols: m.cols, source: m.dtype)
        }
    }

    /// Drops a quantised matrix's stored pages from this process (they are file-backed and
    /// clean: the kernel reads them again if anyone touches them).
    func release(_ m: WeightMatrix) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: m.base) + page - 1) / page * page
        let end = (Int(bitPattern: m.base) + m.byteCount) / page * page
        if end > start { madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }

    // MARK: - where

    struct Place {
        var directory: String
        var path: String
        /// Names of this model's older caches of the same format start with this.
        var prefix: String
    }

    /// Hash of config.json, each weight file's name, size and modification time, the cache
    /// format version and the quantised format.
    func fingerprint() throws -> UInt64 {
        var h = FNV1a()
        h.add("nekochat weights cache")
        h.add(UInt64(WeightCacheFile.version))
        h.add(format.rawValue)
        let config = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: config) else {
            throw ModelError.io(path: config, message: "cannot read the file")
        }
        h.add([UInt8](data))
        for f in files.sorted(by: { $0.path < $1.path }) {
            var st = stat()
            var seconds: Int64 = 0, nanoseconds: Int64 = 0
            guard stat(f.path, &st) == 0, nk_modification_time(f.path, &seconds, &nanoseconds) == 0 else {
                throw ModelError.io(path: f.path, message: "cannot stat: \(String(cString: strerror(errno)))")
            }
            h.add((f.path as NSString).lastPathComponent)
            h.add(UInt64(st.st_size))
            h.add(UInt64(bitPattern: seconds))
            h.add(UInt64(bitPattern: nanoseconds))
        }
        return h.value
    }

    func cachePlaces(fingerprint: UInt64) -> [Place] {
        let fp = String(fingerprint, radix: 16)
        let name = "\(format.rawValue)-\(String(repeating: "0", count: 16 - fp.count))\(fp).nkc"
        switch policy {
        case .disabled:
            return []
        case let .directory(dir):
            return [Place(directory: dir, path: dir + "/weights-" + name, prefix: "weights-\(format.rawValue)-")]
        case .automatic:
            let beside = directory + "/.nekochat"
            let env = ProcessInfo.processInfo.environment
            let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? (env["HOME"] ?? NSHomeDirectory()) + "/.cache"
            var h = FNV1a()
            h.add(URL(fileURLWithPath: directory).standardizedFileURL.path)
            let key = (directory as NSString).lastPathComponent + "-" + String(h.value & 0xffff_ffff, radix: 16)
            return [Place(directory: beside, path: beside + "/weights-" + name, prefix: "weights-\(format.rawValue)-"),
                    Place(directory: base + "/nekochat", path: base + "/nekochat/\(key)-" + name,
                          prefix: "\(key)-\(format.rawValue)-")]
        }
    }

    // MARK: - writing

    /// Writes the cache to a temporary file (space reserved first) in the first place that takes
    /// it, flushes it and renames it into place, removing this model's older caches there.
    /// Returns its path, or nil with a notice saying why none could be written.
    func write(_ memory: WeightMemory, places: [Place], notices: inout [String],
               written: (Int) -> Void) -> String? {
        var reasons: [String] = []
        for place in places {
            try? FileManager.default.createDirectory(atPath: place.directory, withIntermediateDirectories: true)
            let temporary = place.path + ".tmp-\(getpid())"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard fd >= 0 else {
                reasons.append("\(place.directory): \(String(cString: strerror(errno)))")
                continue
            }
            var failure: String?
            let err = nk_preallocate(fd, Int64(memory.size))
            if err != 0 { failure = String(cString: strerror(err)) }
            var at = 0
            while failure == nil && at < memory.size {
                let n = pwrite(fd, memory.base + at, min(64 << 20, memory.size - at), off_t(at))
                if n <= 0 { failure = String(cString: strerror(n < 0 ? errno : EIO)); break }
                at += n
                written(min(at, memory.size - 1))
            }
            if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
            close(fd)
            if failure == nil && rename(temporary, place.path) != 0 { failure = "rename: " + String(cString: strerror(errno)) }
            if let failure {
                unlink(temporary)
                reasons.append("\(temporary): \(failure)")
                continue
            }
            let mine = (place.path as NSString).lastPathComponent
            for other in (try? FileManager.default.contentsOfDirectory(atPath: place.directory)) ?? []
            where other.hasPrefix(place.prefix) && other.hasSuffix(".nkc") && other != mine {
                unlink(place.directory + "/" + other)
            }
            return place.path
        }
        if !places.isEmpty {
            notices.append("cannot write the \(format.rawValue) weights cache (\(reasons.joined(separator: "; "))); "
                + "the model runs from memory and is quantised again next time")
        }
        return nil
    }
}
