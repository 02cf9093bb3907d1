/// The weights a model runs with: as stored, or quantised at load (and cached).
public enum WeightFormat: String, Sendable, CaseIterable {
    /// As stored in the files (BF16, or F16/F32 for checkpoints saved that way).
    case bf16
    /// int8 in blocks of 32 with a scale (as llama.cpp's Q8_0).
    case q8
    /// 4-bit in blocks of 32 with a scale and a minimum (as llama.cpp's Q4_1).
    case q4
}

/// Where quantised weights are cached between runs.
public enum WeightCachePolicy: Sendable, Equatable {
    /// Beside the model (`DIR/.nekochat/`) when that is writable, else under
    /// `$XDG_CACHE_HOME/nekochat/` (default `~/.cache/nekochat/`).
    case automatic
    /// In this directory only.
    case directory(String)
    /// Never read or written: quantised in memory at every load.
    case disabled
}

/// How far the first quantisation of a model has got: bytes of stored weights quantised, then
/// bytes of the cache file written.
public struct QuantizationProgress: Sendable {
    public let format: WeightFormat
    public let doneBytes: Int
    public let totalBytes: Int
    public var fraction: Double { totalBytes > 0 ? Double(doneBytes) / Double(totalBytes) : 1 }
}
