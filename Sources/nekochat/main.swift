import ArgumentParser
import Foundation
import NekoChat
import NekoModel
import NekoTUI

struct Nekochat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nekochat",
        abstract: "Run NekoMind MoE models locally and watch them think.",
        version: "0.1.0",
        subcommands: [Chat.self, Generate.self, Score.self, Tokenize.self, TemplateCommand.self, Info.self, Bench.self,
                      RoutingCommand.self, Serve.self, Pull.self, Models.self, Install.self],
        defaultSubcommand: Chat.self)
}

/// Runs the command line: one `error:` line and exit 1 for failures, exit 2 for bad usage
/// (swift-argument-parser would print a usage block and exit 64).
enum Entry {
    static func main() -> Never {
        do {
            var command = try Nekochat.parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
            try command.run()
            exit(0)
        } catch let error as UserFacingError {
            fail(error.description, code: error.exitCode)
        } catch let error as ExitCode {
            exit(error.rawValue)
        } catch let error as NSError where [NSCocoaErrorDomain, NSPOSIXErrorDomain].contains(error.domain) {
            fail(userMessage(error), code: 1)
        } catch {
            let code = Nekochat.exitCode(for: error)
            if code == .success {
                Output.out(Nekochat.fullMessage(for: error) + "\n")
                exit(0)
            }
            let message = Nekochat.message(for: error)
            let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
            let text = firstLine.hasPrefix("Error: ") ? String(firstLine.dropFirst(7)) : firstLine
            fail(text, code: code == .validationFailure ? 2 : code.rawValue == 64 ? 2 : 1)
        }
    }

    /// `--max-tokens -5` as `--max-tokens=-5`: swift-argument-parser takes a value that starts with
    /// "-" for a flag and says "Missing value", where the flag's own range check says what is wrong.
    static func joiningNegativeValues(_ arguments: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--" { out += arguments[i...]; break }
            if a.hasPrefix("--"), !a.contains("="), i + 1 < arguments.count,
               arguments[i + 1].range(of: #"^-(\d|\.\d)"#, options: .regularExpression) != nil {
                out.append(a + "=" + arguments[i + 1])
                i += 2
                continue
            }
            out.append(a)
            i += 1
        }
        return out
    }

    static func fail(_ message: String, code: Int32) -> Never {
        // Sources/nekochat/README.md: one line, whatever the message holds (a template's raise_exception text, say).
        Output.err("error: \(message.replacingOccurrences(of: "\n", with: " "))\n")
        exit(code)
    }
}

Entry.main()
