import Foundation
import NekoKernels
#if canImport(Glibc)
import Glibc
#endif

/// One tensor inside a memory-mapped safetensors file. `data` points into the mapping.
public struct TensorInfo: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    /// Path of the file the tensor lives in (for error messages).
    public let file: String

    public var elementCount: Int { shape.reduce(1, *) }
}

/// A `.safetensors` file mapped read-only; tensors are used in place, never copied.
///
/// Layout: 8-byte little-endian header length N, N bytes of JSON
/// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
/// then the data; offsets are relative to the end of the header.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let tensors: [String: TensorInfo]
    /// Tensor names in file order (by data offset).
    public let names: [String]
    public let byteCount: Int
    private let mapping: UnsafeMutableRawPointer?

    /// Dtypes the safetensors format defines that nekochat does not compute with.
    static let otherDtypes: Set<String> = ["F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
                                           "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2",
                                           "F4", "C64"]
    static let maxHeaderBytes = 100 << 20

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ModelError.io(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelError.io(path: path, message: "cannot stat: \(String(cString: strerror(errno)))")
        }
        let size = Int(st.st_size)
        byteCount = size
        guard size >= 8 else {
            throw ModelError.safetensors(file: path, message: "file is \(size) bytes, too short for a safetensors header")
        }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw ModelError.io(path: path, message: "cannot mmap: \(String(cString: strerror(errno)))")
        }
        mapping = map
        do {
            (tensors, names) = try Self.parse(base: UnsafeRawPointer(map), size: size, path: path)
        } catch {
            munmap(map, size)
            throw error
        }
    }

    deinit {
        if let mapping { munmap(mapping, byteCount) }
    }

    /// The start of the mapping (nil for an empty file).
    var base: UnsafeRawPointer? { mapping.map { UnsafeRawPointer($0) } }

    /// Whether `pointer` lies inside this file's mapping (weights are used in place, not copied).
    func contains(_ pointer: UnsafeRawPointer) -> Bool {
        guard let mapping else { return false }
        return pointer >= UnsafeRawPointer(mapping) && pointer < UnsafeRawPointer(mapping) + byteCount
    }

    static func parse(base: UnsafeRawPointer, size: Int, path: String) throws
        -> ([String: TensorInfo], [String]) {
        func bad(_ message: String) -> ModelError { .safetensors(file: path, message: message) }
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(size - 8) else {
            throw bad("header length \(headerLength) runs past the end of the \(size)-byte file (truncated?)")
        }
        guard headerLength <= UInt64(maxHeaderBytes) else {
            throw bad("header length \(headerLength) is larger than \(maxHeaderBytes) bytes")
        }
        let dataStart = 8 + Int(headerLength)
        let dataSize = size - dataStart
        let headerData = Data(bytes: base + 8, count: Int(headerLength))
        let header: KeyedDecodingContainer<AnyKey>
        do {
            header = try JSONDecoder().decode(HeaderBox.self, from: headerData).container
        } catch {
            throw bad("header is not a JSON object")
        }
        var tensors: [String: TensorInfo] = [:]
        var ranges: [(begin: Int, end: Int, name: String)] = []
        for key in header.allKeys where key.stringValue != "__metadata__" {
            let name = key.stringValue
            func badTensor(_ message: String) -> ModelError { .tensor(file: path, tensor: name, message: message) }
            let entry: HeaderEntry
            do {
                entry = try header.decode(HeaderEntry.self, forKey: key)
            } catch let error as DecodingError {
                throw badTensor("header entry: field '\(ModelConfig.fieldName(of: error))' is missing or malformed")
            }
            guard let dtype = DType(rawValue: entry.dtype) else {
                if otherDtypes.contains(entry.dtype) {
                    throw badTensor("dtype \(entry.dtype) is not supported (nekochat reads BF16, F16 and F32)")
                }
                throw badTensor("unknown dtype '\(entry.dtype)'")
            }
            let shape = entry.shape, dtypeName = entry.dtype
            guard shape.allSatisfy({ $0 >= 0 }) else { throw badTensor("shape \(shape) has a negative dimension") }
            guard entry.dataOffsets.count == 2 else { throw badTensor("data_offsets is not a pair of integers") }
            let (begin, end) = (entry.dataOffsets[0], entry.dataOffsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw badTensor("data_offsets [\(begin), \(end)] lie outside the \(dataSize) bytes of data")
            }
            var count = 1
            for d in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw badTensor("shape \(shape) overflows") }
                count = product
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow else { throw badTensor("shape \(shape) overflows") }
            guard bytes == end - begin else {
                throw badTensor("shape \(shape) of \(dtypeName) needs \(bytes) bytes, but data_offsets give \(end - begin)")
            }
            tensors[name] = TensorInfo(name: name, dtype: dtype, shape: shape,
                                       data: base + dataStart + begin, file: path)
            ranges.append((begin, end, name))
        }
        ranges.sort { ($0.begin, $0.end) < ($1.begin, $1.end) }
        for (a, b) in zip(ranges, ranges.dropFirst()) where b.begin < a.end {
            throw ModelError.tensor(file: path, tensor: b.name,
                                    message: "data overlaps tensor '\(a.name)'")
        }
        return (tensors, ranges.map(\.name))
    }
}

/// One header entry; JSONDecoder rejects non-integers and booleans where integers belong.
struct HeaderEntry: Decodable {
    var dtype: String
    var shape: [Int]
    var dataOffsets: [Int]
    enum CodingKeys: String, CodingKey { case dtype, shape, dataOffsets = "data_offsets" }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The header object, kept as a container so each entry decodes (and fails) on its own.
struct HeaderBox: Decodable {
    let container: KeyedDecodingContainer<AnyKey>
    init(from decoder: Decoder) throws { container = try decoder.container(keyedBy: AnyKey.self) }
}
