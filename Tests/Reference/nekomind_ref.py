#!/usr/bin/env python3
"""Independent PyTorch reference for the NekoMind MoE forward pass.

Written from Sources/NekoModel/README.md (the contract), not from any engine code.  The reference path
computes everything in float64 (weights upcast from their stored BF16/F16/F32 values); the same
code also runs in float32 or with bf16 matmuls for bench_torch.py.

What it reads (Sources/NekoModel/README.md "Files in a model directory"):
  * config.json with every field/default of Sources/NekoModel/README.md, including the alternative spellings
    num_experts / num_local_experts / n_routed_experts, rope_parameters.rope_theta, qkv_bias;
  * model.safetensors, or model-0000K-of-0000N.safetensors + model.safetensors.index.json;
  * tensors in BF16, F16 or F32;
  * routed experts either per expert (mlp.experts.E.{gate,up,down}_proj.weight) or fused:
      mlp.experts.gate_up_proj [E, 2*I, H]   and   mlp.experts.down_proj [E, H, I].
    Fused gate/up order, verified against transformers 5.24 (site-packages/transformers):
      - models/qwen3_moe/modeling_qwen3_moe.py, Qwen3MoeExperts.forward:
            gate, up = F.linear(x, self.gate_up_proj[e]).chunk(2, dim=-1)
        i.e. output rows [0, I) are the gate projection, rows [I, 2I) the up projection;
      - conversion_mapping.py, "qwen2_moe" (which "qwen3_moe" maps to): per-expert checkpoints
        are fused with MergeModulelist(dim=0) then Concatenate(dim=1) over the source patterns
        ["mlp.experts.*.gate_proj.weight", "mlp.experts.*.up_proj.weight"], i.e. gate rows first.
    So gate_up_proj[e, :I] == experts.e.gate_proj.weight and gate_up_proj[e, I:] == up_proj.
    (hf_crosscheck.py confirms it numerically by loading a fused file with transformers.)

Choices where Sources/NekoModel/README.md is silent (each is logged when it applies):
  * num_key_value_heads absent -> num_attention_heads (transformers' convention).
  * both attention_bias and qkv_bias present -> biases iff either is true.
  * the shared expert needs all of gate/up/down + shared_expert_gate; a partial set is an error.
  * shared_expert_intermediate_size absent but shared-expert tensors present -> size from tensors.
  * q_norm / k_norm are decided per layer, each on its own (present -> applied).
  * an unsupported rope type (rope_parameters.rope_type other than "default", or rope_scaling) or a
    hidden_act other than silu is a load error rather than a silent wrong answer.

Named intermediates (llama.cpp's cb(cur, name, il)): forward(..., trace=fn) calls fn(name, layer,
tensor) with the same names as the Swift engine's ForwardContext.trace (layer -1 for none):
embed, attn_norm, q, k, v (q/k after QK-norm and RoPE), attn_out (before o_proj), ffn_norm,
router_probs (softmax over all experts), expert_out (weighted sum of the routed experts),
shared_gate (sigmoid gate), shared_out (gated shared expert), layer_out, final_norm.

CLI:  python nekomind_ref.py DIR --ids 1,2,3 [--greedy 8] [--routing] [--routing-json] [--dtype float32] [--dump FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Config and file reading live in nekomind_config.py; re-exported here for the other scripts.
from nekomind_config import (ALLOWED_DTYPES, EXPERT_COUNT_KEYS, LoadError, NekoConfig,  # noqa: E402,F401
                             _default_log, load_config_file, parse_config, read_tensors)

# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
class NekoMindRef:
    """weight_dtype: dtype weights are kept in; compute_dtype: activations/residual stream dtype.
    Reference: both float64.  bench_torch.py: (bfloat16, float32) or (float32, float32)."""

    def __init__(self, cfg: NekoConfig, tensors: dict, weight_dtype=torch.float64,
                 compute_dtype=torch.float64, log=_default_log):
        self.cfg = cfg
        self.wd = weight_dtype
        self.cd = compute_dtype
        self.log = log
        # Routing interventions (Sources/NekoRouting/README.md "Interventions"): layer -> experts
        # masked / forced, experts per token instead of k, and whether the shared expert runs.
        self.mask, self.force, self.top_k, self.shared = {}, {}, None, True
        # ablation: layers whose shared expert alone is left out; and, when a dict, REAP's
        # saliency sums per (layer, expert): [sum of weight * ||expert output||, tokens]
        self.shared_off, self.saliency = set(), None
        self._build(tensors)
        self._inv_freq = cfg.rope_theta ** (
            -torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim)

    @classmethod
    def from_dir(cls, model_dir, weight_dtype=torch.float64, compute_dtype=torch.float64, log=_default_log):
        cfg = parse_config(load_config_file(model_dir), log)
        return cls(cfg, read_tensors(model_dir, log), weight_dtype, compute_dtype, log)

    # ---- loading / validation ------------------------------------------------------------
    def _build(self, t: dict):
        c = self.cfg
        H, hd, nh, nkv = c.hidden_size, c.head_dim, c.num_attention_heads, c.num_key_value_heads
        used = set()
        # NOTE: t is consumed (tensors are popped as they are taken); pass a copy to keep yours

        def take(name, shape):
            if name not in t:
                raise LoadError(f"missing tensor {name}, expected shape {list(shape)}")
            got = list(t[name].shape)
            if got != list(shape):
                raise LoadError(f"tensor {name}: expected shape {list(shape)}, found {got}")
            used.add(name)
            return t.pop(name).to(self.wd)  # pop: frees the stored copy as we go (full-size models)

        def has(name):
            return name in t

        self.embed = take("model.embed_tokens.weight", (c.vocab_size, H))
        self.final_norm = take("model.norm.weight", (H,))

        # LM head rule
        if c.tie_word_embeddings is True:
            if has("lm_head.weight"):
                self.log("notice: tie_word_embeddings is true; lm_head.weight in the files is ignored")
                t.pop("lm_head.weight")
            self.head = self.embed
            self.tied = True
        elif c.tie_word_embeddings is False:
            self.head = take("lm_head.weight", (c.vocab_size, H))
            self.tied = False
        else:
            self.tied = not has("lm_head.weight")
            self.head = self.embed if self.tied else take("lm_head.weight", (c.vocab_size, H))
            self.log(f"tie_word_embeddings absent: head is {'tied' if self.tied else 'lm_head.weight'}")

        self.layers = []
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            a = p + "self_attn."
            ly = {"index": i}
            ly["in_norm"] = take(p + "input_layernorm.weight", (H,))
            ly["post_norm"] = take(p + "post_attention_layernorm.weight", (H,))
            ly["wq"] = take(a + "q_proj.weight", (nh * hd, H))
            ly["wk"] = take(a + "k_proj.weight", (nkv * hd, H))
            ly["wv"] = take(a + "v_proj.weight", (nkv * hd, H))
            ly["wo"] = take(a + "o_proj.weight", (H, nh * hd))
            if c.attention_bias:
                ly["bq"] = take(a + "q_proj.bias", (nh * hd,))
                ly["bk"] = take(a + "k_proj.bias", (nkv * hd,))
                ly["bv"] = take(a + "v_proj.bias", (nkv * hd,))
            ly["q_norm"] = take(a + "q_norm.weight", (hd,)) if has(a + "q_norm.weight") else None
            ly["k_norm"] = take(a + "k_norm.weight", (hd,)) if has(a + "k_norm.weight") else None

            m = p + "mlp."
            is_moe = c.is_moe_layer(i)
            looks_moe = has(m + "gate.weight") or any(k.startswith(m + "experts.") for k in t)
            looks_dense = has(m + "gate_proj.weight")
            if is_moe and (looks_dense or not looks_moe):
                raise LoadError(f"layer {i}: config says MoE but the tensors are those of a dense MLP")
            if not is_moe and looks_moe:
                raise LoadError(f"layer {i}: config says dense but the tensors are those of a MoE block")
            ly["moe"] = is_moe
            if not is_moe:
                I = c.intermediate_size
                ly["gate"] = take(m + "gate_proj.weight", (I, H))
                ly["up"] = take(m + "up_proj.weight", (I, H))
                ly["down"] = take(m + "down_proj.weight", (H, I))
            else:
                E, I = c.num_experts, c.moe_intermediate_size
                ly["router"] = take(m + "gate.weight", (E, H))
                if has(m + "experts.gate_up_proj") or has(m + "experts.down_proj"):
                    # experts are kept as per-expert lists of views (no copy: with BF16 weights the
                    # tensors stay backed by the safetensors mmap)
                    gu = take(m + "experts.gate_up_proj", (E, 2 * I, H))
                    dn = take(m + "experts.down_proj", (E, H, I))
                    ly["e_gate"] = [gu[e, :I] for e in range(E)]   # gate rows first (see module docstring)
                    ly["e_up"] = [gu[e, I:] for e in range(E)]
                    ly["e_down"] = [dn[e] for e in range(E)]
                    ly["fused"] = True
                else:
                    ly["e_gate"] = [take(f"{m}experts.{e}.gate_proj.weight", (I, H)) for e in range(E)]
                    ly["e_up"] = [take(f"{m}experts.{e}.up_proj.weight", (I, H)) for e in range(E)]
                    ly["e_down"] = [take(f"{m}experts.{e}.down_proj.weight", (H, I)) for e in range(E)]
                    ly["fused"] = False
                s = m + "shared_expert."
                parts = [s + "gate_proj.weight", s + "up_proj.weight", s + "down_proj.weight",
                         m + "shared_expert_gate.weight"]
                present = [has(x) for x in parts]
                if any(present):
                    if not all(present):
                        missing = [x for x, ok in zip(parts, present) if not ok]
                        raise LoadError(f"layer {i}: incomplete shared expert, missing {missing}")
                    SI = c.shared_expert_intermediate_size
                    if SI is None:
                        SI = t[s + "gate_proj.weight"].shape[0]
                        self.log(f"shared_expert_intermediate_size absent: {SI} from tensors")
                    ly["s_gate"] = take(s + "gate_proj.weight", (SI, H))
                    ly["s_up"] = take(s + "up_proj.weight", (SI, H))
                    ly["s_down"] = take(s + "down_proj.weight", (H, SI))
                    ly["s_gate_w"] = take(m + "shared_expert_gate.weight", (1, H))
                else:
                    ly["s_gate"] = None
            self.layers.append(ly)

        unexpected = sorted(t)  # everything not taken above
        if unexpected:
            raise LoadError(f"unexpected tensor {unexpected[0]} (shape {list(t[unexpected[0]].shape)})"
                            + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""))

    # ---- math --------------------------------------------------------------------------------
    def _lin(self, x, w, b=None):
        y = (x.to(w.dtype) @ w.T).to(self.cd)
        if b is not None:
            y = y + b.to(self.cd)
        return y

    def _rmsnorm(self, x, w):
        # rmsnorm(x, w) = w * x / sqrt(mean(x^2) + eps); bf16 bench path normalises in float32
        xf = x if self.cd != torch.bfloat16 else x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.cfg.rms_norm_eps)
        return (w.to(y.dtype) * y).to(self.cd)

    def rope_cos_sin(self, positions: torch.Tensor):
        # inv_freq and angles in float64; cos/sin rounded to float32 (Sources/NekoModel/README.md), then compute dtype
        ang = positions.to(torch.float64)[:, None] * self._inv_freq[None, :]
        cos = torch.cos(ang).to(torch.float32).to(self.cd)
        sin = torch.sin(ang).to(torch.float32).to(self.cd)
        return cos, sin  # [T, d/2]

    @staticmethod
    def _rope(x, cos, sin):
        # x [T, heads, d]; rotate-half pairs (i, i + d/2)
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
        c, s = cos[:, None, :], sin[:, None, :]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    def _mlp(self, h, g, u, d):
        return self._lin(torch.nn.functional.silu(self._lin(h, g)) * self._lin(h, u), d)

    def _attention(self, ly, h, cos, sin, cache, start, trace=None):
        c = self.cfg
        T = h.shape[0]
        nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        q = self._lin(h, ly["wq"], ly.get("bq")).view(T, nh, hd)
        k = self._lin(h, ly["wk"], ly.get("bk")).view(T, nkv, hd)
        v = self._lin(h, ly["wv"], ly.get("bv")).view(T, nkv, hd)
        if ly["q_norm"] is not None:
            q = self._rmsnorm(q, ly["q_norm"])
        if ly["k_norm"] is not None:
            k = self._rmsnorm(k, ly["k_norm"])
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        if trace is not None:
            trace("q", ly["index"], q.reshape(T, nh * hd))
            trace("k", ly["index"], k.reshape(T, nkv * hd))
            trace("v", ly["index"], v.reshape(T, nkv * hd))
        if cache is not None:
            li = ly["index"]
            if li in cache:
                k = torch.cat([cache[li][0], k], 0)
                v = torch.cat([cache[li][1], v], 0)
            cache[li] = (k, v)
        S = k.shape[0]
        g = nh // nkv
        att_dt = torch.float32 if self.cd == torch.bfloat16 else self.cd
        # query head h uses KV head h // g  ->  view heads as [nkv, g]
        qh = q.to(att_dt).view(T, nkv, g, hd).permute(1, 2, 0, 3)           # [nkv, g, T, hd]
        kh = k.to(att_dt).permute(1, 2, 0)                                   # [nkv, hd, S]
        vh = v.to(att_dt).permute(1, 0, 2)                                   # [nkv, S, hd]
        scores = (qh @ kh[:, None]) / math.sqrt(hd)                          # [nkv, g, T, S]
        qpos = torch.arange(start, start + T)[:, None]
        kpos = torch.arange(S)[None, :]
        scores = scores.masked_fill(kpos > qpos, float("-inf"))
        a = torch.softmax(scores, dim=-1) @ vh[:, None]                      # [nkv, g, T, hd]
        a = a.permute(2, 0, 1, 3).reshape(T, nh * hd).to(self.cd)
        if trace is not None:
            trace("attn_out", ly["index"], a)
        return self._lin(a, ly["wo"])

    def _moe(self, ly, h, rec, trace=None):
        c = self.cfg
        k = self.top_k or c.num_experts_per_tok
        masked = self.mask.get(ly["index"], [])
        forced = self.force.get(ly["index"], [])
        logits = self._lin(h, ly["router"])
        if masked:
            logits = logits.clone()
            logits[:, masked] = -math.inf       # masked: -inf before the softmax
        p = torch.softmax(logits.to(torch.float64 if self.cd == torch.float64 else torch.float32), dim=-1)
        # top-k, ties by LOWER expert index first: stable sort of -p keeps index order among equals
        score = p.clone()
        if forced:
            score[:, forced] = math.inf         # forced experts take their slots first
        order = torch.argsort(-score, dim=-1, stable=True)
        idx = order[:, :k]
        w = torch.gather(p, 1, idx)
        if c.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        if forced:
            # the record is in descending weight, ties by lower index (idx is ascending among
            # forced equals): a stable sort of -w over the index-sorted pairs
            pre = torch.argsort(idx, dim=-1, stable=True)
            idx, w = torch.gather(idx, 1, pre), torch.gather(w, 1, pre)
            post = torch.argsort(-w, dim=-1, stable=True)
            idx, w = torch.gather(idx, 1, post), torch.gather(w, 1, post)
        y = torch.zeros_like(h)
        for e in torch.unique(idx).tolist():
            tok, slot = torch.nonzero(idx == e, as_tuple=True)
            out = self._mlp(h[tok], ly["e_gate"][e], ly["e_up"][e], ly["e_down"][e])
            y.index_add_(0, tok, out * w[tok, slot].to(self.cd)[:, None])
            if self.saliency is not None:
                acc = self.saliency.setdefault((ly["index"], e), [0.0, 0])
                acc[0] += float((w[tok, slot].double() * out.double().norm(dim=-1)).sum())
                acc[1] += int(tok.numel())
        sg = None
        if trace is not None:
            trace("router_probs", ly["index"], p)
            trace("expert_out", ly["index"], y)
        if ly["s_gate"] is not None and self.shared and ly["index"] not in self.shared_off:
            sg = torch.sigmoid(self._lin(h, ly["s_gate_w"]))
            shared = sg * self._mlp(h, ly["s_gate"], ly["s_up"], ly["s_down"])
            if trace is not None:
                trace("shared_gate", ly["index"], sg.reshape(-1))
                trace("shared_out", ly["index"], shared)
            y = y + shared
        if rec is not None:
            # router_entropy: -sum p log2 p over all E probabilities (xlogy: 0 log 0 = 0), bits
            rec[ly["index"]] = {"experts": idx, "weights": w, "probs": p,
                                "router_entropy": -torch.special.xlogy(p, p).sum(-1) / math.log(2)}
            if sg is not None:
                rec[ly["index"]]["shared_gate"] = sg[:, 0]   # sigmoid(h . shared_expert_gate) per token
        return y

    @torch.no_grad()
    def forward(self, ids, cache: dict | None = None, start: int = 0, record: bool = True, trace=None):
        """ids: list/1-D tensor of token ids at positions start..start+T-1.
        cache: dict layer -> (K, V), extended in place (pass {} to start one).
        trace: optional fn(name, layer, tensor) called with every named intermediate.
        Returns (logits [T, vocab] in compute dtype, routing {layer: {experts, weights, probs}})."""
        c = self.cfg
        ids = torch.as_tensor(ids, dtype=torch.long)
        if int(ids.min()) < 0 or int(ids.max()) >= c.vocab_size:
            raise ValueError("token id out of range")
        T = ids.shape[0]
        if c.max_position_embeddings and start + T > c.max_position_embeddings:
            raise ValueError("sequence longer than max_position_embeddings")
        x = self.embed[ids].to(self.cd)
        tr = trace if trace is not None else (lambda name, layer, value: None)
        tr("embed", -1, x)
        cos, sin = self.rope_cos_sin(torch.arange(start, start + T))
        rec = {} if record else None
        for ly in self.layers:
            h = self._rmsnorm(x, ly["in_norm"])
            tr("attn_norm", ly["index"], h)
            x = x + self._attention(ly, h, cos, sin, cache, start, trace)
            h = self._rmsnorm(x, ly["post_norm"])
            tr("ffn_norm", ly["index"], h)
            if ly["moe"]:
                x = x + self._moe(ly, h, rec, trace)
            else:
                x = x + self._mlp(h, ly["gate"], ly["up"], ly["down"])
            tr("layer_out", ly["index"], x)
        normed = self._rmsnorm(x, self.final_norm)
        tr("final_norm", -1, normed)
        logits = self._lin(normed, self.head)
        return logits, rec


def trace_dump(model: "NekoMindRef", ids) -> dict:
    """Every named intermediate of one forward pass over ids, as
    {"ids": [...], "values": {name: {layer: [[row values] per token]}}} (floats, 8 digits)."""
    values: dict = {}

    def keep(name, layer, value):
        v = value.detach().to(torch.float64)
        rows = v.reshape(len(ids), -1) if v.dim() > 1 else v.reshape(len(ids), 1)
        values.setdefault(name, {})[str(layer)] = [[float(f"{x:.8g}") for x in r] for r in rows.tolist()]

    model.forward(ids, trace=keep)
    return {"ids": [int(i) for i in ids], "values": values}


# --------------------------------------------------------------------------------------------
# helpers shared with make_fixtures.py / hf_crosscheck.py
# --------------------------------------------------------------------------------------------
def routing_records(cfg: NekoConfig, rec: dict, extended: bool = False) -> list:
    """Per token: [per MoE layer: {"layer", "experts", "weights"}] (experts in descending weight
    order, ties by lower index; weights as used, i.e. after renormalisation).
    extended: also "shared_gate" (sigmoid(h . shared_expert_gate); only for layers with a gate) and
    "router_entropy" (-sum p log2 p over all experts' softmax probabilities, bits), as Sources/NekoRouting/README.md's
    routing record. Off by default so make_fixtures.py's expected.json stays as it was."""
    layers = sorted(rec)
    T = rec[layers[0]]["experts"].shape[0] if layers else 0
    out = []
    for t in range(T):
        per = []
        for L in layers:
            r = {"layer": L,
                 "experts": [int(e) for e in rec[L]["experts"][t]],
                 "weights": [float(w) for w in rec[L]["weights"][t]]}
            if extended:
                if "shared_gate" in rec[L]:
                    r["shared_gate"] = float(rec[L]["shared_gate"][t])
                r["router_entropy"] = float(rec[L]["router_entropy"][t])
            per.append(r)
        out.append(per)
    return out


def greedy(model: NekoMindRef, prompt, n: int):
    """Greedy continuation, ignoring EOS. Returns (generated ids, logits and routing of one full
    forward over prompt + generated[:-1]) — identical to step-by-step because of causality."""
    seq = list(prompt)
    gen = []
    for _ in range(n):
        logits, _ = model.forward(seq, record=False)
        nxt = int(torch.argmax(logits[-1]))
        gen.append(nxt)
        seq.append(nxt)
    full = list(prompt) + gen[:-1]
    logits, rec = model.forward(full)
    assert [int(a) for a in torch.argmax(logits[len(prompt) - 1:], -1)] == gen
    return gen, logits, rec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--greedy", type=int, default=0, help="also print a greedy continuation of N tokens")
    ap.add_argument("--routing", action="store_true", help="print the routing record")
    ap.add_argument("--routing-json", action="store_true",
                    help="print the routing record with shared_gate and router_entropy as one JSON line")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                    help="weights and compute dtype (float32 halves memory for full-size models)")
    ap.add_argument("--dump", metavar="FILE", help="write every named intermediate of the forward pass as JSON")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    ids = [int(s) for s in a.ids.split(",") if s.strip()]
    dt = torch.float64 if a.dtype == "float64" else torch.float32
    model = NekoMindRef.from_dir(a.model_dir, weight_dtype=dt, compute_dtype=dt)
    print(f"layers={model.cfg.num_hidden_layers} moe_layers={model.cfg.moe_layers} tied={model.tied}")
    logits, rec = model.forward(ids)
    lp = torch.log_softmax(logits, -1)
    for t in range(len(ids)):
        v, i = torch.topk(logits[t], min(a.top, logits.shape[1]))
        nll = f" nll(next)={-float(lp[t, ids[t + 1]]):.6f}" if t + 1 < len(ids) else ""
        print(f"pos {t} id {ids[t]}: argmax {int(i[0])}  top{a.top} "
              + " ".join(f"{int(j)}:{float(x):.6f}" for j, x in zip(i, v))
              + f"  min {float(logits[t].min()):.4f} max {float(logits[t].max()):.4f}"
              + f" mean {float(logits[t].mean()):.4f}" + nll)
    if a.routing:
        for t, per in enumerate(routing_records(model.cfg, rec)):
            print(f"pos {t}: " + "; ".join(
                f"L{r['layer']} " + ",".join(f"{e}:{w:.4f}" for e, w in zip(r["experts"], r["weights"]))
                for r in per))
    if a.routing_json:
        print(json.dumps(routing_records(model.cfg, rec, extended=True)))
    if a.greedy:
        gen, _, _ = greedy(model, ids, a.greedy)
        print("greedy:", ",".join(map(str, gen)))
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump(trace_dump(model, ids), f, separators=(",", ":"))
        print(f"wrote {a.dump}")


if __name__ == "__main__":
    main()
