import Foundation

/// A serial executor backed by one dedicated thread with a large stack: the generation actor
/// runs there, so a long synchronous forward pass never blocks Swift's cooperative pool
/// (two threads on this machine) and the keyboard stays responsive.
final class DedicatedThreadExecutor: SerialExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { [self] in self.run() }   // the thread keeps its executor until shutdown
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }

    func enqueue(_ job: UnownedJob) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor { UnownedSerialExecutor(ordinary: self) }

    /// Lets the thread end once the queued jobs are done.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty { condition.unlock(); return }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedSerialExecutor())
        }
    }
}

/// A bounded, blocking, thread-safe queue: the producer waits when it is full (back-pressure),
/// the consumer polls it without blocking (the UI drains it between keys).
public final class EventQueue<Element>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []
    public let capacity: Int

    public init(capacity: Int = 256) { self.capacity = max(1, capacity) }

    /// Adds an element, waiting while the queue is full.
    public func put(_ e: Element) {
        condition.lock()
        while items.count >= capacity { condition.wait() }
        items.append(e)
        condition.broadcast()
        condition.unlock()
    }

    /// Everything queued now (possibly nothing).
    public func drain() -> [Element] {
        condition.lock()
        defer { condition.unlock() }
        let out = items
        items.removeAll()
        condition.broadcast()
        return out
    }

}

/// What the UI asks of the generation actor.
public enum ChatCommand: Sendable {
    case send(String)
    case regenerate
    case newChat
    case setSystem(String)
    case setSampling(SamplingParameters, maxTokens: Int)
    case load([ChatMessage])
    case setMode(ChatMode)
    case showPrompt
}

/// The generation actor: it owns the chat session — model, KV cache, tokenizer, template,
/// sampler — and runs on its own thread. The UI sends commands and receives value-type events
/// through a bounded queue; it never touches model state. `stop()` takes effect within one
/// token (or one prefill chunk).
public actor ChatEngine {
    private let executor = DedicatedThreadExecutor(name: "nekochat-model")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private let session: ChatSession
    public nonisolated let events: EventQueue<ChatEvent>
    private nonisolated let cancel: CancellationFlag

    deinit { executor.shutdown() }

    public init(session: ChatSession, queueCapacity: Int = 256) {
        self.session = session
        cancel = session.cancel
        events = EventQueue(capacity: queueCapacity)
    }

    /// Stops the generation in progress, if any (callable from any thread, immediately).
    public nonisolated func stop() { cancel.cancel() }

    /// Clears a stop request; the UI calls it when it sends a new message, so a stop pressed
    /// after that (even before the reply starts) is kept.
    public nonisolated func clearStop() { cancel.reset() }

    public func handle(_ command: ChatCommand) {
        let emit: (ChatEvent) -> Void = { [events] in events.put($0) }
        switch command {
        case let .send(text): session.send(text, resetStop: false, emit: emit)
        case .regenerate: session.regenerate(resetStop: false, emit: emit)
        case .newChat: session.reset()
        case let .setSystem(text): session.setSystem(text)
        case let .setSampling(parameters, maxTokens):
            session.sampling = parameters
            session.maxTokens = maxTokens
        case let .load(messages): session.load(messages)
        case let .setMode(mode): session.mode = mode
        case .showPrompt: session.describePrompt(emit: emit)
        }
    }
}
