import Foundation
import NekoChat

/// Unbuffered writes to stdout and stderr (C's `stdout` global is off limits in Swift 6 mode).
enum Output {
    /// A closed pipe (`nekochat generate | head`) ends the program quietly, as other tools do.
    static func out(_ text: String) {
        do { try FileHandle.standardOutput.write(contentsOf: Data(text.utf8)) } catch { exit(0) }
    }

    static func err(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }

    /// One JSON document on stdout; a non-finite number is an error naming it, never `NaN`.
    static func json(_ value: JSON) throws {
        if let key = value.nonFinitePath() { throw CLIError("the JSON output would contain a non-finite number (\(key))") }
        out(value.serialized + "\n")
    }

    /// Peak resident memory of this process (VmHWM), in bytes; 0 where /proc is missing.
    static func peakRSS() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}

/// An error of the command line itself (exit 1, one `error:` line).
struct CLIError: UserFacingError {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A rate with one decimal.
func format(_ value: Double) -> String { String(format: "%.1f", value) }
