import Foundation
import NekoChat
import NekoHub
import NekoModel

/// Where a command's model comes from: `--model`, else `$NEKOCHAT_MODEL`, else the built-in
/// demo model shipped as a resource of this executable. A value `ORG/NAME[@REVISION]` names a
/// model on the Hugging Face Hub (unless a local folder of that name exists): it is found in the
/// Hugging Face cache, or downloaded into it (Sources/NekoHub/README.md).
struct ModelLocation {
    let directory: String
    /// "--model", "NEKOCHAT_MODEL" or "built-in demo model".
    let source: String
    /// The model shipped inside nekochat.
    var isBuiltInDemo = false
    /// The Hub snapshot the folder is, when the model was named by its Hub id.
    var hub: HubSnapshot?

    static let resourceBundleName = "nekochat_nekochat.resources"

    static func resolve(_ flag: String?) throws -> ModelLocation {
        if let flag, !flag.isEmpty { return try locate(flag, source: "--model") }
        if let env = ProcessInfo.processInfo.environment["NEKOCHAT_MODEL"], !env.isEmpty {
            return try locate(env, source: "NEKOCHAT_MODEL")
        }
        return ModelLocation(directory: try builtInDemoModel(), source: "built-in demo model", isBuiltInDemo: true)
    }

    /// A path, or a Hub id: a value that starts with `/`, `.` or `~`, or has not exactly one `/`,
    /// is a path; `ORG/NAME[@REV]` is a Hub id unless a folder of that name exists here.
    static func locate(_ value: String, source: String) throws -> ModelLocation {
        if let id = HubModelID.parse(value), !FileManager.default.fileExists(atPath: value) {
            let snapshot = try fetch(id)
            return ModelLocation(directory: snapshot.path, source: source, hub: snapshot)
        }
        let path = value == "~" || value.hasPrefix("~/") ? NSHomeDirectory() + value.dropFirst() : value
        return ModelLocation(directory: path, source: source)
    }

    /// The Hub model's snapshot, with the download's progress on stderr.
    static func fetch(_ id: HubModelID, quiet: Bool = false) throws -> HubSnapshot {
        let printer = DownloadPrinter(model: id.description, quiet: quiet)
        do {
            let snapshot = try HubModels.snapshot(id, progress: { printer.show($0) }, waiting: { printer.say($0) })
            printer.finish()
            if let notice = snapshot.notice { Output.err("note: \(notice)\n") }
            return snapshot
        } catch let error as HubError {
            printer.finish()
            throw CLIError(error.description)
        }
    }

    /// The model's name for people: its Hub id, else its folder's name.
    var displayName: String {
        if isBuiltInDemo { return "NekoMind demo" }
        return hub.map { $0.model.repo } ?? URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
    }

    /// Where this model's q8/q4 weights are cached: nekochat's own cache for a Hub model (never
    /// inside the Hugging Face cache), beside a local folder otherwise.
    var weightCache: WeightCachePolicy {
        guard let hub else { return .automatic }
        return .directory(HubEnvironment.from().nekochatCache + "/hub/" + hub.model.folderName)
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

/// A download's progress on stderr: one line redrawn in place on a terminal (this file, all
/// files, rate, time left); a plain line per file otherwise.
final class DownloadPrinter: @unchecked Sendable {
    let model: String
    let quiet: Bool
    let terminal = isatty(2) != 0
    private let lock = NSLock()
    private var drawn = false
    private var last = Date.distantPast

    init(model: String, quiet: Bool) {
        self.model = model
        self.quiet = quiet
    }

    static func bytes(_ n: Int64) -> String {
        let d = Double(n)
        return d >= 1e9 ? String(format: "%.2f GB", d / 1e9) : d >= 1e6 ? String(format: "%.1f MB", d / 1e6) : String(format: "%.0f kB", d / 1e3)
    }

    static func duration(_ s: Double) -> String {
        s >= 3600 ? String(format: "%d h %02d m", Int(s) / 3600, Int(s) % 3600 / 60)
            : s >= 60 ? String(format: "%d m %02d s", Int(s) / 60, Int(s) % 60) : String(format: "%d s", Int(s.rounded()))
    }

    func show(_ p: HubProgress) {
        guard !quiet else { return }
        lock.withLock {
            let rate = Self.bytes(Int64(p.bytesPerSecond)) + "/s"
            if p.fileFinished {
                if terminal {
                    Output.err("\r\u{1B}[K")
                }
                Output.err("downloaded \(model)/\(p.file) (\(Self.bytes(p.fileSize))) · \(Self.bytes(p.doneBytes)) of \(Self.bytes(p.totalBytes)) · \(rate)\n")
                drawn = false
                return
            }
            guard terminal, Date().timeIntervalSince(last) > 0.2 else { return }
            last = Date()
            let filePart = p.fileSize > 0 ? Int(Double(p.fileBytes) / Double(p.fileSize) * 100) : 100
            let allPart = p.totalBytes > 0 ? Int(Double(p.doneBytes) / Double(p.totalBytes) * 100) : 100
            let left = p.secondsLeft.map { " · " + Self.duration($0) + " left" } ?? ""
            Output.err("\r\u{1B}[Kdownloading \(model): \(p.file) \(filePart)% (\(Self.bytes(p.fileBytes)) of \(Self.bytes(p.fileSize))) · all \(allPart)% · \(rate)\(left)")
            drawn = true
        }
    }

    func say(_ text: String) {
        guard !quiet else { return }
        lock.withLock {
            if drawn { Output.err("\n"); drawn = false }
            Output.err(text + "\n")
        }
    }

    func finish() {
        lock.withLock {
            if drawn { Output.err("\n"); drawn = false }
        }
    }
}
