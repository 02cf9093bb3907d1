#!/usr/bin/env python3
"""Independent reference for the routing analyses of Sources/NekoRouting/README.md (numpy/pandas).

Written from Sources/NekoRouting/README.md's definitions, not from the Swift code: the figures are computed in batch
over a long table with one row per (token, layer, rank), the way an analyst would with pandas.

    # (a) routing of the float64 reference model (nekomind_ref.py), one sequence per --ids
    python routing_reference.py --model DIR --ids 1,2,3 [--ids 4,5 ...] [--min-count N]
    # (b) a routing CSV (token_index,token_id,layer,rank,expert,weight[,sequence])
    python routing_reference.py --csv FILE [--experts E] [--min-count N]
    # (c) compare two documents: counts exactly, floats to --tol; exit 1 with a diff
    python routing_reference.py --compare A.json B.json [--tol 1e-6]
    # write the goldens of Tests/Fixtures/routing/ (deterministic)
    python routing_reference.py --make-goldens [--out DIR]

(a) and (b) print Sources/NekoRouting/README.md's `nekochat routing --json` document. Conventions where Sources/NekoRouting/README.md
leaves a case open (the Swift module NekoRouting follows the same):
  * N = 0 tokens: `load`, `entropy_bits`, `max_violation`, `jain` and the means are null;
  * no consecutive pair (N <= 1, or every sequence one token long): `repeat_top1`/`repeat_topk` null;
  * `specialisation` null when no token id occurs `min_count` times;
  * `shared_gate_mean` null for a layer without a shared gate;
  * `router_entropy_mean` null when the routing does not carry router entropies.
  * sequence names: `--ids` sequences are named "ids 1", "ids 2", ...; a CSV's are "sequence 1",
    "sequence 2", ... (the CSV carries boundaries only with its optional `sequence` column, and no
    names).
A CSV carries neither shared gates nor router entropies, so from (b) `shared_gate_mean` and
`router_entropy_mean` are always null (a note says so on stderr); everything else is recomputed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np
import pandas as pd

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN_DIR = os.path.join(REPO, "Tests", "Fixtures", "routing")


# --------------------------------------------------------------------------------------------
# the routing as tables
# --------------------------------------------------------------------------------------------
class Routing:
    """rows: one per (token, layer, rank): token_index, token_id, sequence, layer, rank, expert,
    weight.  extra: one per (token, layer): token_index, layer, shared_gate (NaN without a gate),
    router_entropy (NaN when absent) -- or None.  names: one per sequence index."""

    def __init__(self, rows: pd.DataFrame, experts: int, names: list, extra: pd.DataFrame | None):
        self.rows, self.E, self.names, self.extra = rows, experts, names, extra


def routing_from_records(records: list, lengths: list, names: list, experts: int) -> Routing:
    """records: per token, per MoE layer {"layer","experts","weights"[,"shared_gate"],"router_entropy"}."""
    rows, extra = [], []
    seq_of = np.repeat(np.arange(len(lengths)), lengths)
    for t, per in enumerate(records):
        for r in per:
            for rank, (e, w) in enumerate(zip(r["experts"], r["weights"])):
                rows.append((t, None, int(seq_of[t]), r["layer"], rank, e, w))
            extra.append((t, r["layer"], r.get("shared_gate", math.nan), r.get("router_entropy", math.nan)))
    df = pd.DataFrame(rows, columns=["token_index", "token_id", "sequence", "layer", "rank", "expert", "weight"])
    ex = pd.DataFrame(extra, columns=["token_index", "layer", "shared_gate", "router_entropy"])
    return Routing(df, experts, names, ex)


def routing_from_csv(path: str, experts: int | None) -> Routing:
    df = pd.read_csv(path)
    base = ["token_index", "token_id", "layer", "rank", "expert", "weight"]
    if list(df.columns[:6]) != base or len(df.columns) not in (6, 7) or (
            len(df.columns) == 7 and df.columns[6] != "sequence"):
        sys.exit(f"error: {path}: columns {list(df.columns)} are not {base} (+ optional sequence)")
    if len(df) == 0:
        sys.exit(f"error: {path}: no rows")
    if "sequence" not in df.columns:
        df["sequence"] = 0
    df = df[["token_index", "token_id", "sequence", "layer", "rank", "expert", "weight"]]
    nseq = int(df["sequence"].max()) + 1
    E = experts if experts is not None else int(df["expert"].max()) + 1
    print("note: a CSV carries no shared gates or router entropies: shared_gate_mean and "
          "router_entropy_mean are null", file=sys.stderr)
    return Routing(df, E, [f"sequence {i + 1}" for i in range(nseq)], None)


# --------------------------------------------------------------------------------------------
# the analyses (Sources/NekoRouting/README.md, per MoE layer over N tokens, E experts, k per token)
# --------------------------------------------------------------------------------------------
def analyze(R: Routing, min_count: int = 10) -> dict:
    rows, E = R.rows, R.E
    tok = rows.drop_duplicates("token_index").sort_values("token_index")
    N = len(tok)
    assert (tok["token_index"].to_numpy() == np.arange(N)).all(), "token_index must be 0..N-1"
    layers = sorted(int(x) for x in rows["layer"].unique())
    k = int(rows.groupby(["token_index", "layer"]).size().max())
    ids = tok["token_id"].to_numpy()
    seq = tok["sequence"].to_numpy()
    same_seq = seq[1:] == seq[:-1]          # pair (t-1, t) counts iff within one sequence
    n_pairs = int(same_seq.sum())

    def chosen_matrix(r):                   # (N, E) 0/1: token t chose e
        m = np.zeros((N, E), dtype=np.int64)
        m[r["token_index"].to_numpy(), r["expert"].to_numpy()] = 1
        return m

    top1 = {}
    out_layers = []
    for L in layers:
        r = rows[rows["layer"] == L]
        chosen = chosen_matrix(r)
        counts = chosen.sum(axis=0)
        t1 = r[r["rank"] == 0].sort_values("token_index")["expert"].to_numpy()
        top1[L] = t1
        f = {"layer": L}
        if N:
            load = counts / (N * k)
            nz = load[load > 0]
            f["load"] = [float(x) for x in load]
            f["entropy_bits"] = float(0.0 - (nz * np.log2(nz)).sum())   # 0.0 - x: never -0.0
            f["max_violation"] = float((load.max() - 1.0 / E) * E)
            f["jain"] = float(1.0 / (E * (load ** 2).sum()))
        else:
            f.update(load=None, entropy_bits=None, max_violation=None, jain=None)
        if n_pairs:
            f["repeat_top1"] = float((t1[1:] == t1[:-1])[same_seq].mean())
            overlap = (chosen[1:] & chosen[:-1]).any(axis=1)
            f["repeat_topk"] = float(overlap[same_seq].mean())
        else:
            f["repeat_top1"] = f["repeat_topk"] = None
        f["coactivation"] = (chosen.T @ chosen).astype(int).tolist()
        ct = pd.crosstab(pd.Series(ids, name="id"), pd.Series(t1, name="top1"))
        occurrences = ct.sum(axis=1)
        q = occurrences >= min_count
        f["specialisation"] = float((ct.max(axis=1)[q] / occurrences[q]).mean()) if q.any() else None
        f["shared_gate_mean"] = f["router_entropy_mean"] = None
        if R.extra is not None and N:
            x = R.extra[R.extra["layer"] == L]
            if x["shared_gate"].notna().all():
                f["shared_gate_mean"] = float(x["shared_gate"].mean())
            if x["router_entropy"].notna().all():
                f["router_entropy_mean"] = float(x["router_entropy"].mean())
        out_layers.append(f)

    cross = []
    for a, b in zip(layers, layers[1:]):
        m = np.zeros((E, E), dtype=np.int64)
        np.add.at(m, (top1[a], top1[b]), 1)
        cross.append({"from": a, "to": b, "counts": m.tolist()})

    by_file = []
    for i, name in enumerate(R.names):
        part = rows[rows["sequence"] == i]
        n = part["token_index"].nunique()
        loads = []
        for L in layers:
            c = np.bincount(part[part["layer"] == L]["expert"].to_numpy(), minlength=E)
            loads.append([float(x) for x in c / (n * k)] if n else None)
        by_file.append({"file": name, "tokens": int(n), "load": loads})

    # hot set: the fewest (layer, expert) slots whose routed tokens cover 50/90/99 % of all
    counts = np.sort(np.bincount(rows["layer"].map({L: i for i, L in enumerate(layers)}).to_numpy() * E
                                 + rows["expert"].to_numpy(), minlength=len(layers) * E))[::-1]
    total = int(counts.sum())
    cum = np.cumsum(counts)
    def cover(p):
        return int(np.searchsorted(cum, p * total - 1e-9) + 1) if total else 0
    hot = {"slots": len(layers) * E, "cover_50": cover(0.5), "cover_90": cover(0.9), "cover_99": cover(0.99)}

    return {"tokens": N, "experts": E, "top_k": k, "layers": out_layers, "cross_layer": cross,
            "by_file": by_file, "hot_set": hot}


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------
def differences(a, b, tol: float, path: str = "") -> list:
    at = path or "(top)"
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a is b else [f"{at}: {a!r} vs {b!r}"]
    if isinstance(a, int) and isinstance(b, int):
        return [] if a == b else [f"{at}: count {a} vs {b}"]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= tol else [f"{at}: {a!r} vs {b!r} (differ by {abs(a - b):.3g} > {tol})"]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{at}: {len(a)} items vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, tol, f"{path}[{i}]")]
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{at}: keys {list(a)} vs {list(b)}"]
        return [d for key in a for d in differences(a[key], b[key], tol, f"{path}.{key}" if path else key)]
    if a is None and b is None:
        return []
    if type(a) is type(b) and a == b:
        return []
    return [f"{at}: {json.dumps(a)[:80]} vs {json.dumps(b)[:80]}"]


def load_document(path: str) -> dict:
    with open(path) as f:
        d = json.load(f)
    return d["expected"] if "expected" in d and "routing" in d else d   # a golden: its expected


# --------------------------------------------------------------------------------------------
# the model's routing
# --------------------------------------------------------------------------------------------
def model_routing(model_dir: str, sequences: list, round_digits: int | None = None):
    """Runs the float64 reference over each sequence on its own (positions from 0) and returns
    (records per token, moe layers, experts, top_k)."""
    import torch
    sys.path.insert(0, HERE)
    import nekomind_ref as ref
    torch.set_num_threads(2)
    model = ref.NekoMindRef.from_dir(model_dir, log=lambda m: None)
    records, min_gap = [], math.inf
    for ids in sequences:
        _, rec = model.forward(ids)
        records += ref.routing_records(model.cfg, rec, extended=True)
        k = model.cfg.num_experts_per_tok
        for L in rec:   # gaps p(1)-p(2), ..., p(k)-p(k+1) of the sorted router probabilities
            top = torch.sort(rec[L]["probs"], dim=-1, descending=True).values[:, :k + 1]
            if top.shape[1] > 1:
                min_gap = min(min_gap, float((top[:, :-1] - top[:, 1:]).min()))
    model_routing.min_gap = min_gap
    if round_digits is not None:   # stable bytes in the goldens: 10 significant digits
        def rd(x):
            return float(f"{x:.{round_digits}g}")
        for per in records:
            for r in per:
                r["weights"] = [rd(w) for w in r["weights"]]
                for key in ("shared_gate", "router_entropy"):
                    if key in r:
                        r[key] = rd(r[key])
    return records, model.cfg.moe_layers, model.cfg.num_experts, model.cfg.num_experts_per_tok


def parse_ids(text: str) -> list:
    return [int(s) for s in text.split(",") if s.strip()]


# --------------------------------------------------------------------------------------------
# goldens
# --------------------------------------------------------------------------------------------
# Each: a model, a seed for its id sequences, a pool of ids (some frequent, a tail seen once or
# twice) so that repeat rates, co-activation and specialisation (min_count 3) are all non-trivial.
GOLDENS = [
    dict(name="neko_mini_bf16", note="shared expert + sigmoid gate, top-2 of 8, MoE layers 2-3", seed=11),
    dict(name="no_shared_no_qknorm_step2", note="no shared gate, top-2 of 8, norm_topk_prob, MoE layers 1, 3", seed=12),
    dict(name="sharded3_bf16_normtopk", note="top-3 of 8, norm_topk_prob, shared gate, MoE layers 1-3", seed=13),
]
GOLDEN_MIN_COUNT = 3
GOLDEN_LENGTHS = (40, 37, 43)
GOLDEN_MARGIN = 1e-4


def golden_sequences(seed: int, vocab: int) -> list:
    rng = np.random.default_rng(seed)
    pool = rng.choice(np.arange(3, vocab), size=24, replace=False)
    p = 1.0 / np.arange(1, 25) ** 1.1
    p /= p.sum()
    seqs = []
    for n in GOLDEN_LENGTHS:
        body = [int(x) for x in rng.choice(pool, size=n - 1, p=p)]
        body[5:9] = [body[0]] * 4            # a run of one id: consecutive repeats
        seqs.append([1] + body)             # BOS first, as score --file encodes
    return seqs


def compact_json(obj, indent=1) -> str:
    """json.dumps with arrays of scalars kept on one line (readable, diffable)."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def write_goldens(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for g in GOLDENS:
        model_dir = os.path.join(REPO, "Tests", "Fixtures", "engine", g["name"])
        with open(os.path.join(model_dir, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        # Seeds are tried until every routing choice (and the order of the chosen) is clear by
        # GOLDEN_MARGIN, so a float32 engine routes exactly as the float64 reference did.
        seed = g["seed"]
        while True:
            seqs = golden_sequences(seed, vocab)
            records, moe, E, k = model_routing(model_dir, seqs, round_digits=10)
            if model_routing.min_gap > GOLDEN_MARGIN:
                break
            seed += 100
        names = [f"ids {i + 1}" for i in range(len(seqs))]
        R = routing_from_records(records, [len(s) for s in seqs], names, E)
        R.rows["token_id"] = np.repeat(np.concatenate(seqs), len(moe) * k)
        expected = analyze(R, GOLDEN_MIN_COUNT)
        gated = [r["layer"] for r in records[0] if "shared_gate" in r]
        head = {"name": g["name"], "description": g["note"], "seed": seed,
                "model": f"Tests/Fixtures/engine/{g['name']}", "min_count": GOLDEN_MIN_COUNT,
                "moe_layers": moe, "experts": E, "top_k": k, "gated_layers": gated,
                "sequences": [{"name": n, "ids": s} for n, s in zip(names, seqs)]}
        lines = ["{"]
        for key, v in head.items():
            lines.append(f" {json.dumps(key)}: {json.dumps(v)},")
        lines.append(' "routing": [')
        lines.append(",\n".join("  " + json.dumps(per) for per in records))
        lines.append(" ],")
        lines.append(' "expected": ' + compact_json(expected).replace("\n", "\n ") + "\n}\n")
        with open(os.path.join(out_dir, g["name"] + ".json"), "w") as f:
            f.write("\n".join(lines))
        csv = R.rows[["token_index", "token_id", "layer", "rank", "expert", "weight", "sequence"]]
        csv.to_csv(os.path.join(out_dir, g["name"] + ".csv"), index=False, lineterminator="\n",
                   float_format=None)
        print(f"{g['name']}: seed {seed}, min router gap {model_routing.min_gap:.2e}, {len(records)} tokens, layers {moe}, E {E}, k {k}, gated {gated}", file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--model", help="model directory (runs nekomind_ref.py in float64)")
    mode.add_argument("--csv", help="a routing CSV")
    mode.add_argument("--compare", nargs=2, metavar=("A", "B"), help="two routing JSON documents (or goldens)")
    mode.add_argument("--make-goldens", action="store_true", help="write Tests/Fixtures/routing/")
    ap.add_argument("--ids", action="append", default=[], help="comma-separated ids: one sequence (repeatable)")
    ap.add_argument("--min-count", type=int, default=10)
    ap.add_argument("--experts", type=int, help="E for --csv (default: largest expert + 1)")
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--out", default=GOLDEN_DIR)
    a = ap.parse_args(argv)
    if a.min_count < 1:
        ap.error("--min-count must be at least 1")
    if a.compare:
        diff = differences(load_document(a.compare[0]), load_document(a.compare[1]), a.tol)
        for d in diff[:50]:
            print(d)
        if len(diff) > 50:
            print(f"... and {len(diff) - 50} more")
        print(f"{len(diff)} differences" if diff else "equal", file=sys.stderr)
        return 1 if diff else 0
    if a.make_goldens:
        write_goldens(a.out)
        return 0
    if a.model:
        if not a.ids:
            ap.error("--model needs at least one --ids")
        seqs = [parse_ids(s) for s in a.ids]
        if any(not s for s in seqs):
            ap.error("an --ids sequence is empty")
        records, moe, E, k = model_routing(a.model, seqs)
        R = routing_from_records(records, [len(s) for s in seqs], [f"ids {i + 1}" for i in range(len(seqs))], E)
        R.rows["token_id"] = np.repeat(np.concatenate(seqs), len(moe) * k)
    else:
        R = routing_from_csv(a.csv, a.experts)
    print(json.dumps(analyze(R, a.min_count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
