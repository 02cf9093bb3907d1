#!/usr/bin/env python3
"""nekochat vs llama.cpp vs PyTorch eager on NekoMind's shape, side by side, on this machine.

    /work/venv/bin/python Tests/Reference/bench_compare.py --nekochat .build-llama/release/nekochat \
        --model /work/nekomind-full --gguf-dir /work/gguf --llama-bench /work/llama-build/bin/llama-bench \
        [--threads 2] [--prompt 256] [--gen 64] [--reps 3] [--json OUT.json] [--no-torch] [--torch-reps N]

One round runs every configuration once:
  nekochat bench --weights bf16|q8|q4 (a weights value the binary refuses is reported "n/a"), plus
      bf16 once more under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` when either is set;
  llama-bench -p P -n G -t T on the BF16 / Q8_0 / Q4_0 GGUFs (make_gguf.py) twice: as is (pp P and tg G
      from an empty context, llama-bench's usual numbers), and `-p 0 -n G -d P`: tg G after a P-token
      context, which is what nekochat and bench_torch.py time as decode;
  Tests/Reference/bench_torch.py (BF16).
--reps rounds are run one after another (interleaved, so a neighbour's build slows all alike); the
table gives the best of the rounds and the min-max spread. Numbers on a shared 2-core machine are noisy.
Decode is weight-bandwidth bound: the table also gives, per engine, the weight bytes read per token
(make_gguf.py --bytes: the GGUF lacks NekoMind's shared-expert gate, stores norms F32, adds a zero
expert bias) and the GB/s that decode rate implies; "normalised" ratios scale by those bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "llamacpp"))

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
NEKO_WEIGHTS = ("bf16", "q8", "q4")
GGUF_TYPES = (("bf16", "BF16"), ("q8", "Q8_0"), ("q4", "Q4_0"))


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(cmd, timeout, env=None):
    """(rc, stdout, stderr, seconds); rc None on timeout."""
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", e.stderr or "", time.time() - t0


def last_json_object(text: str):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def first_error_line(err: str, out: str) -> str:
    for line in (err + "\n" + out).splitlines():
        if line.strip():
            return line.strip()[:200]
    return "no output"


# ----------------------------------------------------------------------------- the machine

def machine_info(threads: int) -> dict:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    field = lambda k: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(k + ":")), "?")  # noqa: E731
    flags = set(field("Flags").split())
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    return {
        "cpu": field("Model name"), "vendor": field("Vendor ID"), "cpus": field("CPU(s)"),
        "l2": field("L2 cache"), "l3": field("L3 cache"), "mem_gib": round(int(mem) / 2**20, 1),
        "avx2": "avx2" in flags, "avx512f": "avx512f" in flags, "avx512_bf16": "avx512_bf16" in flags,
        "avx512_vnni": "avx512_vnni" in flags, "avx_vnni": "avx_vnni" in flags,
        "kernel": platform.release(), "threads": threads,
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
    }


def measure_bandwidth(threads: int) -> dict:
    src = HERE / "llamacpp" / "readbw.c"
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "readbw")
        rc, out, err, _ = run(["cc", "-O3", "-march=native", "-pthread", str(src), "-o", exe], 120)
        if rc != 0:
            return {"error": "cannot build readbw.c: " + first_error_line(err, out)}
        rc, out, err, _ = run([exe, str(threads), "1024", "5"], 300)
        j = last_json_object(out) if rc == 0 else None
        return j or {"error": "readbw failed: " + first_error_line(err, out)}


def neko_bandwidth(j: dict):
    """A read-bandwidth figure in nekochat's own bench JSON, if it has one: (GB/s, key)."""
    for k, v in j.items():
        if "bandwidth" in k.lower() and isinstance(v, (int, float)) and v > 0:
            return (v / 1e9 if v > 1e6 else float(v)), k
    return None


def neko_bytes_per_token(j: dict):
    for k, v in j.items():
        if re.search(r"bytes.*(per_)?token", k.lower()) and isinstance(v, (int, float)) and v > 0:
            return float(v), k
    return None


