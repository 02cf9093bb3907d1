import Foundation
import NekoKernels

/// Integer scratch memory grown on demand (index lists the C jobs read while a phase runs).
final class IndexScratch<Element>: @unchecked Sendable {
    private(set) var capacity = 0
    private(set) var pointer = UnsafeMutablePointer<Element>.allocate(capacity: 1)
    deinit { pointer.deallocate() }

    func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = max(count, capacity * 2)
            pointer = .allocate(capacity: capacity)
        }
        return pointer
    }
}

extension NekoMindModel {
    /// `out = down(silu(gate(h)) · up(h))` for the `n` rows of ctx.hInput: a gate/up phase, then
    /// a down phase. Writes ctx.act.
    func denseMLP(_ w: MLPWeights, count n: Int, out y: UnsafeMutablePointer<Float>, ctx: ForwardContext) {
        let inter = w.gate.rows
        let act = ctx.act.reserve(n * inter)              // (n, intermediate)
        ctx.jobs.add(w.gate, up: w.up, input: ctx.hInput, out: act, ldy: inter)
        ctx.runPhase("mlp_gate_up")
        ctx.actInput.set(act, rows: n, ldx: inter, cols: inter)
        ctx.jobs.add(w.down, input: ctx.actInput, out: y, ldy: config.hiddenSize)
        ctx.runPhase("mlp_down")
    }

