import ArgumentParser
import Foundation
import NekoChat
import NekoServe

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "An OpenAI-compatible HTTP server for the model (/v1/chat/completions, /v1/completions, /v1/models, /health).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Address to listen on (default: loopback only).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed on stderr).") var port = 8080
    @Option(name: .customLong("api-key-env"), help: "Require `Authorization: Bearer $VAR` (the key is read from this environment variable).")
    var apiKeyEnv: String?
    @Option(help: "Requests generated at once (batched into one forward pass per token).") var parallel = 4
    @Option(name: .customLong("ctx-size"), help: "Context window per request (default: the model's, at most 8192).") var ctxSize: Int?
    @Option(name: .customLong("max-tokens"), help: "The longest reply (a request asking for more gets this many, ending with length), and the default.") var maxTokens = 2048
    @Option(name: .customLong("max-body"), help: "The largest request body accepted, in bytes.") var maxBody = 8 << 20
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var steering: InterventionOptions

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be from 0 to 65535") }
        if !(1...64).contains(parallel) { throw ValidationError("--parallel must be from 1 to 64") }
        try checkLimits(ctxSize: ctxSize, maxTokens: maxTokens, stop: [])
        if !(1024...(1 << 30)).contains(maxBody) { throw ValidationError("--max-body must be from 1024 to \(1 << 30)") }
    }

    func run() throws {
        var options = ServeOptions()
        if let apiKeyEnv {
            guard let key = ProcessInfo.processInfo.environment[apiKeyEnv], !key.isEmpty else {
                throw CLIError("--api-key-env \(apiKeyEnv): the environment variable is not set (or empty)")
            }
            options.apiKey = key
        } else if !["127.0.0.1", "localhost", "::1"].contains(host) {
            Output.err("warning: serving on \(host) without --api-key-env: anyone who can reach it can use it\n")
        }
        let location = try ModelLocation.resolve(modelOptions.model)
        let bundle = try modelOptions.loadBundle(location)
        let modelID = location.isBuiltInDemo ? "nekomind-demo" : location.displayName
        let context = ctxSize ?? min(bundle.model.config.maxPositionEmbeddings, 8192)
        if let warning = bundle.model.contextWarning(context) { Output.err("warning: \(warning)\n") }
        let engine = try ServeEngine(bundle: bundle, threads: modelOptions.threadCount, parallel: parallel, contextSize: context, modelID: modelID,
                                     kvPrecision: modelOptions.kvPrecision(default: .float16))
        options.host = host
        options.port = port
        options.maxBodyBytes = maxBody
        options.maxTokens = maxTokens
        options.defaults = try sampling.settings(bundle.generationConfig, maxTokens: maxTokens)
        // The server's routing interventions: every request's, unless it sends its own.
        options.defaults.experts = try steering.interventions(for: bundle.model)
        // A parent may have blocked SIGTERM / SIGINT (test runners do): the server stops on them.
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        let done = DispatchSemaphore(value: 0)
        let failure = ErrorBox()
        let (h, p) = (host, parallel)
        Task {
            do {
                try await NekoServer.run(engine, options: options) { port in
                    Output.err("serving \(modelID) at http://\(h):\(port)/v1 (\(p) at once, context \(context))\n")
                }
            } catch {
                failure.error = error
            }
            done.signal()
        }
        done.wait()
        if let error = failure.error {
            throw CLIError("cannot serve on \(host):\(port): \(userMessage(error))")
        }
    }
}

final class ErrorBox: @unchecked Sendable { var error: Error? }
