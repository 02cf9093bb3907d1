#!/usr/bin/env python3
"""interventions.json beside some engine fixtures: what routing interventions must produce.

For each fixture below and each case (Sources/NekoRouting/README.md "Interventions": masked
experts, forced experts, N experts per token, no shared expert), one forward pass over the
fixture's prompt records

  nll       -log_softmax(logits[t])[prompt[t+1]] for every prediction of the prompt
  logits    the last position's logits
  routing   per prompt token, per MoE layer: experts and weights in descending weight order
  margin    the smallest gap between adjacent selection scores that decided a choice (must stay
            above 1e-4 so that float32 picks the same experts)

and ablation.json beside two of them: what `nekochat routing ablate` must print for the prompt
(baseline mean NLL; per MoE layer and expert the mean NLL with the expert masked, its share of
routed tokens and REAP's saliency; per MoE layer the mean NLL without its shared expert).

References:
  * NekoMind fixtures: nekomind_ref.py (float64), whose router takes the interventions as its
    attributes mask / force / top_k / shared;
  * family fixtures: transformers' own classes (float32), the router's logits masked to -inf by
    wrapping the F.linear the modeling file calls (the router's rule then runs as transformers
    wrote it), N set as the router's top_k, the shared expert's output replaced by zeros by a
    forward hook. (Forcing is not expressible without rewriting transformers' router, so the
    family cases mask, change N and drop the shared expert; nekomind_ref covers forcing.)

    /work/venv/bin/python Tests/Reference/make_intervention_fixtures.py   (a few seconds)

CI never runs it (no torch there); the JSON it writes is committed.
"""
from __future__ import annotations

import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nekomind_ref as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402

ENGINE = os.path.join(os.path.dirname(HERE), "Fixtures", "engine")
MIN_MARGIN = 1e-4

NEKOMIND_CASES = {
    # top-2 of 8, shared expert with a gate, norm_topk_prob false, MoE layers 2 and 3
    "neko_mini_bf16": [
        {"mask": {"2": [1, 6]}},
        {"force": {"3": [0]}},
        {"force": {"2": [4, 5]}, "mask": {"3": [6]}},
        {"top_k": 1},
        {"top_k": 5, "mask": {"2": [0, 1, 2]}},
        {"shared": False},
        {"mask": {"3": [3]}, "force": {"3": [7]}, "top_k": 3, "shared": False},
    ],
    # top-3 of 8, norm_topk_prob true, MoE layers 1-3
    "sharded3_bf16_normtopk": [
        {"mask": {"1": [0, 1, 2, 3]}},
        {"force": {"2": [7], "3": [0, 1]}},
        {"top_k": 2, "force": {"1": [5]}},
        {"shared": False, "mask": {"3": [2]}},
    ],
}

# routing ablate's reference numbers (ablation.json)
ABLATION = ["neko_mini_bf16", "sharded3_bf16_normtopk"]

FAMILY_CASES = {
    "hf_mixtral_swa": [{"mask": {"0": [3]}}, {"top_k": 1}, {"top_k": 3, "mask": {"1": [1, 2]}}],
    "hf_qwen2_moe": [{"shared": False}, {"mask": {"3": [1, 3]}, "shared": False}, {"top_k": 3, "mask": {"2": [7]}}],
    "hf_olmoe": [{"mask": {"0": [0, 1, 2]}, "top_k": 2}],
}


def table(case, key):
    return {int(k): v for k, v in case.get(key, {}).items()}


def selection_margin(scores, chosen_count, excluded):
    """Smallest gap between the last chosen and the first unchosen candidate score (and between
    adjacent chosen ones), over tokens: where float32 rounding could change the choice."""
    s = scores.clone()
    for e in excluded:
        s[:, e] = -math.inf
    srt = torch.sort(s, dim=-1, descending=True).values
    live = srt[:, : chosen_count + 1]
    gaps = live[:, :-1] - live[:, 1:]
    gaps = gaps[torch.isfinite(gaps)]
    return float(gaps.min()) if gaps.numel() else math.inf


