import Foundation

/// One dedicated thread with a large stack that runs submitted work in order. The generation
/// actor does its model work here, so a long synchronous forward pass never blocks Swift's
/// cooperative pool (two threads on this machine) and the keyboard stays responsive.
final class ModelThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var work: [() -> Void] = []
    private var stopping = false

    init(name: String) {
        let thread = Thread { [self] in self.run() }   // the thread keeps this object until shutdown
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }

    func submit(_ item: @escaping () -> Void) {
        condition.lock()
        work.append(item)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread end once the submitted work is done.
    func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while work.isEmpty && !stopping { condition.wait() }
            if work.isEmpty { condition.unlock(); return }
            let item = work.removeFirst()
            condition.unlock()
            item()
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
/// sampler. Each command's work runs on the actor's own model thread, in the order the commands
/// arrived, while the caller's task is suspended (not blocking a pool thread). The UI sends
/// commands and receives value-type events through a bounded queue; it never touches model
/// state. `stop()` takes effect within one token (or one prefill chunk).
public actor ChatEngine {
    private let thread = ModelThread(name: "nekochat-model")

    private let session: ChatSession
    public nonisolated let events: EventQueue<ChatEvent>
    private nonisolated let cancel: CancellationFlag

    deinit { thread.shutdown() }

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

    public func handle(_ command: ChatCommand) async {
        let session = session, events = events
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            thread.submit {
                Self.run(command, session: session, events: events)
                done.resume()
            }
        }
    }

    private static func run(_ command: ChatCommand, session: ChatSession, events: EventQueue<ChatEvent>) {
        let emit: (ChatEvent) -> Void = { events.put($0) }
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
