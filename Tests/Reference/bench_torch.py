#!/usr/bin/env python3
"""PyTorch eager baseline for nekochat: prefill N prompt tokens, then greedy-decode M tokens with a
KV cache, using nekomind_ref.py's forward pass (same code as the reference, other dtypes).

    /work/venv/bin/python Tests/Reference/bench_torch.py /work/nekomind-full \
        [--prompt-tokens 512] [--gen-tokens 128] [--threads 2] [--compute bf16|f32]

--compute bf16 (default): weights stay BF16 as stored; every matmul runs in BF16 (activations
    rounded to BF16 at the matmul input, output returned as float32); residual stream, RMSNorm,
    RoPE, attention scores/softmax and router softmax in float32.
--compute f32: weights upcast to float32 once at load (2x memory); everything in float32.
Prints one JSON line: prefill_tokens_per_s, decode_tokens_per_s, peak_rss_bytes, compute_dtype, ...
(decode_tokens_per_s = M single-token forward passes / their wall time; prefill is one batched
forward of N tokens; weight pages are pre-faulted before timing.  torch's CPU matmuls use oneDNN/MKL, not OpenBLAS, so OPENBLAS_* do not apply.)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nekomind_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compute", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    t0 = time.perf_counter()
    wd = torch.bfloat16 if a.compute == "bf16" else torch.float32
    model = ref.NekoMindRef.from_dir(a.model_dir, weight_dtype=wd, compute_dtype=torch.float32,
                                     log=lambda m: None)
    # weights are views of the safetensors mmap: touch every page once so page faults are not
    # timed as prefill/decode (the first run otherwise varied 10x here)
    for ly in model.layers:
        for v in ly.values():
            for w in (v if isinstance(v, list) else [v]):
                if isinstance(w, torch.Tensor):
                    float(w.reshape(-1)[::1024].float().sum())
    for w in (model.embed, model.head, model.final_norm):
        float(w.reshape(-1)[::1024].float().sum())
    load_s = time.perf_counter() - t0

    g = torch.Generator().manual_seed(a.seed)
    prompt = torch.randint(3, model.cfg.vocab_size, (a.prompt_tokens,), generator=g).tolist()

    # warm-up (kernel selection, allocator) on a separate cache
    wc = {}
    lg, _ = model.forward(prompt[:16], cache=wc, start=0, record=False)
    model.forward([int(lg[-1].argmax())], cache=wc, start=16, record=False)
    del wc

    cache = {}
    t1 = time.perf_counter()
    logits, _ = model.forward(prompt, cache=cache, start=0, record=False)
    prefill_s = time.perf_counter() - t1

    pos = len(prompt)
    nxt = int(logits[-1].argmax())
    out = [nxt]
    t2 = time.perf_counter()
    for _ in range(a.gen_tokens):
        logits, _ = model.forward([nxt], cache=cache, start=pos, record=False)
        pos += 1
        nxt = int(logits[-1].argmax())
        out.append(nxt)
    decode_s = time.perf_counter() - t2

    res = {
        "prefill_tokens_per_s": round(a.prompt_tokens / prefill_s, 3),
        "decode_tokens_per_s": round(a.gen_tokens / decode_s, 3),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "compute_dtype": ("bf16 matmuls (BF16 weights), f32 residual/norm/attention/softmax"
                          if a.compute == "bf16" else "f32 (weights upcast to f32 at load)"),
        "weight_dtype": str(wd).replace("torch.", ""),
        "threads": a.threads,
        "prompt_tokens": a.prompt_tokens,
        "gen_tokens": a.gen_tokens,
        "prefill_s": round(prefill_s, 3),
        "decode_s": round(decode_s, 3),
        "load_s": round(load_s, 2),
        "torch": torch.__version__,
        "first_tokens": out[:8],
    }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
