// NekoRouting — the routing analyses of Sources/NekoRouting/README.md over routing traces.
//
// Pure value types and functions: no model, no chat, no screen, no I/O (the callers read and
// write the files). Used live by the chat's routing views and offline by `nekochat routing`.
//
//   RoutingTrace     the routing of a run, columnar (token, layer, rank), with named sequences
//   RoutingStats     the incremental accumulator: add a token in O(L·k²), read figures in O(L·E²)
//   RoutingAnalysis  analyze(trace, minCount:) → RoutingReport (+ .json, Sources/NekoRouting/README.md's document);
//                    the formulas (load, entropy, MaxVio, Jain, random baselines); differences()
//   RoutingCSV       token_index,token_id,layer,rank,expert,weight [,sequence]
//   RoutingSVG       load heat map, co-activation, top-1 flow, per-file shares
//
// Decisions, where the definitions leave a case open (Tests/Reference/routing_reference.py makes the
// same ones; its goldens pin them):
// - A figure whose denominator is zero is null: N = 0 → load, entropy_bits, max_violation, jain and
//   the means; no consecutive pair within a sequence → repeat_top1/repeat_topk; no id with
//   min_count occurrences → specialisation. Counts (coactivation, cross_layer) are never null.
// - Pairs (t − 1, t) never cross a sequence boundary, and a scope started mid-sequence (a reply)
//   pairs only its own tokens.
// - Gates, entropies and weights are stored as Float (what the engine produces); every sum and
//   mean is taken in Double. The goldens agree with the float64 reference to 1e-6.
// - `specialisation` is kept as a running Σ best/occurrences per layer (updated in O(L) per
//   token), so the live figures stay O(L·E²) however many distinct ids a session has seen.
// - The six CSV columns carry no sequence boundaries; `sequenceColumn` adds a seventh so that a
//   CSV read back keeps them. A CSV never carries gates or entropies (their means read back null).
// - The trace checks each record (k distinct experts in range, finite non-increasing weights, the
//   optional fields the trace declares) and throws RoutingError naming the token and layer.
