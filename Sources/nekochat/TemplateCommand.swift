import ArgumentParser
import Foundation
import NekoChat
import NekoJSON
import NekoTemplate

struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Render a chat template over messages as transformers' apply_chat_template(tokenize=False) does.")

    @Option(help: "A model directory whose chat template to use (default: $NEKOCHAT_MODEL).") var model: String?
    @Option(help: "A Jinja template file to use instead.") var template: String?
    @Option(help: "A JSON list of {role, content} messages, or {\"messages\": …, other variables}.") var messages: String
    @Flag(name: .customLong("add-generation-prompt"), help: "Append the assistant prompt.") var addGenerationPrompt = false
    @Option(name: .customLong("bos-token"), help: "bos_token (default: the model's).") var bosToken: String?
    @Option(name: .customLong("eos-token"), help: "eos_token (default: the model's).") var eosToken: String?
    @Option(help: "Instead of printing, render N times and print the time per render and per message as JSON.") var bench: Int?

    func validate() throws {
        if model != nil && template != nil { throw ValidationError("give at most one of --model and --template") }
    }

    func run() throws {
        let chat: ChatTemplate
        if let template {
            guard let data = FileManager.default.contents(atPath: template) else { throw CLIError("\(template): cannot read the file") }
            chat = ChatTemplate(template: try Template(String(decoding: data, as: UTF8.self), name: template), origin: template)
        } else {
            chat = try ChatTemplate.load(directory: try ModelLocation.resolve(model).directory)
            if chat.isDefault { Output.err("note: the model has no chat template; using the ChatML default\n") }
        }
        guard let data = FileManager.default.contents(atPath: messages) else { throw CLIError("\(messages): cannot read the file") }
        let json: JSONValue
        do { json = try JSONValue.parse([UInt8](data)) } catch let e as JSONSyntaxError {
            throw CLIError("\(messages):\(e.line):\(e.column): \(e.message)")
        }
        var list: [JSONValue]
        var extra: [String: Value] = [:]
        if let items = json.array {
            list = items
        } else if let members = json.members, let items = json["messages"]?.array {
            list = items
            for (k, v) in members where k != "messages" { extra[k] = Value(json: v) }
        } else {
            throw CLIError("\(messages): expected a list of messages or an object with \"messages\"")
        }
        if let bosToken { extra["bos_token"] = .string(bosToken) }
        if let eosToken { extra["eos_token"] = .string(eosToken) }
        // strftime_now reads the clock; SOURCE_DATE_EPOCH (seconds, UTC) pins it for reproducible output.
        let pinned = ProcessInfo.processInfo.environment["SOURCE_DATE_EPOCH"].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
        let render = { try chat.render(messages: list, addGenerationPrompt: addGenerationPrompt, extra: extra,
                                       clock: { pinned ?? Date() }) }
        guard let bench else { return Output.out(try render()) }
        let compileStart = DispatchTime.now()
        _ = try Template(chat.template.source)
        let compileMs = Double(DispatchTime.now().uptimeNanoseconds - compileStart.uptimeNanoseconds) / 1e6
        _ = try render()
        var times: [Double] = []
        for _ in 0..<max(1, bench) {
            let start = DispatchTime.now()
            _ = try render()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6)
        }
        times.sort()
        let median = times[times.count / 2]
        try Output.json(.object([
            ("messages", .int(list.count)), ("renders", .int(times.count)), ("compile_ms", .double(compileMs)),
            ("median_ms_per_render", .double(median)), ("ms_per_message", .double(median / Double(max(1, list.count)))),
        ]))
    }
}
