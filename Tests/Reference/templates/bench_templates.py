#!/usr/bin/env python3
"""Time jinja2 rendering of a 50-turn conversation with the largest chat template (by characters), through the same
machinery as make_template_goldens.py (transformers' _compile_jinja_template + render_jinja_template, fixed clock).

Usage: /work/venv/bin/python Tests/Reference/templates/bench_templates.py [--turns 50] [--repeat 200] [--template PATH]
Prints one JSON object.
"""

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_template_goldens as mtg  # noqa: E402
from transformers.utils import chat_template_utils as ctu  # noqa: E402


def largest_template(shared_dir):
    paths = sorted(glob.glob(os.path.join(mtg.LOCAL_DIR, "*.jinja")))
    if os.path.isdir(shared_dir):
        paths += sorted(glob.glob(os.path.join(shared_dir, "*.jinja")))
    paths = [p for p in paths if not os.path.basename(p).startswith(("syntax_", "hand_"))]
    return max(paths, key=lambda p: (len(mtg.read_template(p)), os.path.basename(p)))


def conversation(turns):
    msgs = [{"role": "system", "content": "You are a helpful assistant. Answer briefly."}]
    for i in range(turns):
        if i % 2 == 0:
            msgs.append({"role": "user", "content": f"Question {i // 2 + 1}: what is {i} + {i + 1}? Explain in one sentence."})
        else:
            msgs.append({"role": "assistant", "content": f"{i - 1} + {i} = {2 * i - 1}. Adding the two numbers gives {2 * i - 1}."})
    return msgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--template")
    ap.add_argument("--shared", default=os.environ.get("NEKO_SHARED_TEMPLATES", mtg.DEFAULT_SHARED))
    args = ap.parse_args()

    mtg.install_fixed_clock()
    path = args.template or largest_template(args.shared)
    name = os.path.basename(path)
    text = mtg.read_template(path)
    kwargs = mtg.special_tokens_for(name)
    msgs = conversation(args.turns)

    t0 = time.perf_counter()
    ctu._cached_compile_jinja_template(text)  # uncached compile (parse + codegen + Python compile)
    compile_ms = (time.perf_counter() - t0) * 1e3

    def render():
        return mtg.render_case(text, msgs, None, None, True, kwargs)

    first = render()  # warm the lru_cache'd compile
    if "error" in first:
        raise SystemExit(f"{name} raised on the benchmark conversation: {first['error']}")
    samples = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        render()
        samples.append((time.perf_counter() - t) * 1e3)
    med = statistics.median(samples)
    # The template alone (no transformers pre-processing): compiled.render(...) with the same variables.
    compiled = ctu._compile_jinja_template(text)
    plain = ctu._alias_reasoning_fields(ctu._plain_template_data(ctu._normalize_chat_messages(msgs)))
    raw = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        compiled.render(messages=plain, tools=None, documents=None, add_generation_prompt=True, **kwargs)
        raw.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({
        "template": name,
        "template_chars": len(text),
        "turns": args.turns,
        "messages": len(msgs),
        "output_chars": len(first["output"]),
        "repeat": args.repeat,
        "compile_ms": round(compile_ms, 3),
        "render_ms_median": round(med, 4),  # render_jinja_template path, incl. transformers' input conversion
        "render_ms_min": round(min(samples), 4),
        "render_ms_mean": round(statistics.fmean(samples), 4),
        "ms_per_turn": round(med / args.turns, 5),
        "template_render_only_ms_median": round(statistics.median(raw), 4),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }, indent=1))


if __name__ == "__main__":
    main()