def nll_of(logits, prompt):
    lp = torch.log_softmax(logits.double(), dim=-1)
    return [mf.fmt(-lp[t, prompt[t + 1]]) for t in range(len(prompt) - 1)]


def nekomind(name, cases):
    d = os.path.join(ENGINE, name)
    expected = json.load(open(os.path.join(d, "expected.json")))
    prompt = expected["prompt_ids"]
    model = ref.NekoMindRef.from_dir(d, log=lambda *_: None)
    out = []
    for case in cases:
        model.mask, model.force = table(case, "mask"), table(case, "force")
        model.top_k, model.shared = case.get("top_k"), case.get("shared", True)
        logits, rec = model.forward(prompt)
        k = model.top_k or model.cfg.num_experts_per_tok
        margin = math.inf
        routing = []
        for t in range(len(prompt)):
            per = []
            for L in sorted(rec):
                r = rec[L]
                per.append({"layer": L, "experts": [int(e) for e in r["experts"][t]],
                            "weights": [mf.fmt(w) for w in r["weights"][t]]})
            routing.append(per)
        for L in sorted(rec):
            forced = model.force.get(L, [])
            margin = min(margin, selection_margin(rec[L]["probs"], k - len(forced), model.mask.get(L, []) + forced))
        out.append(record(case, logits, prompt, routing, margin))
    model.mask, model.force, model.top_k, model.shared = {}, {}, None, True
    write(name, "nekomind_ref.py (float64)", prompt, out)


def ablation(name):
    """routing ablate's numbers for one fixture: baseline mean NLL over the prompt's predictions;
    per (MoE layer, expert) the mean NLL with that expert masked, its share of the routed tokens
    and REAP's saliency; per MoE layer the mean NLL without its shared expert."""
    d = os.path.join(ENGINE, name)
    prompt = json.load(open(os.path.join(d, "expected.json")))["prompt_ids"]
    model = ref.NekoMindRef.from_dir(d, log=lambda *_: None)

    def mean_nll():
        logits, rec = model.forward(prompt)
        return sum(float(v) for v in nll_of(logits, prompt)) / (len(prompt) - 1), rec

    model.saliency = {}
    base, rec = mean_nll()
    saliency, model.saliency = model.saliency, None
    k, E = model.cfg.num_experts_per_tok, model.cfg.num_experts
    rows, shared = [], []
    for L in sorted(rec):
        counts = torch.bincount(rec[L]["experts"].reshape(-1), minlength=E)
        for e in range(E):
            model.mask = {L: [e]}
            m, _ = mean_nll()
            s, n = saliency.get((L, e), [0.0, 0])
            rows.append({"layer": L, "expert": e, "mean_nll": mf.fmt(m), "delta": mf.fmt(m - base),
                         "share": mf.fmt(float(counts[e]) / (len(prompt) * k)), "saliency": mf.fmt(s / n if n else 0.0)})
        model.mask = {}
        model.shared_off = {L}
        m, _ = mean_nll()
        model.shared_off = set()
        shared.append({"layer": L, "mean_nll": mf.fmt(m), "delta": mf.fmt(m - base)})
    path = os.path.join(d, "ablation.json")
    with open(path, "w") as f:
        f.write('{\n  "reference": "nekomind_ref.py (float64)",\n  "prompt_ids": ' + json.dumps(prompt)
                + ',\n  "tokens": ' + str(len(prompt)) + ',\n  "baseline_mean_nll": ' + json.dumps(mf.fmt(base)) + ',\n  "rows": [\n')
        f.write(",\n".join("    " + json.dumps(r, separators=(",", ":")) for r in rows) + "\n  ],\n  \"shared\": [\n")
        f.write(",\n".join("    " + json.dumps(r, separators=(",", ":")) for r in shared) + "\n  ]\n}\n")
    print(f"{name}: ablation of {len(rows)} (layer, expert) pairs and {len(shared)} shared experts")


