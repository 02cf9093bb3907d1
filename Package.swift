// swift-tools-version:6.0
import PackageDescription

// Module map and allowed imports: Sources/README.md.
//   nekochat → NekoTUI, NekoServe, NekoRemote, NekoHub, NekoChat · NekoTUI, NekoServe, NekoRemote → NekoChat
//   NekoChat → NekoModel, NekoTokenizer, NekoTemplate, NekoRouting, NekoJSON · NekoModel → NekoKernels
//   NekoKernels → CNekoKernels, COpenBLAS
let package = Package(
    name: "nekochat",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "nekochat", targets: ["nekochat"]),
        .executable(name: "nekofuzz", targets: ["nekofuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The OpenAI-compatible server (nekochat serve) and the client of remote servers.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .systemLibrary(name: "CNcursesw", path: "Sources/CNcursesw"),
        // Hot loops that need SIMD intrinsics, with runtime CPU dispatch (AVX2+FMA+F16C or portable C).
        .target(
            name: "CNekoKernels",
            path: "Sources/CNekoKernels",
            cSettings: [.unsafeFlags(["-O3", "-fno-math-errno"])]
        ),
        .target(name: "NekoKernels", dependencies: ["CNekoKernels", "COpenBLAS"]),
        // The calls whose spelling differs between Linux and macOS (executable path, disk
        // preallocation, file times) and terminal job control (the external editor, Ctrl-Z).
        .target(name: "CNekoPlatform", path: "Sources/CNekoPlatform"),
        .target(name: "NekoModel", dependencies: ["NekoKernels", "NekoJSON", "CNekoPlatform"], exclude: ["README.md"]),
        // JSON with ordered keys, compared scalar by scalar (tokenizer.json vocabularies, templates).
        .target(name: "NekoJSON"),
        .target(name: "NekoTokenizer", dependencies: ["NekoJSON"]),
        .target(name: "NekoTemplate", dependencies: ["NekoJSON"]),
        .target(name: "NekoChat", dependencies: ["NekoModel", "NekoKernels", "NekoTokenizer", "NekoTemplate", "NekoJSON", "NekoRouting", "CNekoPlatform"]),
        // The routing analyses (its README) over routing traces, and their JSON/CSV/SVG: knows no model.
        .target(name: "NekoRouting", dependencies: ["NekoJSON"], exclude: ["README.md"]),
        // `nekochat serve`: OpenAI's HTTP API over the local engine (batched decode of N streams).
        .target(name: "NekoServe", dependencies: ["NekoChat", "NekoModel", "NekoJSON", "NekoOpenAI", .product(name: "Hummingbird", package: "hummingbird")], exclude: ["README.md"]),
        // OpenAI's request and response objects, checked; no HTTP (so the parsing fuzzes alone).
        .target(name: "NekoOpenAI", dependencies: ["NekoChat", "NekoJSON"]),
        // The chat against any OpenAI-compatible server, behind the same backend seam.
        .target(name: "NekoRemote", dependencies: ["NekoChat", "NekoJSON", .product(name: "AsyncHTTPClient", package: "async-http-client")]),
        // Models by name: the Hugging Face cache (shared with every other tool) and downloads from the Hub.
        // SHA-256 and SHA-1 of downloaded files (swift-crypto would compile a second BoringSSL).
        .target(name: "CNekoHash", path: "Sources/CNekoHash", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "NekoHub", dependencies: ["NekoJSON", "CNekoHash", .product(name: "AsyncHTTPClient", package: "async-http-client")], exclude: ["README.md"]),
        // The chat screen: knows chat events and commands, never the model.
        .target(name: "NekoTUI", dependencies: ["NekoChat", "NekoRouting", "CNcursesw", "CNekoPlatform"]),
        .executableTarget(
            name: "nekochat",
            dependencies: [
                "NekoTUI", "NekoChat", "NekoModel", "NekoTokenizer", "NekoTemplate", "NekoJSON", "NekoRouting", "NekoServe", "NekoRemote", "NekoHub",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // The built-in demo model (Tests/Reference/demo/ trains it); found at run time by
            // ModelLocation, not through Bundle.module.
            exclude: ["README.md"],
            resources: [.copy("Resources/DemoModel")]
        ),
        // Fuzzing (Tests/Fuzz/run.sh): the targets, the libFuzzer executable, and the replay of
        // seeds and past crashes in the ordinary test run.
        .target(name: "NekoFuzzTargets", dependencies: ["NekoChat", "NekoModel", "NekoTokenizer", "NekoTemplate", "NekoJSON",
                                                        "NekoOpenAI", "NekoRouting", "NekoTUI", "NekoHub"], path: "Tests/Fuzz/Targets"),
        .executableTarget(name: "nekofuzz", dependencies: ["NekoFuzzTargets"], path: "Tests/Fuzz/nekofuzz"),
        .testTarget(name: "NekoFuzzTests", dependencies: ["NekoFuzzTargets"]),
        .testTarget(name: "NekoKernelsTests", dependencies: ["NekoKernels", "CNekoKernels"]),
        // Fixtures are read from Tests/Fixtures through #filePath (see FixturePaths.swift).
        .testTarget(name: "NekoModelTests", dependencies: ["NekoModel", "NekoKernels"]),
        .testTarget(name: "NekoTokenizerTests", dependencies: ["NekoTokenizer", "NekoJSON"]),
        .testTarget(name: "NekoTemplateTests", dependencies: ["NekoTemplate", "NekoJSON"]),
        .testTarget(name: "NekoTUITests", dependencies: ["NekoTUI", "NekoChat"]),
        .testTarget(name: "NekoRoutingTests", dependencies: ["NekoRouting", "NekoJSON"]),
        .testTarget(name: "NekoChatTests", dependencies: ["NekoChat", "NekoModel", "NekoTokenizer"]),
        // Runs the built `nekochat` binary as a user would (exit codes, stderr, JSON on stdout).
        .testTarget(name: "NekochatCLITests", dependencies: ["nekochat", "NekoChat", "NekoJSON", "NekoRouting", "NekoRemote", "NekoHub"]),
    ]
)
