import Foundation
import NekoChat
import NekoJSON

/// Colours and attributes for each style role, from a theme file in `Themes/` (JSON).
public struct Theme: Sendable {
    public enum Color: Sendable, Equatable { case standard(Int16), rgb(Int, Int, Int), terminalDefault }
    public struct Look: Sendable, Equatable {
        public var foreground: Color = .terminalDefault
        public var background: Color = .terminalDefault
        public var bold = false, dim = false, reverse = false, italic = false, underline = false
    }
    public let name: String
    public var looks: [StyleRole: Look] = [:]
    /// Glyphs for routing heat when colour is off (NO_COLOR, mono).
    public var heatGlyphs: [String]?
    /// Colours of the experts when tokens are coloured by expert (cycled past the end).
    public var expertColors: [Color] = Theme.defaultExpertColors
    static let defaultExpertColors: [Color] = [
        .rgb(230, 25, 75), .rgb(60, 180, 75), .rgb(255, 225, 25), .rgb(67, 99, 216), .rgb(245, 130, 49),
        .rgb(145, 30, 180), .rgb(70, 240, 240), .rgb(240, 50, 230), .rgb(188, 246, 12), .rgb(250, 190, 190),
        .rgb(0, 128, 128), .rgb(230, 190, 255), .rgb(154, 99, 36), .rgb(255, 250, 200), .rgb(128, 0, 0), .rgb(170, 255, 195),
    ]
    public var usesColor: Bool

    static let standardNames: [String: Int16] = ["black": 0, "red": 1, "green": 2, "yellow": 3, "blue": 4,
                                                   "magenta": 5, "cyan": 6, "white": 7]

    static func color(_ s: String?) -> Color? {
        guard let s else { return nil }
        if s == "default" { return .terminalDefault }
        if let n = standardNames[s] { return .standard(n) }
        if s.hasPrefix("#"), s.count == 7, let v = Int(s.dropFirst(), radix: 16) {
            return .rgb((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF)
        }
        return nil
    }

    /// Parses a theme file; every problem names the file and the field.
    public static func load(path: String, noColor: Bool) throws -> Theme {
        guard let data = FileManager.default.contents(atPath: path) else { throw ThemeError("\(path): cannot read the theme") }
        let json: JSONValue
        do { json = try JSONValue.parse([UInt8](data)) } catch { throw ThemeError("\(path): not valid JSON: \(error)") }
        let name = json["name"]?.string ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let colors = json["colors"]?.members ?? []
        var theme = Theme(name: name, usesColor: !noColor && !colors.isEmpty)
        func look(_ key: String, _ role: StyleRole) throws {
            var l = Look()
            if let c = colors.first(where: { $0.key == key })?.value.string {
                guard let parsed = color(c) else { throw ThemeError("\(path): colors.\(key): unknown colour '\(c)'") }
                l.foreground = parsed
            }
            if let a = json["attributes"]?[key]?.string {
                l.bold = a.contains("bold"); l.dim = a.contains("dim"); l.reverse = a.contains("reverse")
                l.italic = a.contains("italic"); l.underline = a.contains("underline")
            }
            theme.looks[role] = l
        }
        try look("text", .text); try look("user", .user); try look("assistant", .assistant); try look("system", .system)
        try look("notice", .notice); try look("error", .error); try look("routing_label", .label)
        try look("input_border", .border)
        var status = Look()
        status.foreground = color(colors.first { $0.key == "status_fg" }?.value.string) ?? .terminalDefault
        status.background = color(colors.first { $0.key == "status_bg" }?.value.string) ?? .terminalDefault
        status.reverse = json["attributes"]?["status"]?.string?.contains("reverse") ?? !theme.usesColor
        theme.looks[.status] = status
        theme.looks[.dim] = Look(dim: true)
        theme.looks[.selected] = selectedLook(colors: theme.usesColor ? colors : [])
        Self.addMarkdownLooks(&theme, colors: colors)
        if theme.looks[.user]?.bold == false, !theme.usesColor { theme.looks[.user]?.bold = true }
        if let heat = colors.first(where: { $0.key == "routing_heat" })?.value.array?.compactMap({ $0.string }) {
            for (i, h) in heat.prefix(8).enumerated() {
                guard let c = color(h) else { throw ThemeError("\(path): colors.routing_heat[\(i)]: unknown colour '\(h)'") }
                theme.looks[.heat(i)] = Look(foreground: c)
            }
        }
        if let list = colors.first(where: { $0.key == "expert_colors" })?.value.array {
            theme.expertColors = try list.enumerated().map { i, v in
                guard let c = color(v.string) else { throw ThemeError("\(path): colors.expert_colors[\(i)]: unknown colour '\(v.string ?? v.serialized)'") }
                return c
            }
            guard !theme.expertColors.isEmpty else { throw ThemeError("\(path): colors.expert_colors: expected at least one colour") }
        }
        if let glyphs = json["routing_glyphs"] {
            guard let list = glyphs.array?.compactMap(\.string), !list.isEmpty, list.count == glyphs.array?.count else {
                throw ThemeError("\(path): routing_glyphs: expected a non-empty list of strings")
            }
            theme.heatGlyphs = list
        }
        if noColor { theme.looks = theme.looks.mapValues { var l = $0; l.foreground = .terminalDefault; l.background = .terminalDefault; return l } }
        return theme
    }

    /// Where theme files are looked for: `$NEKOCHAT_THEMES`, then where `nekochat install` puts
    /// them (PREFIX/share/nekochat/themes), then `Themes/` of the source tree (beside the
    /// executable's build folder, or this file's).
    public static func directories() -> [String] {
        var dirs: [String] = []
        if let env = ProcessInfo.processInfo.environment["NEKOCHAT_THEMES"] { dirs.append(env) }
        let exe = URL(fileURLWithPath: Platform.executablePath() ?? CommandLine.arguments[0])
        // …/repo/.build/<triple>/<config>/nekochat → …/repo/Themes
        // `nekochat install`: PREFIX/bin/nekochat → PREFIX/share/nekochat/themes
        dirs.append(exe.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("share/nekochat/themes").path)
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            dirs.append(dir.appendingPathComponent("Themes").path)
            dir.deleteLastPathComponent()
        }
        dirs.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Themes").path)
        var seen = Set<String>()
        return dirs.filter { seen.insert($0).inserted }
    }

