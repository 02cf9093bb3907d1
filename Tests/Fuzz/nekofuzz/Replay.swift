// nekofuzz: the fuzz targets of Tests/Fuzz/Targets.
//
// Built for libFuzzer (Tests/Fuzz/run.sh: -sanitize=fuzzer,address -DNEKO_FUZZ),
// libFuzzer's main calls LLVMFuzzerTestOneInput with the target named by $NEKO_FUZZ_TARGET.
// Built normally, it replays files: `nekofuzz TARGET FILE…` (what a crash report needs).
import Foundation
import NekoFuzzTargets

#if NEKO_FUZZ
let target = ProcessInfo.processInfo.environment["NEKO_FUZZ_TARGET"] ?? "http"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.run(target, size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// libFuzzer's driver, for a program whose `main` is its own (SwiftPM names an executable's
/// entry point `<target>_main`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("nekofuzz_main")
public func nekofuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
}
#else
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, FuzzTargets.names.contains(name) else {
            FileHandle.standardError.write(Data("usage: nekofuzz TARGET FILE… (targets: \(FuzzTargets.names.joined(separator: ", ")))\n".utf8))
            exit(2)
        }
        for file in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: file) else { print("cannot read \(file)"); exit(1) }
            FuzzTargets.run(name, [UInt8](data))
            print("\(name) \(file): ok")
        }
    }
}
#endif
