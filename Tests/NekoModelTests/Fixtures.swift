import Foundation
@testable import NekoModel

/// Tests/Fixtures, found from this file's path (CI runs on a clean clone with sources present).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let engine = root.appendingPathComponent("engine")

    /// Every engine fixture directory that has an expected.json.
    static let engineModels: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: engine.path)) ?? []
        return names.filter {
            FileManager.default.fileExists(atPath: engine.appendingPathComponent("\($0)/expected.json").path)
        }.sorted()
    }()

    static func path(_ name: String) -> String { engine.appendingPathComponent(name).path }

    static func expected(_ name: String) throws -> Expected {
        let data = try Data(contentsOf: engine.appendingPathComponent("\(name)/expected.json"))
        return try JSONDecoder().decode(Expected.self, from: data)
    }

    /// A fresh temporary copy of fixture `name`, to corrupt.
    static func copy(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("nekochat-test-\(UUID().uuidString)")
        try FileManager.default.copyItem(atPath: path(name), toPath: dir.path)
        return dir.path
    }
}

/// expected.json, written by Tests/Reference/make_fixtures.py and hf_crosscheck.py.
struct Expected: Decodable {
    struct Route: Decodable {
        var layer: Int
        var experts: [Int]
        var weights: [Double]
    }
    var name: String
    var promptIds: [Int]
    var logits: [[Double]]
    var nll: [Double]
    var greedyIds: [Int]
    var routing: [[Route]]
    var moeLayers: [Int]
    var tiedRouterLayers: [Int]

    enum CodingKeys: String, CodingKey {
        case name, logits, nll, routing
        case promptIds = "prompt_ids", greedyIds = "greedy_ids", moeLayers = "moe_layers"
        case tiedRouterLayers = "tied_router_layers"
    }
}

/// Writes safetensors files for tests, from tensors given as raw bytes.
struct SafetensorsWriter {
    struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        var bytes: [UInt8]
    }
    var entries: [Entry] = []

    /// All tensors of an existing file, in file order.
    init(reading path: String) throws {
        let file = try SafetensorsFile(path: path)
        for name in file.names {
            let t = file.tensors[name]!
            let count = t.elementCount * t.dtype.size
            entries.append(Entry(name: name, dtype: t.dtype.rawValue, shape: t.shape,
                                 bytes: [UInt8](UnsafeRawBufferPointer(start: t.data, count: count))))
        }
    }

    /// The header JSON with `override` replacing the computed entry of some tensors.
    func header(override: [String: String] = [:]) -> String {
        var offset = 0
        var parts: [String] = []
        for e in entries {
            let entry = override[e.name]
                ?? "{\"dtype\":\"\(e.dtype)\",\"shape\":\(e.shape),\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}"
            parts.append("\"\(e.name)\":\(entry)")
            offset += e.bytes.count
        }
        return "{\"__metadata__\":{\"format\":\"pt\"}," + parts.joined(separator: ",") + "}"
    }

    func write(to path: String, header: String? = nil, headerLength: UInt64? = nil) throws {
        let json = Array((header ?? self.header()).utf8)
        var data = Data()
        var length = (headerLength ?? UInt64(json.count)).littleEndian
        data.append(Data(bytes: &length, count: 8))
        data.append(contentsOf: json)
        for e in entries { data.append(contentsOf: e.bytes) }
        try data.write(to: URL(fileURLWithPath: path))
    }
}
