import Dispatch
import NekoKernels

/// Threads and scratch memory for forward passes; one per thread that runs the model.
///
/// Every buffer below belongs to the forward pass while it runs and is dead between passes.
/// Shapes are in the vocabulary of ModelConfig, with `n` the rows of the batch (prompt tokens of
/// one sequence, or one token of each of N sequences), `A` the (token, expert) assignments of an
/// MoE layer (n · expertsPerToken). Two buffers are shared by stages that never overlap: `h`
/// (attention input, then feed-forward input) and `proj` (o_proj output, then the feed-forward
/// output); each function that writes one says so.
public final class ForwardContext: @unchecked Sendable {
    public let pool: WorkerPool
    /// Called with a debug name, the layer (-1 for none) and the activations `(n, width)`, when
    /// set: dump any intermediate to compare with the reference (llama.cpp's `cb(cur, name, il)`).
    /// Names: embed, attn_norm, q, k, v, attn_out, ffn_norm, router_probs, expert_out,
    /// shared_gate, shared_out, layer_out, final_norm.
    public var trace: ((String, Int, UnsafeBufferPointer<Float>) -> Void)?

    let x = ScratchBuffer()          // (n, hiddenSize): the residual stream
    let h = ScratchBuffer()          // (n, hiddenSize): normed input of attention, then of the feed-forward
    let q = ScratchBuffer()          // (n, heads * headDim)
    let k = ScratchBuffer()          // (n, kvHeads * headDim): new keys, before they go into the caches
    let v = ScratchBuffer()          // (n, kvHeads * headDim): new values
    let attn = ScratchBuffer()       // (n, heads * headDim): attention output, before o_proj
    let proj = ScratchBuffer()       // (n, hiddenSize): o_proj output, then the feed-forward output
    let scores = ScratchBuffer()     // decode: (n * heads, context); prefill: per pool thread (n, context) + f16 K, V as f32
    let rope = ScratchBuffer()       // (2, n, headDim / 2): cos rows, then sin rows
    let routerLogits = ScratchBuffer() // (n, experts): the router's logits
    let probs = ScratchBuffer()      // (n, experts): their softmax over all experts
    let act = ScratchBuffer()        // (A, moeIntermediate) or (n, intermediate): silu(gate)·up
    let sharedAct = ScratchBuffer()  // (n, sharedIntermediate)
    let expertOut = ScratchBuffer()  // (A, hiddenSize): each assignment's expert output
    let sharedOut = ScratchBuffer()  // (n, hiddenSize): the shared expert's output, gated
    let gates = ScratchBuffer()      // (n): σ(h · shared_expert_gate)
    let logitRows = ScratchBuffer()  // (rows asked for, hiddenSize): final-normed rows for the head
    let chosenWeights = ScratchBuffer() // (n, expertsPerToken): the routing weights used
    let weightOf = ScratchBuffer()   // (A): each assignment's routing weight
    let chosen = IndexScratch<Int32>()   // (n, expertsPerToken): expert ids, descending weight
    let rowOf = IndexScratch<Int32>()    // (A): the batch row each assignment reads, grouped by expert
    let identity = IndexScratch<Int32>() // (A): 0, 1, 2, … (the down projections read act in order)
    let counts = IndexScratch<Int>()     // (experts): rows routed to each expert
    let offsets = IndexScratch<Int>()    // (experts + 1): where each expert's assignments start
    let cursor = IndexScratch<Int>()     // (experts): each expert's next free assignment slot
    let taken = IndexScratch<Bool>()     // (experts): chosen already, while one row is routed

    /// Inputs prepared once per layer for every matrix that reads them.
    let hInput = PreparedInput()     // h, read by q/k/v, router, experts' and shared gate/up
    let attnInput = PreparedInput()  // attn, read by o_proj
    let actInput = PreparedInput()   // act, read by the experts' (or the dense MLP's) down
    let sharedInput = PreparedInput() // sharedAct, read by the shared expert's down
    let headInput = PreparedInput()  // logitRows, read by the LM head
    var jobs = MatVecList()          // the phase being built

    /// When set, every phase adds its time and weight bytes here (`nekochat bench --profile`).
    public var profile: PhaseProfile?
    /// When set, every MoE layer adds its experts' REAP saliency here (`nekochat routing ablate`).
    public var saliency: ExpertSaliency?
    /// When set, a pass keeps the residual stream entering each MoE layer's feed-forward block
    /// here, for passes that resume from it (`LanguageModel.resume`).
    public var tape: ResidualTape?

