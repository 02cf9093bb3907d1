import ArgumentParser
import Foundation
import NekoChat
import NekoJSON
import NekoTokenizer

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode lines from stdin: plain text (ids per line), or JSON strings with --jsonl ({\"ids\", \"decoded\"} per line).")

    @Option(help: "A tokenizer.json, or a directory with one (default: the model's).") var tokenizer: String?
    @Option(help: "A model directory whose tokenizer to use (default: $NEKOCHAT_MODEL).") var model: String?
    @Flag(name: .customLong("no-special"), help: "Do not add the post-processor's special tokens.") var noSpecial = false
    @Flag(help: "Read JSON-string lines and write {\"ids\", \"decoded\"} lines (else: plain text lines in, ids out).") var jsonl = false
    @Option(help: "Instead: time encoding FILE line by line on one thread and print MB/s as JSON.") var bench: String?

    func run() throws {
        let source = try tokenizer ?? ModelLocation.resolve(model).directory
        let tok = try Tokenizer.load(source)
        if let bench { return try runBench(tok, file: bench) }
        var lineNumber = 0
        while let line = readLine(strippingNewline: true) {
            lineNumber += 1
            guard jsonl else {
                Output.out(tok.encode(line, addSpecialTokens: !noSpecial).map(String.init).joined(separator: " ") + "\n")
                continue
            }
            if line.isEmpty { continue }
            guard case let .string(text)? = try? JSONValue.parse(line) else {
                throw CLIError("stdin line \(lineNumber): not a JSON string")
            }
            let ids = tok.encode(text, addSpecialTokens: !noSpecial)
            let decoded = tok.decode(ids, skipSpecialTokens: false)
            Output.out(JSON.object([("ids", .ints(ids)), ("decoded", .string(decoded))]).serialized + "\n")
        }
    }

    func runBench(_ tok: Tokenizer, file: String) throws {
        guard let data = FileManager.default.contents(atPath: file), String(validating: data, as: UTF8.self) != nil else {
            throw CLIError("\(file): cannot read it as UTF-8 text")
        }
        // Split on LF bytes (a Swift Character "\r\n" is not "\n").
        let lines = data.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var tokens = 0
        let start = DispatchTime.now()
        for line in lines { tokens += tok.encode(line, addSpecialTokens: !noSpecial).count }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        try Output.json(.object([
            ("bytes", .int(data.count)), ("lines", .int(lines.count)), ("tokens", .int(tokens)),
            ("seconds", .double(seconds)), ("mb_per_s", .double(Double(data.count) / 1e6 / seconds)),
        ]))
    }
}
