#!/usr/bin/env python3
"""Independent check of nekomind_ref.py against transformers' own parent architectures.

No transformers class computes NekoMind, but its parents do:
  * Qwen3MoeForCausalLM  — QK-norm, no shared expert   -> Tests/Fixtures/engine/hf_qwen3_moe/
  * Qwen2MoeForCausalLM  — gated shared expert, q/k/v biases (qkv_bias), no QK-norm
                                                       -> Tests/Fixtures/engine/hf_qwen2_moe/
Both tiny, dense layers 0-1 (mlp_only_layers=[0,1]), random init with fixed seeds, saved by
transformers' save_pretrained in BF16 with config.json exactly as transformers writes it.  Each saved
directory is reloaded with transformers in float32 (eager attention) and run through
nekomind_ref.py (float64); logits, greedy continuations and router top-k choices must agree.
expected.json: "logits" are TRANSFORMERS' logits; "nll", "greedy_ids", "routing" come from the
reference (the greedy ids and the top-k experts are asserted equal to transformers').

Third check: fixture fused_experts_bf16 (written by make_fixtures.py in the fused layout
mlp.experts.gate_up_proj / down_proj) is loaded by Qwen3MoeForCausalLM and compared with its
expected.json, which pins the fused gate/up order to transformers'.  It also reports what
save_pretrained writes for the experts (per expert by default; fused with
save_original_format=False) and checks the reference reads that fused save identically.

    /work/venv/bin/python Tests/Reference/hf_crosscheck.py   (run make_fixtures.py first)
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402
import nekomind_ref as ref  # noqa: E402

import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import (AutoModelForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM,  # noqa: E402
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
OUT = mf.DEFAULT_OUT
KEEP = ("config.json", "generation_config.json")
LOGIT_TOL = 1e-3   # float32 transformers vs float64 reference; observed ~1e-5


def quiet(_msg):
    pass


CASES = [
    dict(name="hf_qwen3_moe", cls=Qwen3MoeForCausalLM, seed=11000, prompt_len=9,
         description="saved by transformers (Qwen3MoeForCausalLM.save_pretrained, BF16): QK-norm, no shared "
                     "expert, mlp_only_layers [0,1], top-2 of 8, norm_topk_prob true, untied lm_head; config "
                     "spellings as transformers 5 writes them (num_local_experts, rope_parameters); logits "
                     "are transformers' float32 logits",
         config=lambda: Qwen3MoeConfig(
             vocab_size=96, hidden_size=48, head_dim=16, intermediate_size=64, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, moe_intermediate_size=24, num_experts=8,
             num_experts_per_tok=2, norm_topk_prob=True, mlp_only_layers=[0, 1], decoder_sparse_step=1,
             rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, rms_norm_eps=1e-6,
             tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, max_position_embeddings=32768)),
    dict(name="hf_qwen2_moe", cls=Qwen2MoeForCausalLM, seed=12000, prompt_len=8,
         description="saved by transformers (Qwen2MoeForCausalLM.save_pretrained, BF16): shared expert + "
                     "sigmoid gate, q/k/v biases announced as qkv_bias, no QK-norm, mlp_only_layers [0,1], "
                     "top-2 of 8, norm_topk_prob false, tied head; config spellings as transformers 5 "
                     "writes them; logits are transformers' float32 logits",
         config=lambda: Qwen2MoeConfig(
             vocab_size=96, hidden_size=48, head_dim=16, intermediate_size=64, num_hidden_layers=4,
             num_attention_heads=4, num_key_value_heads=2, moe_intermediate_size=24,
             shared_expert_intermediate_size=32, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False,
             mlp_only_layers=[0, 1], decoder_sparse_step=1, qkv_bias=True,
             rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, rms_norm_eps=1e-6,
             tie_word_embeddings=True, bos_token_id=1, eos_token_id=[2, 3], max_position_embeddings=32768)),
]


def init_weights(model, seed):
    """Small-std init (same scales as make_fixtures.py) so logits are O(1-10)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                v = 1.0 + mf.STD_NORM * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name or "lm_head" in name:
                v = mf.STD_EMBED * torch.randn(p.shape, generator=g)
            elif name.endswith("mlp.gate.weight"):
                v = mf.STD_ROUTER * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = mf.STD_BIAS * torch.randn(p.shape, generator=g)
            else:
                v = mf.STD_MAT * torch.randn(p.shape, generator=g)
            p.copy_(v)


