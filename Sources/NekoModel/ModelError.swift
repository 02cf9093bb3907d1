/// Everything that can go wrong loading or running a model, each naming what is at fault.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// A file could not be opened, read or mapped.
    case io(path: String, message: String)
    /// `config.json` (or `generation_config.json`) has a missing, malformed or inconsistent field.
    case config(file: String, field: String, message: String)
    /// A safetensors file is malformed as a whole (header, size, JSON).
    case safetensors(file: String, message: String)
    /// One tensor is wrong: dtype, shape, offsets, or it disagrees with the config.
    case tensor(file: String, tensor: String, message: String)
    /// A tensor the config requires is in no weight file.
    case missingTensor(directory: String, tensor: String, expectedShape: [Int])
    /// A tensor in the files that the config does not explain.
    case unexpectedTensor(file: String, tensor: String)
    /// Bad input to the forward pass (token ids, context length).
    case input(String)

    public var description: String {
        switch self {
        case let .io(path, message):
            "\(path): \(message)"
        case let .config(file, field, message):
            "\(file): field '\(field)': \(message)"
        case let .safetensors(file, message):
            "\(file): \(message)"
        case let .tensor(file, tensor, message):
            "\(file): tensor '\(tensor)': \(message)"
        case let .missingTensor(directory, tensor, shape):
            "\(directory): missing tensor '\(tensor)' (expected shape \(shape)) in the weight files"
        case let .unexpectedTensor(file, tensor):
            "\(file): unexpected tensor '\(tensor)' (not part of the model config.json describes)"
        case let .input(message):
            message
        }
    }
}