    /// The names of the themes that can be found, sorted.
    public static func available() -> [String] {
        var names = Set<String>()
        for dir in directories() {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] where f.hasSuffix(".json") {
                names.insert(String(f.dropLast(5)))
            }
        }
        return names.sorted()
    }

    /// The theme named `name` (or a path to a theme file).
    public static func named(_ name: String, noColor: Bool) throws -> Theme {
        if name.hasSuffix(".json"), FileManager.default.fileExists(atPath: name) { return try load(path: name, noColor: noColor) }
        for dir in directories() {
            let path = dir + "/" + name + ".json"
            if FileManager.default.fileExists(atPath: path) { return try load(path: path, noColor: noColor) }
        }
        throw ThemeError("no theme named '\(name)' (looked in \(directories().joined(separator: ", ")))")
    }

    /// Markdown and syntax styles: attributes always, colours from the theme file's `markdown_*`
    /// and `syntax_*` keys when given (else a palette that reads on dark and light backgrounds).
    static func addMarkdownLooks(_ theme: inout Theme, colors: [(key: String, value: JSONValue)]) {
        func c(_ key: String, _ fallback: Color) -> Color {
            guard theme.usesColor else { return .terminalDefault }
            return color(colors.first { $0.key == key }?.value.string) ?? fallback
        }
        theme.looks[.bold] = Look(bold: true)
        theme.looks[.italic] = Look(italic: true)
        theme.looks[.heading] = Look(foreground: c("markdown_heading", .standard(5)), bold: true, underline: true)
        theme.looks[.code] = Look(foreground: c("markdown_code", .standard(6)))
        theme.looks[.quote] = Look(foreground: c("markdown_quote", .terminalDefault), dim: true, italic: true)
        theme.looks[.link] = Look(foreground: c("markdown_link", .standard(4)), underline: true)
        theme.looks[.keyword] = Look(foreground: c("syntax_keyword", .standard(5)), bold: true)
        theme.looks[.string] = Look(foreground: c("syntax_string", .standard(2)))
        theme.looks[.comment] = Look(foreground: c("syntax_comment", .terminalDefault), dim: true, italic: true)
        theme.looks[.number] = Look(foreground: c("syntax_number", .standard(3)))
    }

    /// A selection (the picked message's label, the inspected token, the chosen chat in the
    /// browser) in reverse video and bold in every theme, with or without colour, so it is never
    /// told apart by colour alone; a theme may colour it (`selected_fg`, `selected_bg`).
    static func selectedLook(colors: [(key: String, value: JSONValue)]) -> Look {
        var l = Look(bold: true, reverse: true)
        if let fg = color(colors.first { $0.key == "selected_fg" }?.value.string) { l.foreground = fg }
        if let bg = color(colors.first { $0.key == "selected_bg" }?.value.string) { l.background = bg }
        return l
    }

    /// Used when no theme file can be found: the terminal's colours, attributes only.
    public static let fallback: Theme = {
        var t = Theme(name: "built-in", usesColor: false)
        t.looks[.selected] = selectedLook(colors: [])
        t.looks[.user] = Look(bold: true)
        t.looks[.status] = Look(reverse: true)
        t.looks[.dim] = Look(dim: true)
        t.looks[.error] = Look(bold: true)
        t.heatGlyphs = [" ", "·", "░", "▒", "▓", "█"]
        addMarkdownLooks(&t, colors: [])
        return t
    }()
}

public struct ThemeError: UserFacingError {
    public let description: String
    init(_ d: String) { description = d }
}
