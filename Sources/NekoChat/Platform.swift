import CNekoPlatform
import Foundation

/// The platform calls the front ends need, through the one C shim (Sources/CNekoPlatform).
public enum Platform {
    /// The full path of the running executable (symlinks resolved), if it can be found.
    public static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = nk_executable_path(&buffer, buffer.count)
        guard n > 0 else { return nil }
        let bytes = buffer.prefix(n).map { UInt8(bitPattern: $0) }
        return URL(fileURLWithPath: String(decoding: bytes, as: UTF8.self)).resolvingSymlinksInPath().path
    }

    /// Runs `arguments` as the terminal's foreground job (an editor) and waits: its exit status,
    /// 128 + a signal, or nil when it could not be started.
    public static func runInForeground(_ arguments: [String]) -> Int32? {
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let status = nk_run_foreground(&argv)
        return status < 0 ? nil : status
    }

    /// Stops this process as Ctrl-Z stops a shell job; returns when it is continued.
    public static func suspend() { nk_suspend_self() }
}
