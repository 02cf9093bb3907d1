#!/usr/bin/env python3
"""Aggregate and per-request decode speed of an OpenAI-compatible server at 1, 2, 4… concurrent
streams (the official openai client, one thread per stream; all start together).

    python bench_serve.py --base http://127.0.0.1:PORT/v1 --model ID [--streams 1,2,4] [--tokens 64] [--reps 2]

Per request: completion tokens over the time from its first to its last token (decode).
Aggregate: every request's completion tokens over the wall time from the first first-token to
the last last-token. Prints a Markdown table.
"""
import argparse
import statistics
import threading
import time

import openai


def one(client, model, tokens, out, i):
    t0 = time.time()
    first = last = None
    n = 0
    s = client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"Tell me a story, number {i}."}],
                                       max_tokens=tokens, temperature=0.8, seed=i, stream=True,
                                       stream_options={"include_usage": True})
    for chunk in s:
        if chunk.usage:
            n = chunk.usage.completion_tokens
        for ch in chunk.choices:
            if ch.delta.content:
                now = time.time()
                first = first or now
                last = now
    out[i] = (t0, first, last, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--streams", default="1,2,4")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    client = openai.OpenAI(base_url=a.base, api_key="unused", max_retries=0, timeout=600)
    one(client, a.model, 8, {}, 999)   # warm up
    print("| streams | aggregate tok/s | per request tok/s (mean) | time to first token s (mean) |")
    print("|---:|---:|---:|---:|")
    for n in [int(x) for x in a.streams.split(",")]:
        best = None
        for _ in range(a.reps):
            out = {}
            threads = [threading.Thread(target=one, args=(client, a.model, a.tokens, out, i)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rows = list(out.values())
            start = min(r[1] for r in rows)
            end = max(r[2] for r in rows)
            agg = sum(r[3] for r in rows) / (end - start)
            per = statistics.mean((r[3] - 1) / (r[2] - r[1]) for r in rows if r[2] > r[1])
            ttft = statistics.mean(r[1] - r[0] for r in rows)
            if best is None or agg > best[0]:
                best = (agg, per, ttft)
        print(f"| {n} | {best[0]:.1f} | {best[1]:.1f} | {best[2]:.2f} |")


if __name__ == "__main__":
    main()
