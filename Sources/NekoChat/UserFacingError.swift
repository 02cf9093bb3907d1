import Foundation
import NekoJSON
import NekoModel
import NekoRouting
import NekoTemplate
import NekoTokenizer

/// The one error type a user sees: every module's errors conform, and the CLI (`error: …`, one
/// line) and the chat (a red notice) print `description` the same way. A description names the
/// file, field, tensor or value at fault and never carries a Foundation error's text.
public protocol UserFacingError: Error, CustomStringConvertible {
    /// The process exit status when this error ends a command (Sources/nekochat/README.md: 1, or 2 for bad usage).
    var exitCode: Int32 { get }
}

extension UserFacingError {
    public var exitCode: Int32 { 1 }
}

extension ModelError: UserFacingError {}
extension TokenizerError: UserFacingError {}
extension TemplateError: UserFacingError {}
extension JSONSyntaxError: UserFacingError {}
extension RoutingError: UserFacingError {}
extension RoutingCodec.FormatError: UserFacingError {}

/// An error of the chat core (commands, files, settings), with its message as shown.
public struct ChatError: UserFacingError, Equatable {
    public let description: String
    /// A file written by a newer nekochat: never read in part.
    public var isNewerFormat = false
    public init(_ description: String) { self.description = description }
}

/// What to show for any error: our own errors as they describe themselves; Foundation's and
/// POSIX errors as "path: reason" in plain words (never `NSCocoaErrorDomain …`).
public func userMessage(_ error: Error, path: String? = nil) -> String {
    if let e = error as? UserFacingError { return e.description }
    let ns = error as NSError
    var reason: String
    if let posix = (ns.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap({ $0.domain == NSPOSIXErrorDomain ? $0.code : nil })
        ?? (ns.domain == NSPOSIXErrorDomain ? ns.code : nil) {
        reason = String(cString: strerror(Int32(posix)))
    } else if ns.domain == NSCocoaErrorDomain {
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file"
        case .fileReadNoPermission, .fileWriteNoPermission: reason = "permission denied"
        case .fileWriteOutOfSpace: reason = "no space left on the device"
        case .fileWriteFileExists: reason = "the file exists"
        case .fileReadCorruptFile: reason = "the file is corrupt"
        case .fileReadInapplicableStringEncoding: reason = "not valid UTF-8 text"
        case .fileWriteVolumeReadOnly: reason = "read-only file system"
        default: reason = ns.code >= 512 && ns.code < 1024 ? "cannot write the file" : "cannot read the file"
        }
    } else {
        reason = "\(error)"
    }
    reason = reason.prefix(1).lowercased() + reason.dropFirst()
    let file = path ?? (ns.userInfo[NSFilePathErrorKey] as? String)
    return file.map { "\($0): \(reason)" } ?? reason
}

/// Paths as the user typed them: `~` expanded, a plain relative name taken relative to the
/// working directory (Foundation treats some such names oddly).
public func resolvePath(_ path: String) -> String {
    var p = path
    if p == "~" || p.hasPrefix("~/") { p = NSHomeDirectory() + p.dropFirst() }
    if !p.hasPrefix("/") { p = FileManager.default.currentDirectoryPath + "/" + p }
    return URL(fileURLWithPath: p).standardizedFileURL.path
}
