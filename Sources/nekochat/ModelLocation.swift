import Foundation
import NekoChat

/// Where a command's model comes from: `--model`, else `$NEKOCHAT_MODEL`, else the built-in
/// demo model shipped as a resource of this executable.
struct ModelLocation {
    let directory: String
    /// "--model", "NEKOCHAT_MODEL" or "built-in demo model".
    let source: String
    /// The model shipped inside nekochat.
    var isBuiltInDemo = false

    static let resourceBundleName = "nekochat_nekochat.resources"

    static func resolve(_ flag: String?) throws -> ModelLocation {
        if let flag, !flag.isEmpty { return ModelLocation(directory: flag, source: "--model") }
        if let env = ProcessInfo.processInfo.environment["NEKOCHAT_MODEL"], !env.isEmpty {
            return ModelLocation(directory: env, source: "NEKOCHAT_MODEL")
        }
        return ModelLocation(directory: try builtInDemoModel(), source: "built-in demo model", isBuiltInDemo: true)
    }

    /// The demo model's directory. `Bundle.module` would call `fatalError` once the executable
    /// has moved away from its build folder, so the resource bundle is looked for by hand:
    /// beside the executable (also through a symlink), where `nekochat install` puts it, then in
    /// the source tree.
    static func builtInDemoModel() throws -> String {
        var candidates: [URL] = []
        let executable = URL(fileURLWithPath: Platform.executablePath()
            ?? CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent("\(resourceBundleName)/DemoModel"))
        // `nekochat install`: PREFIX/bin/nekochat and PREFIX/share/nekochat/DemoModel.
        candidates.append(executable.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/nekochat/DemoModel"))
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("\(resourceBundleName)/DemoModel"))
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/DemoModel"))
        for url in candidates where FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) {
            return url.standardizedFileURL.path
        }
        throw CLIError("the built-in demo model was not found (looked in \(candidates.map(\.path).joined(separator: ", "))); "
            + "pass --model DIR or set NEKOCHAT_MODEL")
    }
}
