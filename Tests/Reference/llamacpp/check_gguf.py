#!/usr/bin/env python3
"""Check that a GGUF from make_gguf.py computes what README.md says: NekoMind's forward pass with the
shared-expert gate fixed at 1 (glm4moe has none). Compares llama.cpp's logits (llama-cpp-python) on
random token ids with nekomind_ref.py's float32 forward pass, once with the gate forced to 1 (should
agree to BF16 rounding) and once as NekoMind really is (how far the GGUF's outputs are from NekoMind).

    /work/venv/bin/python Tests/Reference/llamacpp/check_gguf.py \
        [--model Sources/nekochat/Resources/DemoModel] [--gguf /work/gguf/demo-bf16.gguf] [--tokens 32]
Prints one JSON line; exit 1 if the gate=1 comparison disagrees (top-1 < 90 % or cosine < 0.999).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nekomind_ref as ref  # noqa: E402


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return {"top1_agree": float((a.argmax(-1) == b.argmax(-1)).mean()), "min_cosine": float(cos.min()),
            "max_abs_diff": float(np.abs(a - b).max()), "logit_rms": float(np.sqrt((b ** 2).mean()))}


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(repo, "Sources/nekochat/Resources/DemoModel"))
    ap.add_argument("--gguf", default="/work/gguf/demo-bf16.gguf")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    from llama_cpp import Llama

    torch.set_num_threads(a.threads)
    model = ref.NekoMindRef.from_dir(a.model, weight_dtype=torch.float32, compute_dtype=torch.float32,
                                     log=lambda m: None)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.cfg.vocab_size, (a.tokens,), generator=g).tolist()

    llm = Llama(model_path=a.gguf, n_ctx=max(64, a.tokens), n_batch=a.tokens, n_threads=a.threads,
                logits_all=True, verbose=False)
    llm.eval(ids)
    got = np.array(llm.scores[: len(ids)], dtype=np.float64)

    want_real = model.forward(ids, cache={}, start=0, record=False)[0].double().numpy()
    sig = torch.sigmoid
    ref.torch.sigmoid = lambda x: torch.ones_like(x)  # the shared-expert gate is the model's only sigmoid
    try:
        want_gate1 = model.forward(ids, cache={}, start=0, record=False)[0].double().numpy()
    finally:
        ref.torch.sigmoid = sig
    res = {"gguf": a.gguf, "model": a.model, "tokens": len(ids),
           "vs_reference_with_shared_gate_1": compare(got, want_gate1),
           "vs_reference_as_nekomind": compare(got, want_real)}
    print(json.dumps(res))
    c = res["vs_reference_with_shared_gate_1"]
    sys.exit(0 if c["top1_agree"] >= 0.9 and c["min_cosine"] >= 0.999 else 1)


if __name__ == "__main__":
    main()
