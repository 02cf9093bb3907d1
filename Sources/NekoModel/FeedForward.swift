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

extension LanguageModel {
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

    /// Sparse MoE over the `n` rows of `h` (prepared as ctx.hInput): route → dispatch → experts →
    /// combine, then the shared expert (gated or not) is added unless `interventions` leave it
    /// out. Writes `y` (n, hidden).
    func moe(_ w: MoEWeights, input h: UnsafePointer<Float>, layer l: Int, slot: Int, count n: Int,
             segments: [Segment], interventions: Interventions, out y: UnsafeMutablePointer<Float>, ctx: ForwardContext) {
        let routes = route(w, input: h, layer: l, count: n, interventions: interventions, ctx: ctx)
        ctx.timed("record_routing") { record(slot: slot, routes, count: n, segments: segments) }
        let dispatch = Dispatch(routes, count: n, experts: w.experts.count, ctx: ctx)
        let (expertOut, sharedOut) = runExperts(w, dispatch, count: n, shared: interventions.sharedExpert, ctx: ctx)
        ctx.saliency?.add(slot: slot, dispatch, expertOut: expertOut, hidden: config.hiddenSize)
        combine(dispatch, expertOut: expertOut, count: n, out: y)
        ctx.dump("expert_out", l, y, n * config.hiddenSize)
        guard let sharedOut else { return }
        let hidden = config.hiddenSize
        if let gates = routes.sharedGates {
            for t in 0..<n { Kernels.scale(sharedOut + t * hidden, gates[t], hidden) }
            ctx.dump("shared_gate", l, gates, n)
        }
        ctx.dump("shared_out", l, sharedOut, n * hidden)
        Kernels.axpy(y, 1, sharedOut, n * hidden)
    }

    /// One MoE layer's routing of `n` rows: every expert's probability, the k chosen per row and
    /// their weights, and the shared expert's gate.
    struct Routes {
        let k: Int
        let experts: Int
        /// (n, experts): softmax over all the router's logits (what the router entropy is over).
        let probs: UnsafeMutablePointer<Float>
        /// (n, k): the chosen experts, in descending weight order (ties: lower index first).
        let chosen: UnsafeMutablePointer<Int32>
        /// (n, k): the weights the experts' outputs are summed with.
        let weights: UnsafeMutablePointer<Float>
        /// (n): σ(h · shared_expert_gate); nil without a gated shared expert.
        let sharedGates: UnsafeMutablePointer<Float>?
    }

