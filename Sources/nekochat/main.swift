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
                      RoutingCommand.self, Serve.self],
        defaultSubcommand: Chat.self)
}

/// Runs the command line: one `error:` line and exit 1 for failures, exit 2 for bad usage
/// (swift-argument-parser would print a usage block and exit 64).
enum Entry {
    static func main() -> Never {
        do {
            var command = try Nekochat.parseAsRoot()
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

    static func fail(_ message: String, code: Int32) -> Never {
        // CLI.md: one line, whatever the message holds (a template's raise_exception text, say).
        Output.err("error: \(message.replacingOccurrences(of: "\n", with: " "))\n")
        exit(code)
    }
}

Entry.main()