    /// Sparse MoE over the `n` rows of ctx.hInput (= ctx.h): router softmax → top-k (ties: lower
    /// index) → optional renormalisation → Σ weight · expert(h) + σ(h·g) · shared(h).
    /// Phases: the router (on the calling thread when small), the gate/up of every chosen expert
    /// and of the shared expert together, then all the down projections together.
    func moe(_ w: MoEWeights, layer l: Int, slot: Int, count n: Int, segments: [Segment],
             out y: UnsafeMutablePointer<Float>, ctx: ForwardContext) {
        let hidden = config.hiddenSize, experts = w.experts.count, k = config.numExpertsPerTok
        let h = UnsafePointer(ctx.h.pointer)              // (n, hidden): the normed input
        let probs = ctx.probs.reserve(n * experts)        // (n, experts)
        ctx.jobs.add(w.router, input: ctx.hInput, out: probs, ldy: experts)
        if n * experts * hidden < (1 << 20) {
            ctx.timed("router") { ctx.jobs.runSerially() }
            ctx.jobs.removeAll()
        } else {
            ctx.runPhase("router")
        }
        for t in 0..<n { Kernels.softmax(probs + t * experts, experts) }
        ctx.dump("router_probs", l, probs, n * experts)

        let gates = ctx.gates.reserve(n)                  // (n): σ(h · shared_expert_gate)
        if let g = w.sharedGate {
            g.withUnsafeBufferPointer { gp in
                for t in 0..<n { gates[t] = 1 / (1 + exp(-Kernels.dot(h + t * hidden, gp.baseAddress!, hidden))) }
            }
        }

        // Top-k per row, then the (row, expert) assignments grouped by expert.
        let chosen = ctx.chosen.reserve(n * k)            // (n, k): expert ids, descending weight
        let chosenWeights = ctx.chosenWeights.reserve(n * k)  // (n, k)
        let counts = ctx.counts.reserve(3 * experts + 1)  // (experts) counts, (experts + 1) offsets, (experts) taken
        let offsets = counts + experts, taken = offsets + experts + 1
        counts.initialize(repeating: 0, count: experts)
        taken.initialize(repeating: 0, count: experts)
        for t in 0..<n {
            let p = probs + t * experts
            var sum: Float = 0
            for j in 0..<k {
                var best = -1
                for e in 0..<experts where taken[e] == 0 {
                    if best < 0 || p[e] > p[best] { best = e }  // strict: the lower index wins ties
                }
                taken[best] = 1
                chosen[t * k + j] = Int32(best)
                chosenWeights[t * k + j] = p[best]
                sum += p[best]
                counts[best] += 1
            }
            for j in 0..<k { taken[Int(chosen[t * k + j])] = 0 }
            if config.normTopkProb {
                for j in 0..<k { chosenWeights[t * k + j] /= sum }
            }
        }
        ctx.timed("record_routing") {
            record(slot: slot, probs: probs, experts: experts, chosen: chosen, weights: chosenWeights,
                   gates: w.sharedGate == nil ? nil : gates, segments: segments)
        }

        let assignments = n * k
        offsets[0] = 0
        for e in 0..<experts { offsets[e + 1] = offsets[e] + counts[e] }
        let rowOf = ctx.rowOf.reserve(assignments)        // (A): the row each assignment reads
        let identity = ctx.identity.reserve(assignments)  // (A): 0, 1, 2, …
        let weightOf = ctx.weightOf.reserve(assignments)  // (A)
        let cursor = taken                                // reused: (experts) next slot per expert
        for e in 0..<experts { cursor[e] = offsets[e] }
        for t in 0..<n {
            for j in 0..<k {
                let e = Int(chosen[t * k + j]), a = cursor[e]
                cursor[e] += 1
                rowOf[a] = Int32(t)
                weightOf[a] = chosenWeights[t * k + j]
            }
        }
        for a in 0..<assignments { identity[a] = Int32(a) }

        // gate/up of every chosen expert and of the shared expert: one phase.
        let inter = w.experts.first?.gate.rows ?? 0
        let act = ctx.act.reserve(assignments * inter)    // (A, moeIntermediate)
        for e in 0..<experts where counts[e] > 0 {
            ctx.jobs.add(w.experts[e].gate, up: w.experts[e].up, input: ctx.hInput,
                         inputRows: rowOf + offsets[e], count: counts[e], out: act + offsets[e] * inter, ldy: inter)
        }
        var sharedAct: UnsafeMutablePointer<Float>?
        if let shared = w.shared {
            let sInter = shared.gate.rows
            let a = ctx.sharedAct.reserve(n * sInter)     // (n, sharedIntermediate)
            ctx.jobs.add(shared.gate, up: shared.up, input: ctx.hInput, out: a, ldy: sInter)
            sharedAct = a
        }
        ctx.runPhase("moe_gate_up")

        // Every down projection: one phase.
        ctx.actInput.set(act, rows: assignments, ldx: inter, cols: inter)
        let expertOut = ctx.expertOut.reserve(assignments * hidden)  // (A, hidden)
        for e in 0..<experts where counts[e] > 0 {
            ctx.jobs.add(w.experts[e].down, input: ctx.actInput, inputRows: identity + offsets[e],
                         count: counts[e], out: expertOut + offsets[e] * hidden, ldy: hidden)
        }
        let sharedOut = ctx.sharedOut.reserve(n * hidden)           // (n, hidden)
        if let shared = w.shared, let sharedAct {
            ctx.sharedInput.set(sharedAct, rows: n, ldx: shared.gate.rows, cols: shared.gate.rows)
            ctx.jobs.add(shared.down, input: ctx.sharedInput, out: sharedOut, ldy: hidden)
        }
        ctx.runPhase("moe_down")

        // y = Σ weight · expert output (experts of a row in ascending index order), + gated shared.
        y.initialize(repeating: 0, count: n * hidden)
        for a in 0..<assignments {
            Kernels.axpy(y + Int(rowOf[a]) * hidden, weightOf[a], expertOut + a * hidden, hidden)
        }
        ctx.dump("expert_out", l, y, n * hidden)
        if w.shared != nil {
            if w.sharedGate != nil {
                for t in 0..<n {
                    let row = sharedOut + t * hidden
                    for i in 0..<hidden { row[i] *= gates[t] }
                }
                ctx.dump("shared_gate", l, gates, n)
            }
            ctx.dump("shared_out", l, sharedOut, n * hidden)
            Kernels.axpy(y, 1, sharedOut, n * hidden)
        }
    }

    /// Writes each row's choice into its segment's routing record: experts and weights, the
    /// shared gate, and the router entropy −Σ p·log2 p (summed in double).
    func record(slot: Int, probs: UnsafePointer<Float>, experts: Int, chosen: UnsafePointer<Int32>,
                weights: UnsafePointer<Float>, gates: UnsafePointer<Float>?, segments: [Segment]) {
        let k = config.numExpertsPerTok
        for s in segments {
            guard let routing = s.routing else { continue }
            for r in s.rows {
                let p = probs + r * experts
                var entropy = 0.0
                for e in 0..<experts where p[e] > 0 { entropy -= Double(p[e]) * log2(Double(p[e])) }
                routing.set(token: s.firstRouted + r - s.rows.lowerBound, slot: slot,
                            experts: chosen + r * k, weights: weights + r * k,
                            sharedGate: gates.map { $0[r] }, entropy: Float(entropy))
            }
        }
    }
}

extension MLPWeights {
    /// Bytes of the three matrices in their format.
    var byteCount: Int { gate.byteCount + up.byteCount + down.byteCount }
}
