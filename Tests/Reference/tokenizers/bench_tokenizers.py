#!/usr/bin/env python3
"""Single-thread encode throughput of the Python `tokenizers` library (the reference numbers).

    bench_tokenizers.py TOKENIZER_JSON TEXT_FILE [--repeat 3] [--whole] [--no-special]

Prints one JSON object. Throughput is MB/s of UTF-8 input (MB = 1e6 bytes), best of --repeat runs:
  line_by_line   tok.encode(line) for every line of the file (lines split on "\\n", "\\n" dropped)
  encode_batch   one tok.encode_batch(all lines) (RAYON_NUM_THREADS=1: one thread)
  whole_text     one tok.encode(whole file)   (only with --whole)
Both line modes count the bytes of the lines themselves (the file size minus its newlines).
"""

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def best_of(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer")
    ap.add_argument("text")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--whole", action="store_true", help="also time one encode() of the whole file")
    ap.add_argument("--no-special", action="store_true", help="add_special_tokens=False")
    args = ap.parse_args()

    tok = Tokenizer.from_file(args.tokenizer)
    text = open(args.text, encoding="utf-8").read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    line_bytes = sum(len(l.encode("utf-8")) for l in lines)
    add = not args.no_special

    tok.encode_batch(lines[:2000], add_special_tokens=add)  # warm-up
    t_line, n_line = best_of(lambda: sum(len(tok.encode(l, add_special_tokens=add).ids) for l in lines), args.repeat)
    t_batch, n_batch = best_of(lambda: sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=add)),
                               args.repeat)
    assert n_line == n_batch
    res = {
        "tokenizer": args.tokenizer,
        "text": args.text,
        "tokenizers_version": tokenizers.__version__,
        "python": platform.python_version(),
        "threads": 1,
        "add_special_tokens": add,
        "bytes": line_bytes,
        "lines": len(lines),
        "tokens": n_line,
        "bytes_per_token": round(line_bytes / max(n_line, 1), 3),
        "line_by_line": {"seconds": round(t_line, 4), "mb_per_s": round(line_bytes / t_line / 1e6, 3),
                         "tokens_per_s": round(n_line / t_line)},
        "encode_batch": {"seconds": round(t_batch, 4), "mb_per_s": round(line_bytes / t_batch / 1e6, 3),
                         "tokens_per_s": round(n_batch / t_batch)},
    }
    if args.whole:
        whole_bytes = len(text.encode("utf-8"))
        t_whole, n_whole = best_of(lambda: len(tok.encode(text, add_special_tokens=add).ids), args.repeat)
        res["whole_text"] = {"bytes": whole_bytes, "tokens": n_whole, "seconds": round(t_whole, 4),
                             "mb_per_s": round(whole_bytes / t_whole / 1e6, 3)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