def families(name, cases):
    import transformers
    transformers.logging.set_verbosity_error()
    d = os.path.join(ENGINE, name)
    expected = json.load(open(os.path.join(d, "expected.json")))
    prompt = expected["prompt_ids"]
    m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    modeling = sys.modules[type(m).__module__]
    layers = []
    for i, layer in enumerate(m.model.layers):
        block = getattr(layer, "mlp", None)
        gate = getattr(block, "gate", None)
        if gate is not None and hasattr(gate, "weight") and gate.weight.dim() == 2:
            layers.append((i, block, gate))
    state = {"mask": {}, "routes": {}}
    real_linear = torch.nn.functional.linear
    owners = {id(g.weight): i for i, _b, g in layers}

    class MaskedF:
        """The modeling file's `F`, with the router's linear masked (every other call passes)."""
        def __getattr__(self, attr):
            return getattr(torch.nn.functional, attr)

        @staticmethod
        def linear(x, w, b=None):
            y = real_linear(x, w, b)
            layer = owners.get(id(w))
            if layer is not None and state["mask"].get(layer):
                y = y.clone()
                y[..., state["mask"][layer]] = -math.inf
            return y

    saved_f = modeling.F
    modeling.F = MaskedF()
    hooks = []
    for i, block, gate in layers:
        hooks.append(gate.register_forward_hook(
            lambda _m, _inp, o, i=i: state["routes"].__setitem__(i, tuple(v.detach().double().clone() for v in o))))
        if getattr(block, "shared_expert", None) is not None:
            hooks.append(block.shared_expert.register_forward_hook(
                lambda _m, _inp, o: torch.zeros_like(o) if state.get("no_shared") else o))
    out = []
    k0 = m.config.num_experts_per_tok
    for case in cases:
        state["mask"] = table(case, "mask")
        state["no_shared"] = not case.get("shared", True)
        k = case.get("top_k") or k0
        for _i, _b, gate in layers:
            gate.top_k = k
        with torch.no_grad():
            logits = m(torch.tensor([prompt])).logits[0].double()
        routing, margin = [], math.inf
        for t in range(len(prompt)):
            per = []
            for i, _b, _g in layers:
                _lg, w, idx = state["routes"][i]
                order = sorted(range(k), key=lambda j: (-float(w[t, j]), int(idx[t, j])))
                per.append({"layer": i, "experts": [int(idx[t, j]) for j in order],
                            "weights": [mf.fmt(w[t, j]) for j in order]})
            routing.append(per)
        for i, _b, _g in layers:
            lg = state["routes"][i][0]
            margin = min(margin, selection_margin(lg, k, state["mask"].get(i, [])))
        out.append(record(case, logits, prompt, routing, margin))
    for h in hooks:
        h.remove()
    modeling.F = saved_f
    write(name, f"transformers {transformers.__version__} (float32)", prompt, out)


def record(case, logits, prompt, routing, margin):
    assert margin > MIN_MARGIN, f"{case}: selection margin {margin}"
    return {"experts": case, "nll": nll_of(logits, prompt), "logits": [mf.fmt(v) for v in logits[-1].tolist()],
            "routing": routing, "margin": mf.fmt(margin)}


def write(name, reference, prompt, cases):
    path = os.path.join(ENGINE, name, "interventions.json")
    with open(path, "w") as f:
        f.write('{\n  "reference": ' + json.dumps(reference) + ',\n  "prompt_ids": ' + json.dumps(prompt) + ',\n  "cases": [\n')
        for j, c in enumerate(cases):
            f.write("    " + json.dumps(c, separators=(",", ":")) + ("," if j < len(cases) - 1 else "") + "\n")
        f.write("  ]\n}\n")
    print(f"{name}: {len(cases)} cases, smallest selection margin {min(float(c['margin']) for c in cases):.3g}")


def main():
    torch.set_num_threads(2)
    for name, cases in NEKOMIND_CASES.items():
        nekomind(name, cases)
    for name in ABLATION:
        ablation(name)
    for name, cases in FAMILY_CASES.items():
        families(name, cases)


if __name__ == "__main__":
    main()
