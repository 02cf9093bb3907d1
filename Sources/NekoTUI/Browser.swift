import Foundation
import NekoChat

/// The conversation browser (`/chats`, Alt-C): the saved chats with incremental search over
/// their text; open, rename, delete to the trash, undo.
public struct BrowserState: Sendable {
    var all: [ChatSummary]
    var query = ""
    var index = 0
    /// Renaming the selected chat: the title being typed.
    var renaming: String?
    /// The last chat moved to the trash, to undo (Ctrl-Z).
    var lastTrashed: (trashed: String, original: String)?

    /// The chats whose title or text contains the query, with the excerpt that matched.
    var shown: [(chat: ChatSummary, excerpt: String)] {
        all.compactMap { c in c.match(query).map { (c, $0) } }
    }
}

extension ChatApp {
    func openBrowser() {
        state.browser = BrowserState(all: ChatLibrary.summaries(store))
        if state.browser!.all.isEmpty { notice("no saved chats yet in \(store.directory)") }
    }

    /// Keys while the browser is open.
    func handleBrowser(_ key: Key) {
        guard var b = state.browser else { return }
        defer { if state.browser != nil { state.browser = b } }
        if var title = b.renaming {
            switch key {
            case let .char(c): title.append(c)
            case .backspace, .ctrl("h"): if !title.isEmpty { title.removeLast() }
            case .enter:
                let shown = b.shown
                guard b.index < shown.count, !title.trimmingCharacters(in: .whitespaces).isEmpty else { b.renaming = nil; return }
                let chat = shown[b.index].chat
                do {
                    if chat.path == controller.transcript?.path { controller.setTitle(title) } else { try ChatLibrary.rename(chat.path, to: title) }
                    if let i = b.all.firstIndex(where: { $0.path == chat.path }) { b.all[i].title = title }
                    notice("renamed to \(title)")
                } catch { notice(userMessage(error), error: true) }
                title = ""
                b.renaming = nil
                return
            case .escape: b.renaming = nil; return
            default: break
            }
            b.renaming = title
            return
        }
        let shown = b.shown
        switch key {
        case .escape: state.browser = nil
        case .up, .ctrl("p"): b.index = max(0, b.index - 1)
        case .down, .ctrl("n"): b.index = min(max(0, shown.count - 1), b.index + 1)
        case .pageUp: b.index = max(0, b.index - 10)
        case .pageDown: b.index = min(max(0, shown.count - 1), b.index + 10)
        case let .char(c): b.query.append(c); b.index = 0
        case let .paste(text): b.query += text.replacingOccurrences(of: "\n", with: " "); b.index = 0
        case .backspace, .ctrl("h"): if !b.query.isEmpty { b.query.removeLast(); b.index = 0 }
        case .ctrl("u"): b.query = ""; b.index = 0
        case .enter:
            guard b.index < shown.count else { return }
            let path = shown[b.index].chat.path
            stopReply()
            do {
                let line = try controller.load(path)
                pump()
                notice(line)
                state.browser = nil
            } catch { notice(userMessage(error), error: true) }
        case .ctrl("r"):
            guard b.index < shown.count else { return }
            b.renaming = ""
        case .delete, .ctrl("d"):
            guard b.index < shown.count else { return }
            let chat = shown[b.index].chat
            guard chat.path != controller.transcript?.path else { notice("this is the chat you are in: open another one to delete it", error: true); return }
            do {
                let trashed = try ChatLibrary.trash(chat.path, store: store)
                b.lastTrashed = (trashed, chat.path)
                b.all.removeAll { $0.path == chat.path }
                b.index = min(b.index, max(0, b.shown.count - 1))
                notice("moved \(chat.title) to \(store.trash) (Ctrl-Z puts it back)")
            } catch { notice(userMessage(error), error: true) }
        case .ctrl("z"):
            guard let (trashed, original) = b.lastTrashed else { notice("nothing to undo"); return }
            do {
                try ChatLibrary.restore(trashed, to: original)
                b.all.append(ChatLibrary.summary(path: original))
                b.all.sort { $0.date > $1.date }
                b.lastTrashed = nil
                notice("restored \((original as NSString).lastPathComponent)")
            } catch { notice(userMessage(error), error: true) }
        default: break
        }
    }
}

enum BrowserView {
    static func draw(_ b: BrowserState, into g: inout CellGrid, rect: (x: Int, y: Int, w: Int, h: Int)) {
        guard rect.h > 2 else { return }
        let shown = b.shown
        g.put("chats · \(shown.count) of \(b.all.count) · type to search · Enter open · Ctrl-R rename · Del trash · Ctrl-Z undo · Esc",
              x: rect.x, y: rect.y, style: .label, maxX: rect.x + rect.w)
        let prompt = b.renaming.map { "new title: \($0)▏" } ?? "search: \(b.query)▏"
        g.put(prompt, x: rect.x, y: rect.y + 1, style: b.renaming == nil ? .user : .selected, maxX: rect.x + rect.w)
        let rows = rect.h - 2
        let first = max(0, min(b.index - rows / 2, shown.count - rows))
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm"
        for (r, i) in (first..<min(shown.count, first + rows)).enumerated() {
            let (chat, excerpt) = shown[i]
            let meta = " \(chat.modelName.isEmpty ? "" : chat.modelName + " · ")\(formatter.string(from: chat.date)) · \(chat.messages) msg"
            let style: StyleRole = i == b.index ? .selected : .text
            let y = rect.y + 2 + r
            if i == b.index { g.fill(x: rect.x, y: y, width: rect.w, height: 1, style: .selected) }
            let titleWidth = max(10, rect.w - displayWidth(meta) - 1)
            // The chosen chat: a marker and the whole row in reverse video (never colour alone).
            var col = g.put(i == b.index ? "▶ " : "  ", x: rect.x, y: y, style: style)
            col = g.put(chat.title, x: col, y: y, style: style, maxX: rect.x + titleWidth)
            if !excerpt.isEmpty { col = g.put("  " + excerpt, x: col, y: y, style: i == b.index ? .selected : .dim, maxX: rect.x + titleWidth) }
            g.put(meta, x: rect.x + rect.w - displayWidth(meta), y: y, style: i == b.index ? .selected : .dim, maxX: rect.x + rect.w)
        }
        if shown.isEmpty { g.put(b.all.isEmpty ? "no saved chats" : "no chat contains \"\(b.query)\"", x: rect.x, y: rect.y + 2, style: .dim, maxX: rect.x + rect.w) }
    }
}