# ----------------------------------------------------------------------------- the engines

def nekochat_once(a, weights: str, unset_openblas: bool) -> dict:
    cmd = [a.nekochat, "bench", "--model", a.model, "--prompt-tokens", str(a.prompt), "--gen-tokens", str(a.gen),
           "--threads", str(a.threads), "--json", "--weights", weights]
    env = dict(os.environ)
    if unset_openblas:
        for k in OPENBLAS_VARS:
            env.pop(k, None)
        shown = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE " + shlex.join(cmd)
    else:
        shown = shlex.join(cmd)
    rc, out, err, secs = run(cmd, a.timeout, env)
    j = last_json_object(out) if rc == 0 else None
    if not j or "decode_tokens_per_s" not in j:
        why = "timed out" if rc is None else first_error_line(err, out)
        return {"ok": False, "cmd": shown, "rc": rc, "error": why, "seconds": round(secs, 1)}
    return {"ok": True, "cmd": shown, "decode": float(j["decode_tokens_per_s"]),
            "prefill": float(j.get("prefill_tokens_per_s") or 0), "raw": j, "seconds": round(secs, 1)}


def llama_bench_once(a, gguf: Path) -> dict:
    """pp P + tg G from an empty context, and tg G at depth P (one rep each; llama-bench warms up first)."""
    base = [a.llama_bench, "-m", str(gguf), "-t", str(a.threads), "-r", "1", "-o", "json"] + shlex.split(a.llama_extra)
    res = {"ok": False, "cmds": []}
    for extra in (["-p", str(a.prompt), "-n", str(a.gen)], ["-p", "0", "-n", str(a.gen), "-d", str(a.prompt)]):
        cmd = base + extra
        res["cmds"].append(shlex.join(cmd))
        rc, out, err, secs = run(cmd, a.timeout)
        try:
            rows = json.loads(out) if rc == 0 else None
        except json.JSONDecodeError:
            rows = None
        if not rows:
            res["error"] = "timed out" if rc is None else first_error_line(err, out)
            return res
        for r in rows:
            ts = max(r.get("samples_ts") or [r["avg_ts"]])
            if r["n_prompt"] > 0 and r["n_gen"] == 0:
                res["prefill"] = ts
            elif r["n_gen"] > 0 and r.get("n_depth", 0) == 0:
                res["decode_d0"] = ts
            elif r["n_gen"] > 0:
                res["decode"] = ts
        res.setdefault("raw", []).extend(rows)
    res["ok"] = all(k in res for k in ("prefill", "decode", "decode_d0"))
    if not res["ok"]:
        res["error"] = "llama-bench JSON lacked a pp/tg row"
    return res


def torch_once(a) -> dict:
    cmd = [a.python, str(HERE / "bench_torch.py"), a.model, "--prompt-tokens", str(a.prompt),
           "--gen-tokens", str(a.gen), "--threads", str(a.threads), "--compute", "bf16"]
    rc, out, err, secs = run(cmd, a.timeout)
    j = last_json_object(out) if rc == 0 else None
    if not j:
        return {"ok": False, "cmd": shlex.join(cmd), "error": "timed out" if rc is None else first_error_line(err, out)}
    return {"ok": True, "cmd": shlex.join(cmd), "decode": j["decode_tokens_per_s"], "prefill": j["prefill_tokens_per_s"],
            "raw": j, "seconds": round(secs, 1)}


# ----------------------------------------------------------------------------- summary