    /// The router: logits h·Wᵣᵀ, their softmax, and the family's rule for the k chosen and
    /// their weights (`RouterRule`), under `interventions`: masked experts' logits are −∞ before
    /// the softmax and the selection, forced experts take the first slots, N replaces k.
    func route(_ w: MoEWeights, input h: UnsafePointer<Float>, layer l: Int, count n: Int,
               interventions: Interventions, ctx: ForwardContext) -> Routes {
        let hidden = config.hiddenSize, experts = w.experts.count, k = interventions.expertsPerToken(config)
        let masked = interventions.mask[l] ?? [], forced = interventions.force[l] ?? []
        let logits = ctx.routerLogits.reserve(n * experts)  // (n, experts)
        ctx.jobs.add(w.router, input: ctx.hInput, out: logits, ldy: experts)
        if n * experts * hidden < (1 << 20) {
            ctx.timed("router") { ctx.jobs.runSerially() }
            ctx.jobs.removeAll()
        } else {
            ctx.runPhase("router")
        }
        for t in 0..<n { for e in masked { logits[t * experts + e] = -.infinity } }
        let probs = ctx.probs.reserve(n * experts)          // (n, experts)
        probs.update(from: logits, count: n * experts)
        for t in 0..<n { Kernels.softmax(probs + t * experts, experts) }
        ctx.dump("router_probs", l, probs, n * experts)

        let chosen = ctx.chosen.reserve(n * k)              // (n, k)
        let weights = ctx.chosenWeights.reserve(n * k)      // (n, k)
        let taken = ctx.taken.reserve(experts)              // (experts): chosen already (or masked) in this row
        taken.initialize(repeating: false, count: experts)
        for e in masked { taken[e] = true }
        let byLogits = config.router == .topKThenSoftmax
        for t in 0..<n {
            // Selection: the forced experts, then the best by probability (or by logit) up to k,
            // the lower index winning ties; masked experts are never candidates.
            let score = byLogits ? UnsafePointer(logits + t * experts) : UnsafePointer(probs + t * experts)
            for (j, e) in forced.enumerated() {
                taken[e] = true
                chosen[t * k + j] = Int32(e)
            }
            for j in forced.count..<k {
                var best = -1
                for e in 0..<experts where !taken[e] {
                    if best < 0 || score[e] > score[best] { best = e }
                }
                taken[best] = true
                chosen[t * k + j] = Int32(best)
            }
            for j in 0..<k { taken[Int(chosen[t * k + j])] = false }
            for e in masked { taken[e] = true }
            // Weights.
            let row = weights + t * k
            switch config.router {
            case .softmaxThenTopK:
                var sum: Float = 0
                for j in 0..<k {
                    row[j] = probs[t * experts + Int(chosen[t * k + j])]
                    sum += row[j]
                }
                if config.normTopkProb { for j in 0..<k { row[j] /= sum } }
            case .topKThenSoftmax:
                for j in 0..<k { row[j] = logits[t * experts + Int(chosen[t * k + j])] }
                Kernels.softmax(row, k)
            }
            // Forced experts may outrank none of the others: the record keeps descending weight
            // (ties: lower index first), so sort the row's k pairs.
            if !forced.isEmpty { sortByWeight(chosen + t * k, row, k) }
        }

        var gates: UnsafeMutablePointer<Float>?
        if let g = w.sharedGate, interventions.sharedExpert {
            let out = ctx.gates.reserve(n)                  // (n)
            g.withUnsafeBufferPointer { gp in
                for t in 0..<n { out[t] = 1 / (1 + exp(-Kernels.dot(h + t * hidden, gp.baseAddress!, hidden))) }
            }
            gates = out
        }
        return Routes(k: k, experts: experts, probs: probs, chosen: chosen, weights: weights, sharedGates: gates)
    }

    /// Sorts `k` (expert, weight) pairs by descending weight, the lower expert first on ties
    /// (an insertion sort: k is small).
    func sortByWeight(_ experts: UnsafeMutablePointer<Int32>, _ weights: UnsafeMutablePointer<Float>, _ k: Int) {
        guard k > 1 else { return }
        for i in 1..<k {
            let e = experts[i], w = weights[i]
            var j = i
            while j > 0 && (weights[j - 1] < w || (weights[j - 1] == w && experts[j - 1] > e)) {
                experts[j] = experts[j - 1]
                weights[j] = weights[j - 1]
                j -= 1
            }
            experts[j] = e
            weights[j] = w
        }
    }

    /// The (row, expert) assignments of one MoE layer grouped by expert, so that each expert's
    /// matrices see all its rows at once (a counting sort of the routes).
    struct Dispatch {
        /// A = n · k assignments.
        let assignments: Int
        let experts: Int
        /// (experts): rows routed to each expert.
        let counts: UnsafeMutablePointer<Int>
        /// (experts + 1): where each expert's assignments start.
        let offsets: UnsafeMutablePointer<Int>
        /// (A): the row each assignment reads, grouped by expert (rows ascending within an expert).
        let rowOf: UnsafeMutablePointer<Int32>
        /// (A): each assignment's weight.
        let weightOf: UnsafeMutablePointer<Float>
        /// (A): 0, 1, 2, … (the down projections read the activations in assignment order).
        let identity: UnsafeMutablePointer<Int32>

        init(_ routes: Routes, count n: Int, experts: Int, ctx: ForwardContext) {
            let k = routes.k
            assignments = n * k
            self.experts = experts
            counts = ctx.counts.reserve(experts)
            offsets = ctx.offsets.reserve(experts + 1)
            let cursor = ctx.cursor.reserve(experts)        // (experts): the next free slot of each expert
            counts.initialize(repeating: 0, count: experts)
            for a in 0..<n * k { counts[Int(routes.chosen[a])] += 1 }
            offsets[0] = 0
            for e in 0..<experts { offsets[e + 1] = offsets[e] + counts[e] }
            cursor.update(from: offsets, count: experts)
            rowOf = ctx.rowOf.reserve(assignments)
            weightOf = ctx.weightOf.reserve(assignments)
            identity = ctx.identity.reserve(assignments)
            for t in 0..<n {
                for j in 0..<k {
                    let e = Int(routes.chosen[t * k + j]), a = cursor[e]
                    cursor[e] += 1
                    rowOf[a] = Int32(t)
                    weightOf[a] = routes.weights[t * k + j]
                }
            }
            for a in 0..<assignments { identity[a] = Int32(a) }
        }
    }