    public init(threads: Int) { pool = WorkerPool(threads: threads) }

    func dump(_ name: String, _ layer: Int, _ p: UnsafePointer<Float>, _ count: Int) {
        trace?(name, layer, UnsafeBufferPointer(start: p, count: count))
    }

    /// Runs the jobs built so far as one phase (named for the profile) and clears the list.
    func runPhase(_ name: StaticString) {
        if let profile {
            let start = DispatchTime.now().uptimeNanoseconds
            jobs.run(pool)
            profile.add(name, nanoseconds: DispatchTime.now().uptimeNanoseconds - start, bytes: jobs.weightBytes)
        } else {
            jobs.run(pool)
        }
        jobs.removeAll()
    }

    /// Runs `body`, adding its time to the profile under `name`.
    func timed<T>(_ name: StaticString, _ body: () -> T) -> T {
        guard let profile else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        defer { profile.add(name, nanoseconds: DispatchTime.now().uptimeNanoseconds - start, bytes: 0) }
        return body()
    }
}

/// Rows of a batch that belong to one sequence: `rows` run at positions `start ..< start + rows.count`
/// of `cache`, and record their routing into `routing` from token `firstRouted` on.
struct Segment {
    let cache: KVCache
    let start: Int
    let rows: Range<Int>
    let routing: RoutingRecord?
    let firstRouted: Int
}

/// The residual stream entering each MoE layer's feed-forward block, as one pass over a
/// sequence left it: what a pass that changes only that layer onwards starts from.
public final class ResidualTape: @unchecked Sendable {
    /// Rows of the pass that wrote it.
    public private(set) var tokens = 0
    private(set) var layers: [Int: [Float]] = [:]
    public init() {}

    func store(layer: Int, _ x: UnsafePointer<Float>, rows: Int, hidden: Int) {
        tokens = rows
        layers[layer] = Array(UnsafeBufferPointer(start: x, count: rows * hidden))
    }

    public var storedLayers: [Int] { layers.keys.sorted() }
}

/// REAP's saliency of every (MoE layer, expert) over the tokens that passed: the mean, over the
/// tokens routed to the expert, of its routing weight × the L2 norm of its output.
public final class ExpertSaliency: @unchecked Sendable {
    public let moeLayers: Int
    public let experts: Int
    private var sums: [Double]
    private var counts: [Int]

    public init(moeLayers: Int, experts: Int) {
        self.moeLayers = moeLayers
        self.experts = experts
        sums = Array(repeating: 0, count: moeLayers * experts)
        counts = Array(repeating: 0, count: moeLayers * experts)
    }

    /// Tokens routed to `expert` at the `slot`-th MoE layer.
    public func count(slot: Int, expert: Int) -> Int { counts[slot * experts + expert] }

    /// The saliency of `expert` at the `slot`-th MoE layer; 0 when no token was routed to it.
    public func saliency(slot: Int, expert: Int) -> Double {
        let i = slot * experts + expert
        return counts[i] == 0 ? 0 : sums[i] / Double(counts[i])
    }

    func add(slot: Int, _ d: LanguageModel.Dispatch, expertOut: UnsafePointer<Float>, hidden: Int) {
        for e in 0..<min(d.experts, experts) {
            for a in d.offsets[e]..<d.offsets[e + 1] {
                let row = expertOut + a * hidden
                var norm = 0.0
                for i in 0..<hidden { norm += Double(row[i]) * Double(row[i]) }
                sums[slot * experts + e] += Double(d.weightOf[a]) * norm.squareRoot()
                counts[slot * experts + e] += 1
            }
        }
    }
}

/// Where forward passes spend their time, by phase: seconds, calls and weight bytes streamed.
public final class PhaseProfile: @unchecked Sendable {
    public struct Entry: Sendable {
        public var seconds = 0.0
        public var calls = 0
        public var bytes = 0
    }
    public private(set) var entries: [String: Entry] = [:]
    /// Wall time of whole forward passes.
    public internal(set) var totalSeconds = 0.0

    public init() {}

    func add(_ name: StaticString, nanoseconds: UInt64, bytes: Int) {
        entries["\(name)", default: Entry()].seconds += Double(nanoseconds) / 1e9
        entries["\(name)", default: Entry()].calls += 1
        entries["\(name)", default: Entry()].bytes += bytes
    }

    public func reset() {
        entries = [:]
        totalSeconds = 0
    }
}
