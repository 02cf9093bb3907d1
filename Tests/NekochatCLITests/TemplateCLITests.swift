import Foundation
import Testing

@Suite struct TemplateCLITests {
    static let fixtures = CLI.repo.appendingPathComponent("Tests/Fixtures/templates")

    func writeMessages(_ json: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("msgs-\(UUID().uuidString).json").path
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func rendersATemplateFileLikeTheGolden() throws {
        let goldens = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("goldens.json"))) as? [String: Any])
        let renders = try #require(goldens["renders"] as? [[String: Any]])
        let golden = try #require(renders.first {
            $0["template"] as? String == "extra_Qwen__Qwen2.5-7B-Instruct.jinja" && $0["conversation"] as? String == "multi_turn"
                && $0["add_generation_prompt"] as? Bool == true && $0["output"] != nil
        })
        let conversations = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("conversations.json"))) as? [[String: Any]])
        let messages = try #require(conversations.first { $0["name"] as? String == "multi_turn" }?["messages"])
        let file = try writeMessages(String(decoding: try JSONSerialization.data(withJSONObject: messages), as: UTF8.self))
        let r = try CLI.run(["template", "--template", Self.fixtures.appendingPathComponent("local/extra_Qwen__Qwen2.5-7B-Instruct.jinja").path,
                             "--messages", file, "--add-generation-prompt"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == golden["output"] as? String)
    }

    @Test func templateErrorsAreOneLineWithPosition() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let bad = dir.appendingPathComponent("bad.jinja").path
        try "line one\n{% for m in messages %}{{ m.content }}\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let raising = dir.appendingPathComponent("raise.jinja").path
        try "{{ raise_exception('Only user and assistant roles are supported!') }}".write(toFile: raising, atomically: true, encoding: .utf8)
        let messages = try writeMessages(#"[{"role": "user", "content": "hi"}]"#)
        var r = try CLI.run(["template", "--template", bad, "--messages", messages])
        #expect(r.status == 1 && r.stderr.hasPrefix("error: \(bad):") && r.stderr.filter { $0 == "\n" }.count == 1, "\(r.stderr)")
        r = try CLI.run(["template", "--template", raising, "--messages", messages])
        #expect(r.status == 1 && r.stderr == "error: \(raising): Only user and assistant roles are supported!\n", "\(r.stderr)")
        r = try CLI.run(["template", "--template", raising, "--messages", try writeMessages("[{")])
        #expect(r.status == 1 && r.stderr.hasPrefix("error: ") && r.stdout.isEmpty)
    }

    @Test func modelsWithoutATemplateGetChatMLWithANotice() throws {
        let model = try TinyTextModel.make()
        let messages = try writeMessages(#"{"messages": [{"role": "user", "content": "hi"}]}"#)
        let r = try CLI.run(["template", "--model", model, "--messages", messages, "--add-generation-prompt"])
        #expect(r.status == 0)
        #expect(r.stdout == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        #expect(r.stderr.contains("ChatML"))
    }

    @Test func templateSourcesInPriorityOrder() throws {
        let model = try TinyTextModel.make()
        let messages = try writeMessages(#"[{"role": "user", "content": "hi"}]"#)
        let config = #"{"bos_token": "<s>", "eos_token": "</s>", "chat_template": [{"name": "default", "template": "D{{ bos_token }}"}, {"name": "tool_use", "template": "T"}]}"#
        try config.write(toFile: model + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["template", "--model", model, "--messages", messages]).stdout == "D<s>")
        try "J{{ messages[0].content }}".write(toFile: model + "/chat_template.jinja", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["template", "--model", model, "--messages", messages]).stdout == "Jhi")
    }

    @Test func generateChatAppliesTheTemplateWithoutAddedSpecialTokens() throws {
        let model = try TinyTextModel.make()
        try "{% for m in messages %}<{{ m.content }}>{% endfor %}".write(toFile: model + "/chat_template.jinja", atomically: true, encoding: .utf8)
        let json = try #require(try CLI.run(["generate", "--model", model, "--chat", "--prompt", "the", "--max-tokens", "2", "--json",
                                             "--temperature", "0"]).json)
        let prompt = try #require(json["prompt_ids"] as? [Int])
        #expect(prompt.first != 1)   // no <s>: the template decides
        #expect(prompt.map { TinyTextModel.vocab[$0] }.joined() == "<the>")
    }
}
