import Foundation
@testable import NekoModel
import Testing

/// Corrupt copies of a fixture: every one must be a clear error naming the file and the
/// tensor or field, never a crash.
@Suite struct BadInputTests {
    let fixture = "neko_mini_bf16"

    func loadError(_ dir: String) -> ModelError? {
        do {
            _ = try LanguageModel.load(directory: dir)
            return nil
        } catch let error as ModelError {
            return error
        } catch {
            Issue.record("not a ModelError: \(error)")
            return nil
        }
    }

    /// Rewrites model.safetensors of a fresh copy with `edit`, then loads it.
    func corrupt(_ edit: (inout SafetensorsWriter, String) throws -> Void) throws -> (ModelError?, String) {
        let dir = try Fixtures.copy(fixture)
        let file = dir + "/model.safetensors"
        var writer = try SafetensorsWriter(reading: file)
        try edit(&writer, file)
        return (loadError(dir), file)
    }

    @Test func truncatedFile() throws {
        let (error, file) = try corrupt { w, path in
            try w.write(to: path)
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        }
        guard case let .tensor(f, tensor, message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(f == file && !tensor.isEmpty && message.contains("outside"))
    }

    @Test func headerLengthPastTheEnd() throws {
        let (error, file) = try corrupt { w, path in try w.write(to: path, headerLength: 1 << 40) }
        #expect(error == .safetensors(file: file,
            message: "header length 1099511627776 runs past the end of the \(try fileSize(file))-byte file (truncated?)"))
    }

    @Test func tinyFile() throws {
        let (error, file) = try corrupt { _, path in try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path)) }
        #expect(error == .safetensors(file: file, message: "file is 3 bytes, too short for a safetensors header"))
    }

    @Test func headerNotJSON() throws {
        let (error, file) = try corrupt { w, path in try w.write(to: path, header: "{not json") }
        #expect(error == .safetensors(file: file, message: "header is not a JSON object"))
    }

    @Test func shapeThatLiesAboutTheBytes() throws {
        let name = "model.norm.weight"
        let (error, file) = try corrupt { w, path in
            let i = w.entries.firstIndex { $0.name == name }!
            w.entries[i].shape = [w.entries[i].shape[0] * 2]
            try w.write(to: path)
        }
        guard case let .tensor(f, tensor, message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(f == file && tensor == name && message.contains("data_offsets give"))
    }

    @Test func offsetsOutsideTheFile() throws {
        let name = "model.norm.weight"
        let (error, file) = try corrupt { w, path in
            try w.write(to: path, header: w.header(override: [
                name: "{\"dtype\":\"BF16\",\"shape\":[48],\"data_offsets\":[99999996,100000092]}",
            ]))
        }
        guard case let .tensor(f, tensor, message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(f == file && tensor == name && message.contains("outside"))
    }

    @Test func overlappingTensors() throws {
        let (error, _) = try corrupt { w, path in
            try w.write(to: path, header: w.header(override: [
                "model.norm.weight": "{\"dtype\":\"BF16\",\"shape\":[48],\"data_offsets\":[0,96]}",
            ]))
        }
        guard case let .tensor(_, _, message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(message.contains("overlaps"))
    }

    @Test(arguments: [("Q4_K", "unknown dtype 'Q4_K'"),
                      ("F64", "dtype F64 is not supported (nekochat reads BF16, F16 and F32)")])
    func unsupportedDtypes(dtype: String, message: String) throws {
        let name = "model.norm.weight"
        let (error, file) = try corrupt { w, path in
            let i = w.entries.firstIndex { $0.name == name }!
            w.entries[i].dtype = dtype
            try w.write(to: path)
        }
        #expect(error == .tensor(file: file, tensor: name, message: message))
    }

    @Test func missingTensor() throws {
        let name = "model.layers.1.self_attn.k_proj.weight"
        let (error, dir) = try corrupt { w, path in
            w.entries.removeAll { $0.name == name }
            try w.write(to: path)
        }
        #expect(error == .missingTensor(directory: URL(fileURLWithPath: dir).deletingLastPathComponent().path,
                                        tensor: name, expectedShape: [32, 48]))
    }

    @Test func unexpectedTensor() throws {
        let (error, file) = try corrupt { w, path in
            w.entries.append(.init(name: "model.layers.0.mlp.extra.weight", dtype: "BF16", shape: [2], bytes: [0, 0, 0, 0]))
            try w.write(to: path)
        }
        #expect(error == .unexpectedTensor(file: file, tensor: "model.layers.0.mlp.extra.weight"))
    }

    @Test func wrongShape() throws {
        let name = "model.layers.0.mlp.up_proj.weight"
        let (error, file) = try corrupt { w, path in
            let i = w.entries.firstIndex { $0.name == name }!
            w.entries[i].shape = w.entries[i].shape.reversed()
            try w.write(to: path)
        }
        #expect(error == .tensor(file: file, tensor: name, message: "has shape [48, 96], expected [96, 48]"))
    }

    @Test func configThatDisagreesWithTheTensors() throws {
        let dir = try Fixtures.copy(fixture)
        let configPath = dir + "/config.json"
        var config = try String(contentsOfFile: configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "\"first_k_dense_replace\": 2", with: "\"first_k_dense_replace\": 3")
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        guard case let .tensor(_, tensor, message)? = loadError(dir) else { Issue.record("no error"); return }
        #expect(tensor == "model.layers.2.mlp.gate.weight")
        #expect(message.contains("layer 2"))
    }

    @Test func missingDirectoryAndFiles() throws {
        #expect(loadError("/nonexistent/model") == .io(path: "/nonexistent/model", message: "no such folder (a model is a folder with config.json and *.safetensors)"))
        let dir = try Fixtures.copy(fixture)
        try FileManager.default.removeItem(atPath: dir + "/model.safetensors")
        #expect(loadError(dir) == .io(path: dir,
            message: "no model.safetensors or model.safetensors.index.json in the model directory"))
    }

    @Test func shardIndexThatLies() throws {
        let sharded = Fixtures.engineModels.first { FileManager.default.fileExists(atPath: Fixtures.path($0) + "/model.safetensors.index.json") }!
        let dir = try Fixtures.copy(sharded)
        let indexPath = dir + "/model.safetensors.index.json"
        var index = try String(contentsOfFile: indexPath, encoding: .utf8)
        index = index.replacingOccurrences(of: "\"model.norm.weight\": \"model-00001", with: "\"model.norm.weight\": \"model-00002")
            .replacingOccurrences(of: "\"model.norm.weight\": \"model-00003", with: "\"model.norm.weight\": \"model-00002")
            .replacingOccurrences(of: "\"model.norm.weight\": \"model-00002-of-00003.safetensors\"",
                                  with: "\"model.norm.weight\": \"model-00001-of-00003.safetensors\"")
        try index.write(toFile: indexPath, atomically: true, encoding: .utf8)
        let error = loadError(dir)
        guard case let .tensor(_, tensor, message)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(tensor == "model.norm.weight" && message.contains("index"))
    }

    @Test func idsOutsideTheVocabulary() throws {
        let model = try LanguageModel.load(directory: Fixtures.path(fixture))
        #expect(throws: ModelError.input("token id 128 at position 1 is outside the vocabulary (vocab_size 128)")) {
            try model.forward([1, 128], cache: try model.makeCache(capacity: 8), context: ForwardContext(threads: 1))
        }
        #expect(throws: ModelError.input("context window full: 0 cached + 3 new tokens > context size 2")) {
            try model.forward([1, 2, 3], cache: try model.makeCache(capacity: 2), context: ForwardContext(threads: 1))
        }
    }
}

func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
}
