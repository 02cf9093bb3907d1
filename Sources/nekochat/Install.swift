import ArgumentParser
import Foundation
import NekoChat
import NekoTUI

/// `nekochat install [--prefix DIR]`: puts this program where a shell finds it, with what it
/// needs beside it — PREFIX/bin/nekochat, PREFIX/share/nekochat/DemoModel and
/// PREFIX/share/nekochat/themes — so it runs without the source tree or the build folder.
struct Install: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Install nekochat, its demo model and themes under a prefix (default ~/.local).")

    @Option(help: "Where to install: PREFIX/bin and PREFIX/share/nekochat (default: ~/.local).") var prefix: String?

    func run() throws {
        let fm = FileManager.default
        let root = resolvePath(prefix ?? (NSHomeDirectory() + "/.local"))
        let bin = root + "/bin", share = root + "/share/nekochat"
        guard let executable = Platform.executablePath() else {
            throw CLIError("cannot find this program's own file")
        }
        let demo = try ModelLocation.builtInDemoModel()
        guard let themes = Theme.directories().first(where: { fm.fileExists(atPath: $0 + "/dark.json") }) else {
            throw CLIError("the theme files were not found (looked in \(Theme.directories().joined(separator: ", ")))")
        }
        try Self.replace(share + "/DemoModel", with: demo)
        try Self.replace(share + "/themes", with: themes)
        // The binary last: a failure above leaves no program that cannot find its model.
        try Self.replace(bin + "/nekochat", with: executable)
        Output.out("""
            installed \(bin)/nekochat
                      \(share)/DemoModel (the built-in demo model)
                      \(share)/themes

            """)
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if !path.contains(bin) {
            Output.out("\(bin) is not on your PATH; add it (e.g. to ~/.profile):\n  export PATH=\"\(bin):$PATH\"\n")
        } else {
            Output.out("run it with: nekochat\n")
        }
    }

    /// Copies `source` (a file or a folder) to `target` through a temporary copy beside it and one
    /// rename, so a running program or a half-finished copy is never left in its place.
    static func replace(_ target: String, with source: String) throws {
        let fm = FileManager.default
        let parent = (target as NSString).deletingLastPathComponent
        let temp = parent + "/.\((target as NSString).lastPathComponent).installing-\(getpid())"
        do {
            try fm.createDirectory(atPath: parent, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: temp)
            try fm.copyItem(atPath: source, toPath: temp)
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue {
                // rename(2) cannot replace a non-empty folder: move the old one aside first.
                let old = temp + "-old"
                try? fm.removeItem(atPath: old)
                try fm.moveItem(atPath: target, toPath: old)
                try fm.moveItem(atPath: temp, toPath: target)
                try? fm.removeItem(atPath: old)
            } else {
                guard rename(temp, target) == 0 else { throw CLIError("\(target): \(String(cString: strerror(errno)))") }
            }
        } catch let error as CLIError {
            try? fm.removeItem(atPath: temp)
            throw error
        } catch {
            try? fm.removeItem(atPath: temp)
            throw CLIError(userMessage(error, path: target))
        }
    }
}