def stats(vals):
    vals = [v for v in vals if v]
    if not vals:
        return None
    mid = sorted(vals)[len(vals) // 2] if len(vals) % 2 else sum(sorted(vals)[len(vals) // 2 - 1:][:2]) / 2
    return {"best": max(vals), "median": mid, "min": min(vals), "n": len(vals), "values": vals,
            "spread_pct": round(100 * (max(vals) - min(vals)) / max(vals), 1)}


def fmt(s, digits=1):
    if not s:
        return "n/a"
    if s["n"] == 1:
        return f"{s['best']:.{digits}f}"
    return f"**{s['best']:.{digits}f}** (med {s['median']:.{digits}f}; {s['min']:.{digits}f}–{s['best']:.{digits}f})"


def find_gguf(d: Path, tag: str):
    c = sorted(p for p in d.glob("*.gguf") if tag.lower() in p.name.lower() and "demo" not in p.name.lower())
    return c[0] if c else None


def main():
    ap = argparse.ArgumentParser(description="nekochat vs llama.cpp vs PyTorch on NekoMind's shape")
    ap.add_argument("--nekochat", required=True, help="path to the nekochat binary")
    ap.add_argument("--model", required=True, help="NekoMind checkpoint directory (HF layout)")
    ap.add_argument("--gguf-dir", required=True, type=Path, help="folder with *bf16*.gguf, *q8_0*.gguf, *q4_0*.gguf")
    ap.add_argument("--llama-bench", required=True, help="path to llama-bench")
    ap.add_argument("--llama-extra", default="",
                    help="more llama-bench arguments, e.g. '--repack 0' (its AMX repack of Q8_0/Q4_0 "
                         "crashed llama-bench 0c1e57098 on a Xeon with AMX)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, help="save every raw number here")
    ap.add_argument("--python", default=sys.executable, help="python with torch, for bench_torch.py")
    ap.add_argument("--no-torch", action="store_true", help="skip bench_torch.py")
    ap.add_argument("--torch-reps", type=int, help="rounds that include bench_torch.py (default --reps; it is slow)")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per single run")
    a = ap.parse_args()
    for p, what in ((a.nekochat, "--nekochat"), (a.llama_bench, "--llama-bench")):
        if not os.access(p, os.X_OK):
            ap.error(f"{what} {p} is not an executable")

    import make_gguf  # per-token byte accounting of both formats
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    mach = machine_info(a.threads)
    load0 = os.getloadavg()
    ggufs = {w: find_gguf(a.gguf_dir, t) for w, t in GGUF_TYPES}
    openblas_set = any(mach["openblas_env"].values())
    configs = [("nekochat", w, False) for w in NEKO_WEIGHTS]
    if openblas_set:
        configs.append(("nekochat", "bf16", True))
    configs += [("llama.cpp", w, False) for w, _ in GGUF_TYPES if ggufs[w]]
    if not a.no_torch:
        configs.append(("torch", "bf16", False))
    results = {c: [] for c in configs}
    refused = set()  # nekochat weights values the binary refused: not retried
    for rnd in range(a.reps):
        for c in configs:
            eng, w, unset = c
            if eng == "nekochat" and (w, unset) in refused:
                continue
            if eng == "torch" and a.torch_reps is not None and rnd >= a.torch_reps:
                continue
            log(f"[round {rnd + 1}/{a.reps}] {eng} {w}{' (OPENBLAS_* unset)' if unset else ''} ...")
            if eng == "nekochat":
                r = nekochat_once(a, w, unset)
                if not r["ok"] and r.get("rc") not in (None, 0):
                    refused.add((w, unset))
            elif eng == "llama.cpp":
                r = llama_bench_once(a, ggufs[w])
            else:
                r = torch_once(a)
            log(f"    {'decode %.2f tok/s, prefill %.2f tok/s' % (r['decode'], r['prefill']) if r['ok'] else 'n/a: ' + r['error']}")
            results[c].append(r)
    load1 = os.getloadavg()

    # bandwidth: nekochat's own figure if its JSON has one, else readbw.c
    bw = None
    for r in results.get(("nekochat", "bf16", False), []):
        if r["ok"] and (nb := neko_bandwidth(r["raw"])):
            bw = {"best_gb_per_s": nb[0], "source": f"nekochat bench JSON field {nb[1]!r}"}
            break
    if bw is None:
        m = measure_bandwidth(a.threads)
        bw = {**m, "source": f"Tests/Reference/llamacpp/readbw.c, {a.threads} threads, 1 GiB, best of 5"}

    # per-token weight bytes
    neko_bytes = make_gguf.decode_bytes_hf(Path(a.model))["total"]
    gguf_bytes = {w: make_gguf.decode_bytes_gguf(p)["total"] for w, p in ggufs.items() if p}
    bytes_of = {}
    for c in configs:
        eng, w, _ = c
        if eng == "llama.cpp":
            bytes_of[c] = (gguf_bytes[w], "GGUF tensors")
        else:
            nb = next((neko_bytes_per_token(r["raw"]) for r in results[c] if r["ok"] and neko_bytes_per_token(r["raw"])), None)
            if nb:
                bytes_of[c] = (nb[0], f"nekochat JSON {nb[1]}")
            elif w == "bf16":
                bytes_of[c] = (neko_bytes, "checkpoint (BF16)")
            elif w in gguf_bytes:
                bytes_of[c] = (gguf_bytes[w] * neko_bytes / gguf_bytes["bf16"] if "bf16" in gguf_bytes else gguf_bytes[w],
                               f"assumed = GGUF {dict(GGUF_TYPES)[w]} layout")
    summary = {}
    for c in configs:
        ok = [r for r in results[c] if r["ok"]]
        s = {"decode": stats([r["decode"] for r in ok]), "prefill": stats([r["prefill"] for r in ok]),
             "error": next((r["error"] for r in results[c] if not r["ok"]), None)}
        if c[0] == "llama.cpp":
            s["decode_d0"] = stats([r["decode_d0"] for r in ok])
        summary[c] = s

    # ----- the table
    L = []
    L.append(f"### nekochat vs llama.cpp vs PyTorch — NekoMind1.5 shape, {a.prompt}-token prompt, {a.gen} decoded tokens")
    L.append("")
    flags = ", ".join(f"{k}: {'yes' if mach[k] else 'no'}" for k in ("avx512f", "avx512_bf16", "avx512_vnni", "avx2"))
    L.append(f"- **Machine**: {mach['cpu']} ({mach['vendor']}), {mach['cpus']} CPUs, L2 {mach['l2']}, L3 {mach['l3']}, "
             f"{mach['mem_gib']} GiB RAM, Linux {mach['kernel']}; {flags}")
    bwtxt = f"{bw['best_gb_per_s']:.1f} GB/s" if "best_gb_per_s" in bw else "n/a (" + bw.get("error", "?") + ")"
    passes = f" (passes: {', '.join(str(x) for x in bw['passes_gb_per_s'])})" if bw.get("passes_gb_per_s") else ""
    L.append(f"- **Read bandwidth**: {bwtxt}{passes} — {bw['source']}")
    ob = ", ".join(f"{k}={v!r}" if v is not None else f"{k} unset" for k, v in mach["openblas_env"].items())
    L.append(f"- **Threads**: {a.threads} for every engine; **{ob}**"
             + ("; one extra nekochat bf16 run per round with both unset" if openblas_set else " (no extra unset run needed)"))
    L.append(f"- **Rounds**: {a.reps}, interleaved; best of the rounds (median; min–max); load average {load0[0]:.2f} at start, "
             f"{load1[0]:.2f} at end (other engineers share these cores: treat differences under ~10% as noise)")
    lb_raw = next((r["raw"][0] for r in results.get(("llama.cpp", "bf16", False), []) if r["ok"]), None)
    if lb_raw:
        L.append(f"- **llama.cpp**: build {lb_raw.get('build_commit')} ({lb_raw.get('backends')}), llama-bench defaults: "
                 f"n_batch {lb_raw.get('n_batch')}, n_ubatch {lb_raw.get('n_ubatch')}, KV {lb_raw.get('type_k')}/{lb_raw.get('type_v')}, "
                 f"flash_attn {lb_raw.get('flash_attn')} (-1 = auto), repack {lb_raw.get('repack')}, poll {lb_raw.get('poll')} "
                 f"(its threads busy-wait between ops); "
                 f"arch glm4moe GGUFs from make_gguf.py")
    tr = next((r["raw"] for r in results.get(("torch", "bf16", False), []) if r["ok"]), None)
    if tr:
        L.append(f"- **PyTorch**: {tr.get('torch')} eager, {tr.get('compute_dtype')}")
    L.append("")
    L.append(f"| engine | weights | decode tok/s (after {a.prompt}-token prompt) | prefill tok/s ({a.prompt} tokens) "
             f"| weight MB/token | decode weight GB/s | nekochat ÷ llama.cpp decode (normalised) | nekochat ÷ llama.cpp prefill |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|")
    llama_by_w = {c[1]: summary[c] for c in configs if c[0] == "llama.cpp"}
    for c in configs:
        eng, w, unset = c
        s = summary[c]
        name = eng + (" (OPENBLAS_* unset)" if unset else "")
        wname = dict(GGUF_TYPES)[w] if eng == "llama.cpp" else w
        if not s["decode"]:
            err = (s["error"] or "no result").replace("|", "/")
            L.append(f"| {name} | {wname} | n/a | n/a | | | | n/a: {err} |")
            continue
        b = bytes_of.get(c)
        gbs = f"{s['decode']['best'] * b[0] / 1e9:.1f}" if b else ""
        mb = f"{b[0] / 1e6:.1f}" if b else ""
        rd = rp = ""
        if eng == "nekochat" and w in llama_by_w and llama_by_w[w]["decode"]:
            ld, lp = llama_by_w[w]["decode"]["best"], llama_by_w[w]["prefill"]["best"]
            raw = s["decode"]["best"] / ld
            norm = raw * (b[0] / gguf_bytes[w]) if b else raw
            rd = f"{raw:.2f}× ({norm:.2f}×)"
            rp = f"{s['prefill']['best'] / lp:.2f}×" if s["prefill"] else ""
        L.append(f"| {name} | {wname} | {fmt(s['decode'])} | {fmt(s['prefill'])} | {mb} | {gbs} | {rd} | {rp} |")
    lc = [(c, summary[c]) for c in configs if c[0] == "llama.cpp" and summary[c].get("decode_d0")]
    if lc:
        L.append("")
        L.append(f"llama-bench's own tg{a.gen} (empty context): " + "; ".join(
            f"{dict(GGUF_TYPES)[c[1]]} {fmt(s['decode_d0'])} tok/s" for c, s in lc) + ".")
    L.append("")
    L.append("Weight MB/token: weights read per decoded token (k/E of each routed-expert tensor, the whole LM head, one "
             "embedding row), from " + "; ".join(sorted({f"{c[0]} {c[1]}: {bytes_of[c][1]}" for c in configs
                                                          if c in bytes_of and summary[c]["decode"]})) + ". "
             "Normalised ratio = ratio × (nekochat bytes ÷ GGUF bytes), i.e. the ratio of weight GB/s. KV-cache reads "
             "(~11 MB/token at this context in F16) are not counted.")
    table = "\n".join(L)
    print(table)

    if a.json:
        def key(c):
            return f"{c[0]}:{c[1]}" + (":openblas-unset" if c[2] else "")
        dump = {"started": started, "args": {k: str(v) for k, v in vars(a).items()}, "machine": mach,
                "bandwidth": bw, "loadavg": {"start": load0, "end": load1},
                "bytes_per_token": {"nekomind_checkpoint": neko_bytes, "gguf": gguf_bytes,
                                    "used": {key(c): v for c, v in bytes_of.items()}},
                "ggufs": {w: str(p) for w, p in ggufs.items()},
                "summary": {key(c): s for c, s in summary.items()},
                "runs": {key(c): results[c] for c in configs}, "table_markdown": table}
        a.json.write_text(json.dumps(dump, indent=1))
        log(f"raw numbers in {a.json}")


if __name__ == "__main__":
    main()
