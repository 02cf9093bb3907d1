#!/usr/bin/env python3
"""Writes a random full-size NekoMind checkpoint (Sources/NekoModel/README.md's config: 1,352,990,208 parameters, BF16,
~2.7 GB) for benchmarks and large-shape tests.  NOT committed to the repository.

    /work/venv/bin/python Tests/Reference/make_full_model.py /tmp/nekomind-full [--shard-bytes 1e9] [--seed 0]

Tensors are generated directly in bfloat16, one shard (~1 GB) at a time, and each tensor from its
own seeded generator, so the output does not depend on the shard size.  Writes config.json,
generation_config.json, model-0000K-of-0000N.safetensors and model.safetensors.index.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nekomind_ref as ref  # noqa: E402

EXPECTED_PARAMS = 1_352_990_208

CONFIG = {
    "architectures": ["NekoMindForCausalLM"],
    "model_type": "nekomind",
    "hidden_size": 1024,
    "num_hidden_layers": 18,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "intermediate_size": 2816,
    "moe_intermediate_size": 768,
    "shared_expert_intermediate_size": 768,
    "num_experts": 32,
    "num_experts_per_tok": 4,
    "norm_topk_prob": False,
    "first_k_dense_replace": 2,
    "decoder_sparse_step": 1,
    "mlp_only_layers": [],
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "max_position_embeddings": 32768,
    "vocab_size": 32006,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "hidden_act": "silu",
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "bfloat16",
}

# (kind) -> std; norms are 1 + STD_NORM * noise
STD = {"embed": 0.02, "mat": 0.02, "router": 0.05}
STD_NORM = 0.02


def plan(cfg: ref.NekoConfig):
    """[(name, shape, kind)] in file order."""
    H, hd, nh, nkv = cfg.hidden_size, cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    out = [("model.embed_tokens.weight", (cfg.vocab_size, H), "embed")]
    for i in range(cfg.num_hidden_layers):
        p, a, m = f"model.layers.{i}.", f"model.layers.{i}.self_attn.", f"model.layers.{i}.mlp."
        out += [(p + "input_layernorm.weight", (H,), "norm"),
                (p + "post_attention_layernorm.weight", (H,), "norm"),
                (a + "q_proj.weight", (nh * hd, H), "mat"),
                (a + "k_proj.weight", (nkv * hd, H), "mat"),
                (a + "v_proj.weight", (nkv * hd, H), "mat"),
                (a + "o_proj.weight", (H, nh * hd), "mat"),
                (a + "q_norm.weight", (hd,), "norm"),
                (a + "k_norm.weight", (hd,), "norm")]
        if not cfg.is_moe_layer(i):
            I = cfg.intermediate_size
            out += [(m + "gate_proj.weight", (I, H), "mat"), (m + "up_proj.weight", (I, H), "mat"),
                    (m + "down_proj.weight", (H, I), "mat")]
            continue
        I, SI = cfg.moe_intermediate_size, cfg.shared_expert_intermediate_size
        out.append((m + "gate.weight", (cfg.num_experts, H), "router"))
        for e in range(cfg.num_experts):
            out += [(f"{m}experts.{e}.gate_proj.weight", (I, H), "mat"),
                    (f"{m}experts.{e}.up_proj.weight", (I, H), "mat"),
                    (f"{m}experts.{e}.down_proj.weight", (H, I), "mat")]
        out += [(m + "shared_expert.gate_proj.weight", (SI, H), "mat"),
                (m + "shared_expert.up_proj.weight", (SI, H), "mat"),
                (m + "shared_expert.down_proj.weight", (H, SI), "mat"),
                (m + "shared_expert_gate.weight", (1, H), "mat")]
    out.append(("model.norm.weight", (H,), "norm"))
    return out


def make(shape, kind, seed, idx):
    g = torch.Generator().manual_seed(seed * 1_000_003 + idx)
    if kind == "norm":
        return (1.0 + STD_NORM * torch.randn(shape, generator=g)).to(torch.bfloat16)
    t = torch.randn(shape, generator=g, dtype=torch.bfloat16)
    return t.mul_(STD[kind])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--shard-bytes", type=float, default=1e9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    cfg = ref.parse_config(CONFIG, log=lambda m: None)
    items = plan(cfg)
    n_params = sum(int(torch.Size(s).numel()) for _, s, _ in items)
    print(f"parameters: {n_params:,}")
    if n_params != EXPECTED_PARAMS:
        sys.exit(f"parameter count {n_params} != {EXPECTED_PARAMS}")

    # assign tensors to shards of ~shard_bytes, in file order
    shards, cur, acc = [], [], 0
    for it in items:
        nbytes = int(torch.Size(it[1]).numel()) * 2
        if cur and acc + nbytes > a.shard_bytes:
            shards.append(cur)
            cur, acc = [], 0
        cur.append(it)
        acc += nbytes
    shards.append(cur)
    N = len(shards)

    os.makedirs(a.out_dir, exist_ok=True)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out_dir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 1, "eos_token_id": [2], "do_sample": True, "temperature": 0.7,
                   "top_k": 40, "top_p": 0.9}, f, indent=2)
        f.write("\n")
    index = {name: None for name, _, _ in items}
    idx_of = {name: i for i, (name, _, _) in enumerate(items)}
    total = 0
    for k, shard in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{N:05d}.safetensors"
        tensors = {name: make(shape, kind, a.seed, idx_of[name]) for name, shape, kind in shard}
        save_file(tensors, os.path.join(a.out_dir, fn), metadata={"format": "pt"})
        os.chmod(os.path.join(a.out_dir, fn), 0o644)
        sz = sum(t.numel() * 2 for t in tensors.values())
        total += sz
        for name in tensors:
            index[name] = fn
        del tensors
        print(f"  wrote {fn}: {len(shard)} tensors, {sz / 1e9:.3f} GB ({time.time() - t0:.0f}s)")
    with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total, "total_parameters": n_params}, "weight_map": index}, f,
                  indent=2)
        f.write("\n")
    print(f"done: {N} shards, {total / 1e9:.3f} GB in {time.time() - t0:.0f}s -> {a.out_dir}")


if __name__ == "__main__":
    main()
