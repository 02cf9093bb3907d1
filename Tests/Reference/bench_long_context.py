#!/usr/bin/env python3
"""Long context: nekochat vs llama.cpp, prefill of a D-token prompt and decode after it.

    /work/venv/bin/python Tests/Reference/bench_long_context.py --nekochat .build/release/nekochat \
        --model /tmp/nekomind-full --gguf /work/gguf/nekomind-bf16.gguf --weights bf16 \
        --llama-bench /work/llama-build/bin/llama-bench [--depths 256,4096,16384,32768] [--gen 32] \
        [--kv f16,f32] [--llama-kv f16,q8_0] [--llama-fa 0,1] [--threads 2] [--json OUT] [--markdown OUT]

For every depth D, one after another:
  nekochat bench --depth D --gen-tokens G --kv-cache K --weights W --json   for each K in --kv
      (prefill: the chat's path, 256-token passes; decode: G tokens after D, with the read bandwidth
      measured in the same run and the bytes each token reads — weights plus the KV cache at depth);
  llama-bench -p D -n 0 and -p 0 -n G -d D   for each -fa in --llama-fa and each cache type in
      --llama-kv (a quantised cache only with -fa 1, which llama.cpp needs for it), -r 1.
llama.cpp's best configuration per depth is its fastest valid one, prefill and decode each. A
depth where llama.cpp is not given (--llama-bench omitted, or --llama-max-depth below it: one 32k
prefill takes many minutes here) reports nekochat alone. The table says the CPU, and ratios come from
one run on one machine: numbers on a shared host move with its neighbours.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], timeout: int) -> tuple[int, str, str]:
    log(" ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return 124, "", f"timed out after {timeout} s"


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nekochat(a, depth: int, kv: str) -> dict:
    rc, out, err = run([a.nekochat, "bench", "--model", a.model, "--weights", a.weights, "--depth", str(depth),
                        "--gen-tokens", str(a.gen), "--kv-cache", kv, "--threads", str(a.threads), "--json"], a.timeout)
    if rc != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1]}
    j = json.loads(out)
    limit = j["read_bandwidth_bytes_per_s"] / (j["active_weight_bytes_per_token"] + j["kv_bytes_per_token"])
    return {"prefill": j["prefill_tokens_per_s"], "decode": j["decode_tokens_per_s"], "decode_limit": limit,
            "decode_fraction_of_limit": j["decode_tokens_per_s"] / limit, "peak_rss_mib": j["peak_rss_bytes"] / 2**20,
            "kv_bytes_per_token": j["kv_bytes_per_token"], "cpu": j["cpu"], "simd": j["simd"]}


def llama(a, depth: int, fa: str, kv: str) -> dict:
    base = [a.llama_bench, "-m", a.gguf, "-t", str(a.threads), "-r", "1", "-o", "json", "-fa", fa, "-ctk", kv, "-ctv", kv]
    res = {}
    for key, extra in (("prefill", ["-p", str(depth), "-n", "0"]), ("decode", ["-p", "0", "-n", str(a.gen), "-d", str(depth)])):
        rc, out, err = run(base + extra, a.timeout)
        try:
            rows = json.loads(out) if rc == 0 else None
        except json.JSONDecodeError:
            rows = None
        if not rows:
            res["error"] = (err.strip().splitlines() or ["failed"])[-1]
            continue
        res[key] = rows[0]["avg_ts"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nekochat", required=True)
    ap.add_argument("--model", required=True, help="the checkpoint folder nekochat runs")
    ap.add_argument("--weights", default="bf16", help="nekochat --weights (bf16, q8, q4)")
    ap.add_argument("--gguf", help="the same model as GGUF, for llama.cpp")
    ap.add_argument("--llama-bench", help="llama-bench; without it nekochat runs alone")
    ap.add_argument("--depths", default="256,4096,16384,32768")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--kv", default="f16,f32", help="nekochat --kv-cache values")
    ap.add_argument("--llama-kv", default="f16,q8_0", help="llama.cpp cache types (-ctk/-ctv)")
    ap.add_argument("--llama-fa", default="0,1", help="llama.cpp flash attention settings")
    ap.add_argument("--llama-max-depth", type=int, default=16384)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    a = ap.parse_args()
    if a.llama_bench and not a.gguf:
        ap.error("--llama-bench needs --gguf")

    results = []
    for depth in [int(d) for d in a.depths.split(",")]:
        row = {"depth": depth, "nekochat": {}, "llama": {}}
        for kv in a.kv.split(","):
            row["nekochat"][kv] = nekochat(a, depth, kv)
            log(f"nekochat D={depth} kv {kv}: {row['nekochat'][kv]}")
        if a.llama_bench and depth <= a.llama_max_depth:
            for fa in a.llama_fa.split(","):
                for kv in a.llama_kv.split(","):
                    if kv not in ("f16", "f32", "bf16") and fa == "0":
                        continue  # llama.cpp needs flash attention for a quantised V cache
                    row["llama"][f"fa{fa} {kv}"] = llama(a, depth, fa, kv)
                    log(f"llama.cpp D={depth} -fa {fa} {kv}: {row['llama'][f'fa{fa} {kv}']}")
        results.append(row)

    cpu = next((r["cpu"] for row in results for r in row["nekochat"].values() if "cpu" in r), cpu_name())
    lines = [f"CPU: {cpu}, {a.threads} threads; weights {a.weights}; {a.gen} tokens decoded after D.", "",
             "| D | nekochat KV | prefill tok/s | decode tok/s | decode vs limit | peak RSS MiB | llama.cpp best prefill / decode (config) | prefill / decode ratio |",
             "|---:|---|---:|---:|---:|---:|---|---|"]
    for row in results:
        best_p = max(((v["prefill"], k) for k, v in row["llama"].items() if "prefill" in v), default=None)
        best_d = max(((v["decode"], k) for k, v in row["llama"].items() if "decode" in v), default=None)
        for kv, r in row["nekochat"].items():
            if "error" in r:
                lines.append(f"| {row['depth']} | {kv} | error: {r['error']} | | | | | |")
                continue
            theirs = f"{best_p[0]:.1f} ({best_p[1]}) / {best_d[0]:.1f} ({best_d[1]})" if best_p and best_d else "—"
            ratio = f"{r['prefill'] / best_p[0]:.2f}× / {r['decode'] / best_d[0]:.2f}×" if best_p and best_d else "—"
            lines.append(f"| {row['depth']} | {kv} | {r['prefill']:.1f} | {r['decode']:.1f} | {100 * r['decode_fraction_of_limit']:.0f} % "
                         f"| {r['peak_rss_mib']:.0f} | {theirs} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    if a.markdown:
        open(a.markdown, "w").write(table + "\n")
    if a.json:
        json.dump({"cpu": cpu, "threads": a.threads, "weights": a.weights, "results": results}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