def clean_dir(d):
    for f in os.listdir(d):
        if f not in KEEP and not f.startswith("model.safetensors") and not (
                f.startswith("model-") and f.endswith(".safetensors")):
            os.remove(os.path.join(d, f))
    for f in os.listdir(d):
        os.chmod(os.path.join(d, f), 0o644)


class HF:
    """A transformers model reloaded in float32 with router hooks."""

    def __init__(self, d):
        self.m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        self.m.eval()
        self.routes = {}
        for i, layer in enumerate(self.m.model.layers):
            gate = getattr(layer.mlp, "gate", None)
            if gate is not None and hasattr(gate, "top_k"):
                gate.register_forward_hook(self._hook(i))

    def _hook(self, i):
        def f(_mod, _inp, out):
            _logits, scores, idx = out
            self.routes[i] = (idx.detach().clone(), scores.detach().float().clone())
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


def compare(hf: HF, model: ref.NekoMindRef, prompt, label):
    """Returns (max |logit diff| over prompt+greedy positions, ref greedy, ref logits, ref routing)."""
    gen, rlog, rrec = ref.greedy(model, prompt, mf.N_GREEDY)
    full = list(prompt) + gen[:-1]
    hlog = hf.logits(full)
    diff = float((hlog - rlog).abs().max())
    assert diff < LOGIT_TOL, f"{label}: logits differ by {diff}"
    hgen = hf.greedy(prompt, mf.N_GREEDY)
    assert hgen == gen, f"{label}: greedy differs: transformers {hgen} vs reference {gen}"
    hf.logits(full)  # refresh router hooks for the full sequence
    assert sorted(hf.routes) == sorted(rrec), f"{label}: MoE layers differ {sorted(hf.routes)} vs {sorted(rrec)}"
    wdiff = 0.0
    for L in rrec:
        hidx, hw = hf.routes[L]
        assert torch.equal(hidx.cpu(), rrec[L]["experts"]), f"{label}: layer {L} top-k experts differ"
        wdiff = max(wdiff, float((hw.double() - rrec[L]["weights"]).abs().max()))
    print(f"  {label}: max |logit diff| transformers(f32) vs reference(f64) = {diff:.3g} over {len(full)} "
          f"positions; greedy equal {gen}; top-k experts equal in all MoE layers "
          f"(max router weight diff {wdiff:.3g})")
    return diff, gen, rlog, rrec, hlog


def save_keys(d):
    keys = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "pt") as fh:
                keys += list(fh.keys())
    return keys


