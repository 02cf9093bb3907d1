#!/usr/bin/env python3
"""Writes the small random NekoMind checkpoints of Tests/Fixtures/engine/<name>/ and, for each, an
expected.json computed by nekomind_ref.py (float64).

    /work/venv/bin/python Tests/Reference/make_fixtures.py [--out Tests/Fixtures/engine] [--only NAME]

Deterministic: fixed seeds, fixed prompts; a seed is rejected (and the next one tried) unless,
over every prompt position and every greedy step, the top-2 logits differ by > MARGIN, and for
every token and MoE layer (except a deliberately tied one) the sorted router probabilities
p(1) > p(2) > ... > p(k+1) are separated by > MARGIN (this covers the k-th vs (k+1)-th choice and
the order of the chosen experts).  Seeds whose 8 greedy tokens hold fewer than 3 distinct ids are
rejected too, so the greedy check means something.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nekomind_ref as ref  # noqa: E402

MARGIN = 1e-3
N_GREEDY = 8
MIN_DISTINCT_GREEDY = 3  # also reject seeds whose greedy run just repeats one token
MAX_DIR_BYTES = 400 * 1024
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, "Tests", "Fixtures", "engine")
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}

# init scales: logits O(1-10) and a router spread that keeps top-k choices well separated
STD_EMBED = 0.5
STD_MAT = 0.2
STD_ROUTER = 0.3
STD_BIAS = 0.1
STD_NORM = 0.1  # norms are 1 + STD_NORM * noise


def _base(**kw):
    c = {"architectures": ["NekoMindForCausalLM"], "model_type": "nekomind", "hidden_act": "silu",
         "max_position_embeddings": 32768, "bos_token_id": 1}
    c.update(kw)
    return c


# Each fixture: config.json as written, plus generator options.
FIXTURES = [
    dict(name="neko_mini_bf16",
         description="NekoMind in miniature: BF16 single file, tied head, first_k_dense_replace 2 "
                     "(dense 0-1, MoE 2-3), shared expert + sigmoid gate, QK-norm, top-2 of 8, "
                     "norm_topk_prob false, top-level rope_theta 1e6, eos int; generation_config.json "
                     "with an extra eos id and sampling defaults",
         dtype="bf16", shards=1, fused=False, shared=True, qknorm=True, lm_head="none",
         prompt_len=9, seed=1000, expect_moe=[2, 3],
         config=_base(hidden_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=96, moe_intermediate_size=24,
                      shared_expert_intermediate_size=32, num_experts=8, num_experts_per_tok=2,
                      norm_topk_prob=False, first_k_dense_replace=2, decoder_sparse_step=1,
                      mlp_only_layers=[], rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=128,
                      tie_word_embeddings=True, attention_bias=False, eos_token_id=2,
                      torch_dtype="bfloat16"),
         generation_config={"bos_token_id": 1, "eos_token_id": [2, 5], "do_sample": True,
                            "temperature": 0.7, "top_k": 20, "top_p": 0.9}),
    dict(name="sharded3_bf16_normtopk",
         description="BF16 in 3 shards + model.safetensors.index.json, norm_topk_prob true, top-3, "
                     "first_k_dense_replace 1, tie_word_embeddings true WITH a junk lm_head.weight in "
                     "the files that must be ignored, eos list",
         dtype="bf16", shards=3, fused=False, shared=True, qknorm=True, lm_head="junk",
         prompt_len=8, seed=2000, expect_moe=[1, 2, 3],
         config=_base(hidden_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=64, moe_intermediate_size=24,
                      shared_expert_intermediate_size=24, num_experts=8, num_experts_per_tok=3,
                      norm_topk_prob=True, first_k_dense_replace=1, rms_norm_eps=1e-6,
                      rope_theta=500000.0, vocab_size=112, tie_word_embeddings=True, eos_token_id=[2, 3],
                      torch_dtype="bfloat16")),
    dict(name="f16_mlp_only_rope_params",
         description="F16, mlp_only_layers [1] with decoder_sparse_step 1 (MoE 0 and 2: layer 0 is MoE), "
                     "expert count spelled num_local_experts, rope_parameters.rope_theta 1e4 with no "
                     "top-level rope_theta, tie_word_embeddings absent and no lm_head (-> tied), "
                     "norm_topk_prob absent (-> false)",
         dtype="f16", shards=1, fused=False, shared=True, qknorm=True, lm_head="none",
         prompt_len=7, seed=3000, expect_moe=[0, 2],
         config=_base(hidden_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=64, moe_intermediate_size=24,
                      shared_expert_intermediate_size=24, num_local_experts=8, num_experts_per_tok=2,
                      mlp_only_layers=[1], decoder_sparse_step=1, rms_norm_eps=1e-6,
                      rope_parameters={"rope_theta": 10000.0, "rope_type": "default"}, vocab_size=100,
                      eos_token_id=2, torch_dtype="float16")),
    dict(name="f32_attn_bias_untied",
         description="F32, attention_bias true (q/k/v biases, none on o_proj), tie_word_embeddings false "
                     "+ lm_head.weight, rms_norm_eps 1e-5, first_k_dense_replace 1, hidden 32",
         dtype="f32", shards=1, fused=False, shared=True, qknorm=True, lm_head="untied",
         prompt_len=10, seed=4000, expect_moe=[1, 2],
         config=_base(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=64, moe_intermediate_size=16,
                      shared_expert_intermediate_size=16, num_experts=8, num_experts_per_tok=2,
                      norm_topk_prob=False, first_k_dense_replace=1, rms_norm_eps=1e-5,
                      rope_theta=1000000.0, vocab_size=96, tie_word_embeddings=False,
                      attention_bias=True, eos_token_id=[2], torch_dtype="float32")),
    dict(name="fused_experts_bf16",
         description="BF16 with fused experts: mlp.experts.gate_up_proj [E,2I,H] (gate rows first) and "
                     "mlp.experts.down_proj [E,H,I]; Qwen3-MoE-compatible (QK-norm, no shared expert, "
                     "mlp_only_layers [0], model_type qwen3_moe) so transformers can load it too; top-3, "
                     "norm_topk_prob true",
         dtype="bf16", shards=1, fused=True, shared=False, qknorm=True, lm_head="none",
         prompt_len=8, seed=5000, expect_moe=[1, 2],
         config=dict(architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", hidden_act="silu",
                     hidden_size=48, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                     head_dim=16, intermediate_size=64, moe_intermediate_size=24, num_experts=8,
                     num_experts_per_tok=3, norm_topk_prob=True, mlp_only_layers=[0],
                     decoder_sparse_step=1, rms_norm_eps=1e-6, rope_theta=1000000.0,
                     max_position_embeddings=32768, vocab_size=128, tie_word_embeddings=True,
                     attention_bias=False, bos_token_id=1, eos_token_id=2, torch_dtype="bfloat16")),
    dict(name="tied_router_zero",
         description="BF16; MoE layers 1-3, and layer 2's router weight is all zeros: every router "
                     "probability is exactly 1/8, so top-3 must pick experts [0,1,2] (ties -> lower index "
                     "first) with weights 0.125 each (norm_topk_prob false)",
         dtype="bf16", shards=1, fused=False, shared=True, qknorm=True, lm_head="none",
         prompt_len=8, seed=6000, expect_moe=[1, 2, 3], zero_router=[2],
         config=_base(hidden_size=48, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, intermediate_size=64, moe_intermediate_size=24,
                      shared_expert_intermediate_size=24, num_experts=8, num_experts_per_tok=3,
                      norm_topk_prob=False, first_k_dense_replace=1, rms_norm_eps=1e-6,
                      rope_theta=1000000.0, vocab_size=96, tie_word_embeddings=True, eos_token_id=2,
                      torch_dtype="bfloat16")),
    dict(name="no_shared_no_qknorm_step2",
         description="BF16 with the optional parts absent (no shared expert/gate, no q_norm/k_norm); "
                     "decoder_sparse_step 2 (MoE 1 and 3), expert count spelled n_routed_experts, "
                     "head_dim absent (-> 64/4 = 16), tie_word_embeddings absent with lm_head.weight "
                     "present (-> untied), norm_topk_prob true, eos list",
         dtype="bf16", shards=1, fused=False, shared=False, qknorm=False, lm_head="untied",
         prompt_len=9, seed=7000, expect_moe=[1, 3],
         config=_base(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=64, moe_intermediate_size=16, n_routed_experts=8,
                      num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=2,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=96, eos_token_id=[2, 4],
                      torch_dtype="bfloat16")),
    dict(name="dense_only_f16",
         description="F16, num_experts 0 (every layer dense, routing empty), num_key_value_heads and "
                     "head_dim absent (-> 2 heads MHA, head_dim 32/2 = 16), tied head",
         dtype="f16", shards=1, fused=False, shared=False, qknorm=True, lm_head="none",
         prompt_len=7, seed=8000, expect_moe=[],
         config=_base(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      num_experts=0, rms_norm_eps=1e-6, rope_theta=1000000.0, vocab_size=96,
                      tie_word_embeddings=True, eos_token_id=2, torch_dtype="float16")),
]


# --------------------------------------------------------------------------------------------
def gen_tensors(fx: dict, cfg: ref.NekoConfig, seed: int) -> dict:
    """Random weights in the stored dtype, names as in Sources/NekoModel/README.md."""
    g = torch.Generator().manual_seed(seed)
    dt = DTYPES[fx["dtype"]]
    H, hd, nh, nkv, V = cfg.hidden_size, cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.vocab_size

    def rn(*shape, std):
        return (torch.randn(*shape, generator=g, dtype=torch.float32) * std).to(dt)

    def norm(n):
        return (1.0 + STD_NORM * torch.randn(n, generator=g, dtype=torch.float32)).to(dt)

    t = {"model.embed_tokens.weight": rn(V, H, std=STD_EMBED)}
    for i in range(cfg.num_hidden_layers):
        p, a, m = f"model.layers.{i}.", f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        t[p + "input_layernorm.weight"] = norm(H)
        t[p + "post_attention_layernorm.weight"] = norm(H)
        t[a + "q_proj.weight"] = rn(nh * hd, H, std=STD_MAT)
        t[a + "k_proj.weight"] = rn(nkv * hd, H, std=STD_MAT)
        t[a + "v_proj.weight"] = rn(nkv * hd, H, std=STD_MAT)
        t[a + "o_proj.weight"] = rn(H, nh * hd, std=STD_MAT)
        if cfg.attention_bias:
            t[a + "q_proj.bias"] = rn(nh * hd, std=STD_BIAS)
            t[a + "k_proj.bias"] = rn(nkv * hd, std=STD_BIAS)
            t[a + "v_proj.bias"] = rn(nkv * hd, std=STD_BIAS)
        if fx["qknorm"]:
            t[a + "q_norm.weight"] = norm(hd)
            t[a + "k_norm.weight"] = norm(hd)
        if not cfg.is_moe_layer(i):
            I = cfg.intermediate_size
            t[m + "gate_proj.weight"] = rn(I, H, std=STD_MAT)
            t[m + "up_proj.weight"] = rn(I, H, std=STD_MAT)
            t[m + "down_proj.weight"] = rn(H, I, std=STD_MAT)
            continue
        E, I = cfg.num_experts, cfg.moe_intermediate_size
        router = rn(E, H, std=STD_ROUTER)
        if i in fx.get("zero_router", []):
            router = torch.zeros(E, H, dtype=dt)
        t[m + "gate.weight"] = router
        gate, up, down = rn(E, I, H, std=STD_MAT), rn(E, I, H, std=STD_MAT), rn(E, H, I, std=STD_MAT)
        if fx["fused"]:
            t[m + "experts.gate_up_proj"] = torch.cat([gate, up], dim=1).contiguous()  # gate rows first
            t[m + "experts.down_proj"] = down.contiguous()
        else:
            for e in range(E):
                t[f"{m}experts.{e}.gate_proj.weight"] = gate[e].clone()
                t[f"{m}experts.{e}.up_proj.weight"] = up[e].clone()
                t[f"{m}experts.{e}.down_proj.weight"] = down[e].clone()
        if fx["shared"]:
            SI = cfg.shared_expert_intermediate_size
            t[m + "shared_expert.gate_proj.weight"] = rn(SI, H, std=STD_MAT)
            t[m + "shared_expert.up_proj.weight"] = rn(SI, H, std=STD_MAT)
            t[m + "shared_expert.down_proj.weight"] = rn(H, SI, std=STD_MAT)
            t[m + "shared_expert_gate.weight"] = rn(1, H, std=STD_MAT)
    t["model.norm.weight"] = norm(H)
    if fx["lm_head"] in ("untied", "junk"):
        # "junk": present in the files but tie_word_embeddings is true -> must be ignored
        t["lm_head.weight"] = rn(V, H, std=STD_EMBED)
    return t


def unfuse(t: dict) -> dict:
    out = {}
    for k, v in t.items():
        if k.endswith("mlp.experts.gate_up_proj"):
            m = k[: -len("gate_up_proj")]
            I = v.shape[1] // 2
            for e in range(v.shape[0]):
                out[f"{m}{e}.gate_proj.weight"] = v[e, :I].clone()
                out[f"{m}{e}.up_proj.weight"] = v[e, I:].clone()
        elif k.endswith("mlp.experts.down_proj"):
            m = k[: -len("down_proj")]
            for e in range(v.shape[0]):
                out[f"{m}{e}.down_proj.weight"] = v[e].clone()
        else:
            out[k] = v
    return out


def margins(logits, rec, k, skip_layers):
    """(min top-1 - top-2 logit gap, min adjacent gap among the k+1 largest router probs)."""
    top2 = torch.topk(logits, 2, dim=-1).values
    lg = float((top2[:, 0] - top2[:, 1]).min())
    rg = float("inf")
    for L, r in rec.items():
        if L in skip_layers:
            continue
        ps = torch.sort(r["probs"], dim=-1, descending=True).values[:, : k + 1]
        rg = min(rg, float((ps[:, :-1] - ps[:, 1:]).min()))
    return lg, rg


def evaluate(model: ref.NekoMindRef, prompt):
    gen, full_logits, rec = ref.greedy(model, prompt, N_GREEDY)
    return gen, full_logits, rec


def kv_cache_check(model, seq):
    full, _ = model.forward(seq)
    cache, outs = {}, []
    n0 = len(seq) // 2
    lg, _ = model.forward(seq[:n0], cache=cache, start=0)
    outs.append(lg)
    for i in range(n0, len(seq)):
        lg, _ = model.forward(seq[i:i + 1], cache=cache, start=i)
        outs.append(lg)
    inc = torch.cat(outs, 0)
    d = float((inc - full).abs().max())
    assert d < 1e-9, f"KV-cache decode differs from full prefill by {d}"


def fmt(x):
    return float(f"{float(x):.7g}")


def write_expected(path, obj):
    """JSON with one row per line for the big arrays (compact but diffable)."""
    lines = ["{"]
    keys = list(obj)
    for n, key in enumerate(keys):
        v = obj[key]
        comma = "," if n < len(keys) - 1 else ""
        if key in ("logits", "routing") and v:
            lines.append(f'  "{key}": [')
            for j, row in enumerate(v):
                lines.append("    " + json.dumps(row, separators=(",", ":")) + ("," if j < len(v) - 1 else ""))
            lines.append("  ]" + comma)
        else:
            lines.append(f'  "{key}": ' + json.dumps(v, separators=(", ", ": ")) + comma)
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_weights(d, tensors, shards):
    meta = {"format": "pt"}
    if shards == 1:
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata=meta)
        return
    names = sorted(tensors)
    sizes = [tensors[n].numel() * tensors[n].element_size() for n in names]
    total = sum(sizes)
    groups, cur, acc = [[] for _ in range(shards)], 0, 0
    for n, s in zip(names, sizes):
        if acc >= total * (cur + 1) / shards and cur < shards - 1:
            cur += 1
        groups[cur].append(n)
        acc += s
    weight_map = {}
    for i, grp in enumerate(groups):
        fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in grp}, os.path.join(d, fn), metadata=meta)
        for n in grp:
            weight_map[n] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")


def expected_record(name, description, prompt, gen, full_logits, rec, cfg, tied_layers):
    P = len(prompt)
    lp = torch.log_softmax(full_logits[:P], dim=-1)
    nll = [fmt(-lp[t, prompt[t + 1]]) for t in range(P - 1)]
    routing = ref.routing_records(cfg, rec) if rec else [[] for _ in range(P + N_GREEDY - 1)]
    for per in routing:
        for r in per:
            r["weights"] = [fmt(w) for w in r["weights"]]
    return {
        "name": name,
        "description": description,
        "prompt_ids": list(prompt),
        "logits": [[fmt(v) for v in row] for row in full_logits[:P].tolist()],
        "nll": nll,
        "greedy_ids": gen,
        "routing": routing,
        "moe_layers": cfg.moe_layers,
        "tied_router_layers": tied_layers,
    }


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def build_fixture(fx, out_root, quiet_log):
    t0 = time.time()
    cfg = ref.parse_config(fx["config"], quiet_log)
    assert cfg.moe_layers == fx["expect_moe"], (fx["name"], cfg.moe_layers)
    k = cfg.num_experts_per_tok or 0
    tied = list(fx.get("zero_router", []))
    pg = torch.Generator().manual_seed(fx["seed"] + 777)
    prompt = [int(x) for x in torch.randint(3, cfg.vocab_size, (fx["prompt_len"],), generator=pg)]
    chosen = None
    for seed in range(fx["seed"], fx["seed"] + 500):
        tensors = gen_tensors(fx, cfg, seed)
        model = ref.NekoMindRef(cfg, dict(tensors), log=quiet_log)
        gen, full_logits, rec = evaluate(model, prompt)
        lg, rg = margins(full_logits, rec, k, tied)
        if lg > MARGIN and rg > MARGIN and len(set(gen)) >= MIN_DISTINCT_GREEDY:
            chosen = seed
            break
    assert chosen is not None, f"{fx['name']}: no seed passed the margins"

    d = os.path.join(out_root, fx["name"])
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(fx["config"], f, indent=2)
        f.write("\n")
    if fx.get("generation_config"):
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump(fx["generation_config"], f, indent=2)
            f.write("\n")
    write_weights(d, tensors, fx["shards"])
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)

    # recompute from the files on disk: this is what expected.json records
    model = ref.NekoMindRef.from_dir(d, log=quiet_log)
    gen2, full2, rec2 = evaluate(model, prompt)
    assert gen2 == gen and torch.equal(full2, full_logits), "disk round trip changed the result"
    kv_cache_check(model, prompt + gen[:-1])
    if fx["fused"]:
        alt = ref.NekoMindRef(cfg, unfuse(tensors), log=quiet_log)
        la, _ = alt.forward(prompt + gen[:-1])
        assert float((la - full2).abs().max()) == 0.0, "fused vs per-expert layout differ"
    for L in tied:
        r = rec2[L]
        assert torch.all(r["probs"] == r["probs"][:, :1]), "tied layer probabilities not exactly equal"
        assert torch.all(r["experts"] == torch.arange(k)), "tie must pick experts 0..k-1"
    exp = expected_record(fx["name"], fx["description"], prompt, gen2, full2, rec2, cfg, tied)
    write_expected(os.path.join(d, "expected.json"), exp)
    size = dir_bytes(d)
    assert size < MAX_DIR_BYTES, f"{fx['name']}: {size} bytes >= {MAX_DIR_BYTES}"
    print(f"{fx['name']:28s} seed {chosen} (tried {chosen - fx['seed'] + 1}) "
          f"min top2 logit gap {lg:.4g}, min router gap {rg:.4g}, "
          f"logit range [{float(full2.min()):.2f}, {float(full2.max()):.2f}], "
          f"greedy {gen2}, {size / 1024:.0f} KiB, {time.time() - t0:.1f}s")
    return chosen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--only", default=None)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    log = ref._default_log if a.verbose else (lambda m: None)
    os.makedirs(a.out, exist_ok=True)
    for fx in FIXTURES:
        if a.only and fx["name"] != a.only:
            continue
        build_fixture(fx, a.out, log)


if __name__ == "__main__":
    main()
