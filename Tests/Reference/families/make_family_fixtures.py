#!/usr/bin/env python3
"""Fixtures for the model families other than NekoMind, made by transformers' own classes.

For each family a tiny random model is built with the family's transformers class (hidden 64,
3 layers, several experts), saved with `save_pretrained` in BF16 (the Hub layout that class
writes), reloaded in float32 with eager attention, and its outputs recorded in expected.json:

  logits      transformers' float32 logits at every prompt position (one forward pass)
  nll         -log_softmax(logits[t])[prompt[t+1]]
  greedy_ids  8 argmax steps (EOS ignored), each a full forward pass over the sequence so far
  routing     per token of prompt + greedy[:-1], per MoE layer: the experts and weights that a
              forward hook on transformers' router module saw (descending weight order)

Seeds are tried until every top-2 logit gap and every gap between adjacent router logits among
the k+1 largest exceeds 1e-3 (softmax is monotonic, so the logits order the probabilities too;
gaps of probabilities near 0 would reject every seed of a 16-expert router), so nekochat's float32
result must pick the same tokens and experts.  The format is make_fixtures.py's; the Swift parity
tests (Tests/NekoModelTests/ParityTests.swift) run every fixture through prefill, token-by-token
decode and uneven chunks.

    /work/venv/bin/python Tests/Reference/families/make_family_fixtures.py   (about 20 s)

Needs transformers 5.25 and torch (Tests/Reference/requirements.txt); CI never runs it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import make_fixtures as mf  # noqa: E402

import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import (GraniteMoeConfig, GraniteMoeForCausalLM, MixtralConfig,  # noqa: E402
                          MixtralForCausalLM, OlmoeConfig, OlmoeForCausalLM)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
OUT = mf.DEFAULT_OUT
KEEP = ("config.json", "generation_config.json")
ROUTER_STD = mf.STD_ROUTER

COMMON = dict(vocab_size=128, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, intermediate_size=32, bos_token_id=1, eos_token_id=2,
              pad_token_id=None, max_position_embeddings=4096)

CASES = [
    dict(name="hf_olmoe", cls=OlmoeForCausalLM, seed=21000, prompt_len=10,
         description="OLMoE saved by transformers (OlmoeForCausalLM.save_pretrained, BF16): QK-norm over the "
                     "whole q/k projections, clip_qkv 1.2, 12 experts top-4 (no renormalisation), no shared "
                     "expert, untied head; logits are transformers' float32 logits",
         config=lambda: OlmoeConfig(**{**COMMON, "intermediate_size": 16}, num_experts=12, num_experts_per_tok=4, clip_qkv=1.2,
                                    norm_topk_prob=False, tie_word_embeddings=False)),
    dict(name="hf_olmoe64_top8", cls=OlmoeForCausalLM, seed=24000, prompt_len=10,
         description="OLMoE's own routing shape, saved by transformers (OlmoeForCausalLM.save_pretrained, BF16): "
                     "64 experts top-8 (no renormalisation), QK-norm over the whole projections, hidden 32, tied "
                     "head; the chat and routing-view tests run on it; logits are transformers' float32 logits",
         config=lambda: OlmoeConfig(**{**COMMON, "hidden_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
                                       "intermediate_size": 4}, num_experts=64, num_experts_per_tok=8,
                                    tie_word_embeddings=True)),
    dict(name="hf_mixtral_swa", cls=MixtralForCausalLM, seed=22000, prompt_len=10,
         description="Mixtral saved by transformers (MixtralForCausalLM.save_pretrained, BF16: "
                     "block_sparse_moe.experts.N.w1/w2/w3): sliding window 4 (the prompt is longer), 8 "
                     "experts top-2 renormalised, tied head; logits are transformers' float32 logits",
         config=lambda: MixtralConfig(**{**COMMON, "intermediate_size": 24}, num_local_experts=8, num_experts_per_tok=2, sliding_window=4,
                                      tie_word_embeddings=True)),
    dict(name="hf_granitemoe", cls=GraniteMoeForCausalLM, seed=23000, prompt_len=9,
         description="Granite-MoE saved by transformers (GraniteMoeForCausalLM.save_pretrained, BF16: fused "
                     "block_sparse_moe.input_linear/output_linear): top-k of the logits then softmax over 2 "
                     "of 6, embedding x12, attention scale 0.015625, residual x0.22, logits / 6, attention "
                     "biases; logits are transformers' float32 logits",
         config=lambda: GraniteMoeConfig(**COMMON, num_local_experts=6, num_experts_per_tok=2,
                                         embedding_multiplier=12.0, attention_multiplier=0.015625,
                                         residual_multiplier=0.22, logits_scaling=6.0, attention_bias=True,
                                         tie_word_embeddings=False)),
]


def init_weights(model, seed):
    """Small-std init (make_fixtures.py's scales), so logits are O(1-10) and routers decide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                v = 1.0 + mf.STD_NORM * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name or "lm_head" in name:
                v = mf.STD_EMBED * torch.randn(p.shape, generator=g)
            elif name.endswith(("mlp.gate.weight", "router.weight", "router.layer.weight")):
                v = ROUTER_STD * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = mf.STD_BIAS * torch.randn(p.shape, generator=g)
            else:
                v = mf.STD_MAT * torch.randn(p.shape, generator=g)
            p.copy_(v)


def routers(model):
    """(layer index, router module) for every MoE layer."""
    out = []
    for i, layer in enumerate(model.model.layers):
        block = getattr(layer, "mlp", None) or getattr(layer, "block_sparse_moe", None)
        r = getattr(block, "gate", None) or getattr(block, "router", None)
        if r is not None and hasattr(r, "weight") and r.weight.dim() == 2:
            out.append((i, r))
    return out


class HF:
    """A saved model reloaded by transformers in float32 (eager attention), its routers hooked."""

    def __init__(self, d):
        self.m = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        self.m.eval()
        self.routes = {}
        self.layers = []
        for i, r in routers(self.m):
            r.register_forward_hook(self._hook(i))
            self.layers.append(i)

    def _hook(self, i):
        def f(_mod, _inp, out):
            logits, weights, idx = out
            self.routes[i] = (logits.detach().double().clone(), weights.detach().double().clone(), idx.detach().clone())
        return f

    @torch.no_grad()
    def logits(self, ids):
        self.routes = {}
        return self.m(torch.tensor([ids])).logits[0].double()

    def greedy(self, prompt, n):
        seq, gen = list(prompt), []
        for _ in range(n):
            nxt = int(torch.argmax(self.logits(seq)[-1]))
            gen.append(nxt)
            seq.append(nxt)
        return gen


def router_gap(routes, k):
    """Smallest gap between adjacent router logits among the k+1 largest, over tokens and layers."""
    gap = float("inf")
    for logits, _w, _idx in routes.values():
        s = torch.sort(logits, dim=-1, descending=True).values[:, : k + 1]
        gap = min(gap, float((s[:, :-1] - s[:, 1:]).min()))
    return gap


def save_keys(d):
    keys = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "pt") as fh:
                for k in fh.keys():
                    keys[k] = list(fh.get_slice(k).get_shape())
    return keys