def build_case(case, report):
    name = case["name"]
    pg = torch.Generator().manual_seed(case["seed"] + 777)
    tmp = tempfile.mkdtemp(prefix=name + "_")
    chosen = None
    for seed in range(case["seed"], case["seed"] + 200):
        torch.manual_seed(seed)
        model = case["cls"](case["config"]())
        init_weights(model, seed)
        model = model.to(torch.bfloat16)
        d = os.path.join(tmp, str(seed))
        model.save_pretrained(d)
        r = ref.NekoMindRef.from_dir(d, log=quiet)
        if seed == case["seed"]:
            prompt = [int(x) for x in torch.randint(3, r.cfg.vocab_size, (case["prompt_len"],), generator=pg)]
        gen, logits, rec = ref.greedy(r, prompt, mf.N_GREEDY)
        lg, rg = mf.margins(logits, rec, r.cfg.num_experts_per_tok, [])
        if lg > mf.MARGIN and rg > mf.MARGIN and len(set(gen)) >= mf.MIN_DISTINCT_GREEDY:
            chosen = seed
            break
    assert chosen is not None, f"{name}: no seed passed the margins"
    out = os.path.join(OUT, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    shutil.copytree(os.path.join(tmp, str(chosen)), out)
    written = sorted(os.listdir(out))
    clean_dir(out)
    print(f"{name}: seed {chosen} (tried {chosen - case['seed'] + 1}), min top2 logit gap {lg:.4g}, "
          f"min router gap {rg:.4g}; transformers wrote {written}")

    r = ref.NekoMindRef.from_dir(out, log=quiet)
    hf = HF(out)
    diff, gen, rlog, rrec, hlog = compare(hf, r, prompt, name)
    P = len(prompt)
    exp = mf.expected_record(name, case["description"], prompt, gen, rlog, rrec, r.cfg, [])
    exp["logits"] = [[mf.fmt(v) for v in row] for row in hlog[:P].tolist()]  # transformers' logits
    mf.write_expected(os.path.join(out, "expected.json"), exp)
    cfg = json.load(open(os.path.join(out, "config.json")))
    keys = save_keys(out)
    expert_keys = sorted({k.split("mlp.experts.")[1].split(".", 1)[1] if k.split("mlp.experts.")[1][0].isdigit()
                          else k.split("mlp.experts.")[1] for k in keys if "mlp.experts." in k})
    size = mf.dir_bytes(out)
    assert size < mf.MAX_DIR_BYTES, f"{name}: {size} bytes"
    report[name] = dict(seed=chosen, max_abs_logit_diff=diff, size=size,
                        config_keys={k: cfg.get(k) for k in ("num_experts", "num_local_experts", "n_routed_experts",
                                                              "rope_theta", "rope_parameters", "qkv_bias",
                                                              "attention_bias", "head_dim", "dtype",
                                                              "torch_dtype", "tie_word_embeddings")
                                     if k in cfg},
                        saved_expert_tensor_kinds=expert_keys)
    print(f"  config.json spellings: {report[name]['config_keys']}")
    print(f"  saved expert tensors (default save_pretrained): {expert_keys}; dir {size / 1024:.0f} KiB")

    # fused save: save_original_format=False keeps transformers' in-memory fused tensors
    fd = os.path.join(tmp, "fused")
    hf.m.to(torch.bfloat16).save_pretrained(fd, save_original_format=False)
    fkeys = [k for k in save_keys(fd) if "mlp.experts" in k]
    fused_kinds = sorted({k.split("mlp.experts.")[1] for k in fkeys})
    rf = ref.NekoMindRef.from_dir(fd, log=quiet)
    lf, _ = rf.forward(prompt)
    ld, _ = r.forward(prompt)
    fdiff = float((lf - ld).abs().max())
    assert fdiff == 0.0, f"fused save read differently: {fdiff}"
    hf2 = HF(fd)
    d2 = float((hf2.logits(prompt) - ld).abs().max())
    assert d2 < LOGIT_TOL
    print(f"  save_pretrained(save_original_format=False) writes fused experts {fused_kinds}; "
          f"reference reads it bit-identically to the per-expert save; transformers reload diff {d2:.3g}")
    report[name]["fused_save_expert_tensors"] = fused_kinds
    shutil.rmtree(tmp)


def check_fused_fixture(report):
    d = os.path.join(OUT, "fused_experts_bf16")
    exp = json.load(open(os.path.join(d, "expected.json")))
    keys = save_keys(d)
    assert any(k.endswith("mlp.experts.gate_up_proj") for k in keys), "fixture is not in the fused layout"
    hf = HF(d)
    assert isinstance(hf.m, Qwen3MoeForCausalLM)
    r = ref.NekoMindRef.from_dir(d, log=quiet)
    prompt = exp["prompt_ids"]
    hl = hf.logits(prompt)
    el = torch.tensor(exp["logits"], dtype=torch.float64)
    diff, gen, rlog, rrec, _ = compare(hf, r, prompt, "fused_experts_bf16 via Qwen3MoeForCausalLM")
    assert gen == exp["greedy_ids"]
    ediff = float((hl - el).abs().max())
    assert ediff < LOGIT_TOL
    # the same check with gate/up swapped must FAIL, proving the order matters and is right
    sw = {}
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as fh:
        for k in fh.keys():
            v = fh.get_tensor(k)
            if k.endswith("gate_up_proj"):
                I = v.shape[1] // 2
                v = torch.cat([v[:, I:], v[:, :I]], dim=1)
            sw[k] = v
    rs = ref.NekoMindRef(r.cfg, sw, log=quiet)
    swdiff = float((rs.forward(prompt)[0] - hl).abs().max())
    assert swdiff > 0.01
    print(f"  fused fixture: transformers vs expected.json max diff {ediff:.3g}; with gate/up halves "
          f"swapped the reference would differ by {swdiff:.3g}")
    report["fused_experts_bf16"] = dict(max_abs_logit_diff=max(diff, ediff), swapped_diff=swdiff)


def main():
    torch.set_num_threads(2)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    report = {}
    for case in CASES:
        build_case(case, report)
    check_fused_fixture(report)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk in ("seed", "max_abs_logit_diff")}
                      for k, v in report.items()}))


if __name__ == "__main__":
    main()
