import Foundation
import NekoChat

/// Picking a message (Alt-↑ or Ctrl-↑): move with ↑/↓, switch between its versions with ←/→
/// (‹ 2/3 ›), `e` or Enter edits one of your messages (Enter then sends it as a new branch),
/// `r` writes a reply again, `y` copies the message; Esc leaves.
extension ChatApp {
    func startSelection() {
        guard let last = state.conversation.path.last else { notice("no message to pick yet"); return }
        state.selected = last.id
    }

    /// Keys while a message is picked; false when the key is not for the selection (it leaves
    /// the selection and does what it always does).
    func handleSelection(_ key: Key) -> Bool {
        guard let id = state.selected else { return false }
        let path = state.conversation.path
        guard let at = path.firstIndex(where: { $0.id == id }) else { state.selected = nil; return false }
        let m = path[at]
        switch key {
        case .up, .ctrlUp: if at > 0 { state.selected = path[at - 1].id }
        case .down, .ctrlDown: state.selected = at + 1 < path.count ? path[at + 1].id : nil
        case .left, .right:
            do {
                try controller.selectSibling(of: id, offset: key == .left ? -1 : 1)
                pump()
                let now = state.conversation.path
                state.selected = at < now.count ? now[at].id : nil
            } catch { notice(userMessage(error), error: true) }
        case .char("e"), .enter:
            guard m.role == .user else { notice("only your own messages can be edited (r writes a reply again)"); return true }
            startEditing(m)
        case .char("r"):
            guard m.role == .assistant else { notice("r writes a reply again: pick a reply (e edits your message)"); return true }
            do {
                try controller.regenerate(id)
                state.selected = nil
                pump()
            } catch { notice(userMessage(error), error: true) }
        case .char("y"), .char("c"): copy(m.content, what: m.role == .user ? "your message" : "the reply")
        case .escape: state.selected = nil
        default:
            state.selected = nil
            return false
        }
        return true
    }

    /// Puts a message's text in the input box; Enter sends it as a new version of it.
    func startEditing(_ m: ChatMessage) {
        if state.editing == nil { draftBeforeEdit = state.input.string }
        state.editing = m.id
        state.selected = nil
        state.input.set(m.content)
        notice("editing your message: Enter sends it as a new version (the old one stays: Alt-↑ then ←/→), Esc cancels")
    }

    func cancelEditing() {
        state.editing = nil
        state.input.set(draftBeforeEdit)
        draftBeforeEdit = ""
        notice("edit cancelled")
    }

    /// Copies text to the terminal's clipboard (OSC 52: works over SSH and in tmux with
    /// `set-clipboard on`), saying so where the terminal cannot take it.
    func copy(_ text: String, what: String) {
        let env = environment
        let term = env["TERM"] ?? ""
        if ["linux", "dumb", ""].contains(term) {
            notice("this terminal (TERM=\(term.isEmpty ? "unset" : term)) cannot take a clipboard write (OSC 52); nothing copied", error: true)
            return
        }
        let payload = Data(text.utf8).base64EncodedString()
        effects.append(.raw("\u{1B}]52;c;\(payload)\u{07}"))
        var line = "copied \(what) (\(text.count) characters) to the clipboard"
        if env["TMUX"] != nil { line += " — in tmux it reaches your terminal with `set -g set-clipboard on`" }
        notice(line)
    }

    /// `/copy [N]`: the last reply, or its N-th code block.
    func copyCommand(_ arg: String) throws -> String? {
        guard let reply = state.conversation.path.last(where: { $0.role == .assistant && !$0.isPending }) else {
            throw ChatError("nothing to copy yet: no reply")
        }
        if arg.isEmpty {
            copy(reply.content, what: "the last reply")
            return nil
        }
        let blocks = Markdown.codeBlocks(reply.content)
        guard let n = Int(arg), n >= 1, n <= blocks.count else {
            throw ChatError(blocks.isEmpty ? "the last reply has no code block (/copy copies the whole reply)"
                            : "/copy takes a code block number from 1 to \(blocks.count)")
        }
        copy(blocks[n - 1], what: "code block \(n)")
        return nil
    }
}