def build(case):
    name = case["name"]
    pg = torch.Generator().manual_seed(case["seed"] + 777)
    tmp = tempfile.mkdtemp(prefix=name + "_")
    for seed in range(case["seed"], case["seed"] + 300):
        torch.manual_seed(seed)
        model = case["cls"](case["config"]())
        init_weights(model, seed)
        d = os.path.join(tmp, str(seed))
        model.to(torch.bfloat16).save_pretrained(d)
        hf = HF(d)
        if seed == case["seed"]:
            prompt = [int(x) for x in torch.randint(3, hf.m.config.vocab_size, (case["prompt_len"],), generator=pg)]
        k = hf.m.config.num_experts_per_tok
        gen = hf.greedy(prompt, mf.N_GREEDY)
        full = prompt + gen[:-1]
        logits = hf.logits(full)
        top2 = torch.topk(logits, 2, dim=-1).values
        lg = float((top2[:, 0] - top2[:, 1]).min())
        rg = router_gap(hf.routes, k)
        if lg > mf.MARGIN and rg > mf.MARGIN and len(set(gen)) >= mf.MIN_DISTINCT_GREEDY:
            break
    else:
        raise SystemExit(f"{name}: no seed passed the margins")

    out = os.path.join(OUT, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    shutil.copytree(d, out)
    for f in os.listdir(out):
        if f not in KEEP and not f.endswith(".safetensors"):
            os.remove(os.path.join(out, f))
    for f in os.listdir(out):
        os.chmod(os.path.join(out, f), 0o644)

    # The record: routing of every token fed through the model (prompt + greedy[:-1]), from the
    # hooks of the full-sequence pass; logits of the prompt from the prompt-only pass.
    hf = HF(out)
    assert hf.greedy(prompt, mf.N_GREEDY) == gen
    hf.logits(full)
    routing = []
    for t in range(len(full)):
        per = []
        for L in hf.layers:
            _logits, w, idx = hf.routes[L]
            order = sorted(range(k), key=lambda j: (-float(w[t, j]), int(idx[t, j])))
            per.append({"layer": L, "experts": [int(idx[t, j]) for j in order],
                        "weights": [mf.fmt(w[t, j]) for j in order]})
        routing.append(per)
    plog = hf.logits(prompt)
    lp = torch.log_softmax(plog, dim=-1)
    expected = {
        "name": name,
        "description": case["description"],
        "prompt_ids": prompt,
        "logits": [[mf.fmt(v) for v in row] for row in plog.tolist()],
        "nll": [mf.fmt(-lp[t, prompt[t + 1]]) for t in range(len(prompt) - 1)],
        "greedy_ids": gen,
        "routing": routing,
        "moe_layers": hf.layers,
        "tied_router_layers": [],
    }
    mf.write_expected(os.path.join(out, "expected.json"), expected)
    size = mf.dir_bytes(out)
    assert size < mf.MAX_DIR_BYTES, f"{name}: {size} bytes"
    keys = save_keys(out)
    layer0 = {k: v for k, v in keys.items() if ".layers.0." in k and not any(f"experts.{e}." in k for e in range(1, 64))}
    print(f"{name}: seed {seed}, min top-2 logit gap {lg:.3g}, min router gap {rg:.3g}, {size // 1024} KiB")
    print(f"  layer 0 as saved: {json.dumps(layer0)}")
    shutil.rmtree(tmp)


def main():
    torch.set_num_threads(2)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    for case in CASES:
        build(case)



if __name__ == "__main__":
    main()
