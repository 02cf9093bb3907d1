#!/usr/bin/env python3
"""Writes Tests/Fixtures/trace/<fixture>.json: every named intermediate of the float64 reference
forward pass (nekomind_ref.trace_dump) over each fixture's prompt, for the Swift test that
compares the engine's ForwardContext.trace layer by layer. Deterministic; a few seconds.

    /work/venv/bin/python Tests/Reference/make_trace_fixture.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import nekomind_ref as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURES = ["neko_mini_bf16", "hf_qwen2_moe", "no_shared_no_qknorm_step2"]


def main():
    torch.set_num_threads(2)
    out_dir = os.path.join(ROOT, "Tests/Fixtures/trace")
    os.makedirs(out_dir, exist_ok=True)
    for name in FIXTURES:
        d = os.path.join(ROOT, "Tests/Fixtures/engine", name)
        expected = json.load(open(os.path.join(d, "expected.json")))
        model = ref.NekoMindRef.from_dir(d, log=lambda m: None)
        dump = ref.trace_dump(model, expected["prompt_ids"])
        dump["fixture"] = name
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w") as f:
            json.dump(dump, f, separators=(",", ":"))
        print(f"{path}: {os.path.getsize(path)} bytes, names {sorted(dump['values'])}")


if __name__ == "__main__":
    main()