    /// Every chosen expert on its rows, and the shared expert on all rows (when `shared`): one
    /// phase for all the gate/up products, one for all the down products. Returns each
    /// assignment's output (A, hidden) and the shared expert's (n, hidden), ungated.
    func runExperts(_ w: MoEWeights, _ d: Dispatch, count n: Int, shared useShared: Bool,
                    ctx: ForwardContext) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?) {
        let hidden = config.hiddenSize
        let inter = w.experts.first?.gate.rows ?? 0
        let act = ctx.act.reserve(d.assignments * inter)      // (A, moeIntermediate)
        for e in 0..<d.experts where d.counts[e] > 0 {
            ctx.jobs.add(w.experts[e].gate, up: w.experts[e].up, input: ctx.hInput,
                         inputRows: d.rowOf + d.offsets[e], count: d.counts[e], out: act + d.offsets[e] * inter, ldy: inter)
        }
        var sharedAct: UnsafeMutablePointer<Float>?
        if let shared = w.shared, useShared {
            let a = ctx.sharedAct.reserve(n * shared.gate.rows)  // (n, sharedIntermediate)
            ctx.jobs.add(shared.gate, up: shared.up, input: ctx.hInput, out: a, ldy: shared.gate.rows)
            sharedAct = a
        }
        ctx.runPhase("moe_gate_up")

        ctx.actInput.set(act, rows: d.assignments, ldx: inter, cols: inter)
        let expertOut = ctx.expertOut.reserve(d.assignments * hidden)  // (A, hidden)
        for e in 0..<d.experts where d.counts[e] > 0 {
            ctx.jobs.add(w.experts[e].down, input: ctx.actInput, inputRows: d.identity + d.offsets[e],
                         count: d.counts[e], out: expertOut + d.offsets[e] * hidden, ldy: hidden)
        }
        var sharedOut: UnsafeMutablePointer<Float>?
        if let shared = w.shared, useShared, let sharedAct {
            let out = ctx.sharedOut.reserve(n * hidden)        // (n, hidden)
            ctx.sharedInput.set(sharedAct, rows: n, ldx: shared.gate.rows, cols: shared.gate.rows)
            ctx.jobs.add(shared.down, input: ctx.sharedInput, out: out, ldy: hidden)
            sharedOut = out
        }
        ctx.runPhase("moe_down")
        return (expertOut, sharedOut)
    }

    /// y[t] = Σ weight · expert output over row t's assignments (in ascending expert order).
    func combine(_ d: Dispatch, expertOut: UnsafePointer<Float>, count n: Int, out y: UnsafeMutablePointer<Float>) {
        let hidden = config.hiddenSize
        y.initialize(repeating: 0, count: n * hidden)
        for a in 0..<d.assignments {
            Kernels.axpy(y + Int(d.rowOf[a]) * hidden, d.weightOf[a], expertOut + a * hidden, hidden)
        }
    }

    /// Writes each row's choice into its segment's routing record: experts and weights, the
    /// shared gate, and the router entropy −Σ p·log2 p (summed in double).
    func record(slot: Int, _ routes: Routes, count n: Int, segments: [Segment]) {
        let k = routes.k, experts = routes.experts
        for s in segments {
            guard let routing = s.routing else { continue }
            for r in s.rows {
                let p = routes.probs + r * experts
                var entropy = 0.0
                for e in 0..<experts where p[e] > 0 { entropy -= Double(p[e]) * log2(Double(p[e])) }
                routing.set(token: s.firstRouted + r - s.rows.lowerBound, slot: slot,
                            experts: routes.chosen + r * k, weights: routes.weights + r * k,
                            sharedGate: routes.sharedGates.map { $0[r] }, entropy: Float(entropy))
            }
        }
    }
}

extension MLPWeights {
    /// Bytes of the three matrices in their format.
    var byteCount: Int { gate.byteCount + up.byteCount + down.byteCount }
}
