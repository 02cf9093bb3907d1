import Foundation
import NekoKernels

/// Finds and opens the safetensors files of a model directory:
/// `model.safetensors`, or the shards named by `model.safetensors.index.json`.
enum WeightFiles {
    static func open(directory: String) throws -> [SafetensorsFile] {
        let fm = FileManager.default
        let indexPath = directory + "/model.safetensors.index.json"
        if fm.fileExists(atPath: indexPath) {
            return try openSharded(directory: directory, indexPath: indexPath)
        }
        let single = directory + "/model.safetensors"
        if fm.fileExists(atPath: single) { return [try SafetensorsFile(path: single)] }
        var isDirectory: ObjCBool = false
        if !fm.fileExists(atPath: directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw ModelError.io(path: directory, message: "no such model directory")
        }
        throw ModelError.io(path: directory,
                            message: "no model.safetensors or model.safetensors.index.json in the model directory")
    }

    static func openSharded(directory: String, indexPath: String) throws -> [SafetensorsFile] {
        guard let data = FileManager.default.contents(atPath: indexPath) else {
            throw ModelError.io(path: indexPath, message: "cannot read the file")
        }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError.config(file: indexPath, field: "(file)", message: "not a JSON object")
        }
        guard let map = json["weight_map"] as? [String: String] else {
            throw ModelError.config(file: indexPath, field: "weight_map",
                                    message: "required: an object of tensor name → shard file")
        }
        var files: [String: SafetensorsFile] = [:]
        for shard in Set(map.values).sorted() {
            guard !shard.contains("/"), !shard.hasPrefix(".") else {
                throw ModelError.config(file: indexPath, field: "weight_map",
                                        message: "shard '\(shard)' is not a file name in the model directory")
            }
            files[shard] = try SafetensorsFile(path: directory + "/" + shard)
        }
        for (tensor, shard) in map.sorted(by: { $0.key < $1.key }) where files[shard]?.tensors[tensor] == nil {
            throw ModelError.tensor(file: directory + "/" + shard, tensor: tensor,
                                    message: "model.safetensors.index.json places it in this shard, but it is not there")
        }
        return files.keys.sorted().map { files[$0]! }
    }
}

extension TensorStore {
    /// The dtype holding most of the bytes.
    var dominantDtype: DType {
        var bytes: [DType: Int] = [:]
        for t in tensors.values { bytes[t.dtype, default: 0] += t.elementCount * t.dtype.size }
        return bytes.max { $0.value < $1.value }?.key ?? .bf16
    }
}
