#!/usr/bin/env python3
"""Write a same-shape GGUF of a NekoMind checkpoint (Hugging Face layout) that llama.cpp runs.

    /work/venv/bin/python Tests/Reference/llamacpp/make_gguf.py SRC_DIR OUT.gguf --type bf16|q8_0|q4_0 \
        [--llama-quantize /work/llama-build/bin/llama-quantize | --python-quant]
    /work/venv/bin/python Tests/Reference/llamacpp/make_gguf.py --bytes SRC_DIR [GGUF ...]   # per-token bytes only

Architecture: llama.cpp's `glm4moe` (src/models/glm4-moe.cpp), the closest one to NekoMind. Read from
that source (llama-cpp-python 0.3.36, llama.cpp 0c1e57098), glm4moe has every part NekoMind has:
GQA with separate q/k/v (no bias needed), optional per-head QK-norm (RMSNorm over head_dim, before
RoPE), NeoX (rotate-half) RoPE over rope.dimension_count (= head_dim here), leading dense SwiGLU layers
(leading_dense_block_count), stacked routed experts with a configurable router (expert_gating_func
softmax, expert_weights_norm = norm_topk_prob, expert_weights_scale 1), one shared expert of
n_ff_exp * expert_shared_count, RMSNorm, a tied LM head (no output.weight -> token_embd is used).
What differs from NekoMind, exactly:
  1. The shared expert has NO sigmoid gate in glm4moe: y = routed + shared(h), where NekoMind has
     y = routed + sigmoid(h . w_gate) * shared(h). mlp.shared_expert_gate.weight ([1, hidden] per MoE
     layer) is dropped: the GGUF reads 1 x hidden fewer weights per MoE layer per token (16 x 1024 x 2 B
     = 32 KiB of ~592 MB in BF16) and skips one dot product + sigmoid + scale per layer. Outputs differ
     from NekoMind's (the benchmark feeds token ids, so speed is unaffected; text is not faithful).
  2. glm4moe requires blk.N.exp_probs_b.bias (DeepSeek-V3's expert-selection bias): written as zeros
     (F32 [n_experts]), so selection is unchanged; it costs one add of n_experts floats per layer.
  3. Norm weights are stored F32 (llama.cpp's convention; NekoMind stores BF16): +2 B per norm weight
     (18 x (2 x 1024 + 2 x 128) + 1024 weights: ~85 KB per token).
  4. glm4moe can only make the FIRST k layers dense: a checkpoint whose dense layers are not a prefix
     (mlp_only_layers / decoder_sparse_step) is refused.
Tensor shapes, the routing (softmax over all experts, top-k, no renormalisation for NekoMind), the
dense/MoE layer split, GQA, QK-norm and RoPE theta are the same: per-token weight bytes differ only by
the items above. `--bytes` prints both counts so a comparison can be normalised.

Quantisation: --type q8_0/q4_0 quantises every 2-D weight matrix to that type, token embedding / LM head
included, like `llama-quantize --pure` (the router ffn_gate_inp stays BF16 and norms F32, as
llama-quantize does). With --llama-quantize PATH (the default when /work/llama-build/bin/llama-quantize
exists) a BF16 GGUF is written to OUT.bf16.tmp and llama-quantize --pure converts it (fast, C++);
--python-quant uses gguf-py's numpy quantiser instead (slow: minutes).

Tokenizer: llama.cpp needs one to load a model. When SRC_DIR has tokenizer.json (a SentencePiece-style
BPE with byte fallback, like the demo model's) it is converted to a `llama` (SPM) vocabulary: tokens,
token types (byte tokens <0xNN> as BYTE, added/special tokens as CONTROL) and scores = -(merge rank)
so llama.cpp's highest-score-first merging follows the BPE merge order; the chat template from
chat_template.jinja / tokenizer_config.json is included. Otherwise a minimal valid SPM vocabulary of
vocab_size entries is synthesised (<unk> <s> </s>, 256 byte tokens, filler pieces, ChatML specials at
the top): the benchmarks feed token ids, so the text is irrelevant there.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_LLAMA_QUANTIZE = "/work/llama-build/bin/llama-quantize"
ARCH = "glm4moe"


# ----------------------------------------------------------------------------- the checkpoint

def load_config(src: Path) -> dict:
    """config.json with Sources/NekoModel/README.md's defaults and other spellings resolved."""
    c = json.loads((src / "config.json").read_text())
    g = lambda *ks, d=None: next((c[k] for k in ks if k in c and c[k] is not None), d)  # noqa: E731
    rp = c.get("rope_parameters") or {}
    cfg = {
        "hidden": g("hidden_size"),
        "layers": g("num_hidden_layers"),
        "heads": g("num_attention_heads"),
        "kv_heads": g("num_key_value_heads", d=g("num_attention_heads")),
        "intermediate": g("intermediate_size"),
        "moe_intermediate": g("moe_intermediate_size"),
        "shared_intermediate": g("shared_expert_intermediate_size", d=0),
        "experts": g("num_experts", "num_local_experts", "n_routed_experts", d=0),
        "top_k": g("num_experts_per_tok", d=0),
        "norm_topk_prob": bool(g("norm_topk_prob", d=False)),
        "mlp_only_layers": list(g("mlp_only_layers", d=[])),
        "first_k_dense_replace": g("first_k_dense_replace", d=0),
        "decoder_sparse_step": g("decoder_sparse_step", d=1),
        "eps": g("rms_norm_eps", d=1e-6),
        "rope_theta": rp.get("rope_theta", g("rope_theta", d=1e6)),
        "ctx": g("max_position_embeddings", d=32768),
        "vocab": g("vocab_size"),
        "tie": g("tie_word_embeddings"),
        "bias": bool(g("attention_bias", "qkv_bias", d=False)),
        "bos": g("bos_token_id", d=1),
        "eos": g("eos_token_id", d=2),
    }
    cfg["head_dim"] = g("head_dim", d=cfg["hidden"] // cfg["heads"])
    cfg["dense"] = [i for i in range(cfg["layers"])
                    if i in cfg["mlp_only_layers"] or i < cfg["first_k_dense_replace"] or not cfg["experts"]
                    or (i + 1) % cfg["decoder_sparse_step"] != 0]
    return cfg


class Checkpoint:
    """Tensors of a safetensors checkpoint (one file or shards + index), read lazily through mmap."""

    def __init__(self, src: Path):
        from safetensors import safe_open
        idx = src / "model.safetensors.index.json"
        if idx.exists():
            files = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.where = {}
        self.handles = [safe_open(str(src / f), framework="pt") for f in files]
        for h in self.handles:
            for k in h.keys():
                self.where[k] = h

    def names(self):
        return self.where.keys()

    def get(self, name):
        if name not in self.where:
            raise SystemExit(f"error: tensor {name} missing from the checkpoint")
        return self.where[name].get_tensor(name)


def to_bf16_u16(t) -> np.ndarray:
    import torch
    return t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)


def to_f32(t) -> np.ndarray:
    import torch
    return t.to(torch.float32).contiguous().numpy()


# ----------------------------------------------------------------------------- the tokenizer

def chat_template(src: Path) -> str | None:
    j = src / "chat_template.jinja"
    if j.exists():
        return j.read_text()
    tc = src / "tokenizer_config.json"
    if tc.exists():
        t = json.loads(tc.read_text()).get("chat_template")
        if isinstance(t, list):
            t = next((x["template"] for x in t if x.get("name") == "default"), t[0]["template"] if t else None)
        return t
    return None


def vocab_from_tokenizer_json(src: Path, vocab_size: int):
    """(tokens, scores, types, specials) for an SPM-style vocabulary from a HF BPE tokenizer.json."""
    import gguf
    tj = json.loads((src / "tokenizer.json").read_text())
    m = tj["model"]
    if m.get("type") != "BPE" or not m.get("byte_fallback"):
        raise SystemExit("error: tokenizer.json is not a BPE tokenizer with byte fallback; "
                         "this converter writes an SPM (`llama`) vocabulary")
    rank = {}
    for r, mg in enumerate(m.get("merges", [])):
        a, b = mg if isinstance(mg, list) else mg.split(" ", 1)
        rank.setdefault(a + b, r)
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]
    types = [gguf.TokenType.UNUSED] * vocab_size
    scores = [-1e9] * vocab_size
    for piece, i in m["vocab"].items():
        if i >= vocab_size:
            continue
        tokens[i] = piece
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            types[i], scores[i] = gguf.TokenType.BYTE, 0.0
        else:
            types[i] = gguf.TokenType.NORMAL
            scores[i] = -float(rank[piece]) if piece in rank else 0.0  # single characters: no merge
    specials = {}
    for at in tj.get("added_tokens", []):
        i = at["id"]
        if i < vocab_size:
            tokens[i] = at["content"]
            types[i] = gguf.TokenType.CONTROL if at.get("special") else gguf.TokenType.USER_DEFINED
            scores[i] = 0.0
            specials[at["content"]] = i
    if m.get("unk_token") in m["vocab"]:
        specials.setdefault(m["unk_token"], m["vocab"][m["unk_token"]])
    tc = src / "tokenizer_config.json"
    tconf = json.loads(tc.read_text()) if tc.exists() else {}
    return tokens, scores, types, specials, tconf


def synthetic_vocab(vocab_size: int):
    """A minimal valid SPM vocabulary: <unk> <s> </s>, 256 byte tokens, filler, specials at the top."""
    import gguf
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [gguf.TokenType.UNKNOWN,
                                                                     gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>"); scores.append(0.0); types.append(gguf.TokenType.BYTE)
    top = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|pad|>", "<|sys|>", "<|tool|>"]
    top = top[: max(0, min(len(top), vocab_size - len(tokens)))]
    n_fill = vocab_size - len(tokens) - len(top)
    for i in range(n_fill):
        tokens.append(f"\u2581t{i}"); scores.append(-float(i)); types.append(gguf.TokenType.NORMAL)
    for t in top:
        tokens.append(t); scores.append(0.0); types.append(gguf.TokenType.CONTROL)
    specials = {t: i for i, t in enumerate(tokens) if t in ("<unk>", "<s>", "</s>", *top)}
    return tokens, scores, types, specials, {}


# ----------------------------------------------------------------------------- the GGUF

def tensor_plan(cfg: dict, ck: Checkpoint):
    """[(gguf name, logical shape in PyTorch order, role, producer() -> torch tensor)]."""
    import torch
    L = lambda i, s: f"model.layers.{i}.{s}"  # noqa: E731
    plan = [("token_embd.weight", (cfg["vocab"], cfg["hidden"]), "embed", lambda: ck.get("model.embed_tokens.weight"))]
    names = set(ck.names())
    tie = cfg["tie"] if cfg["tie"] is not None else "lm_head.weight" not in names
    if not tie:
        plan.append(("output.weight", (cfg["vocab"], cfg["hidden"]), "head", lambda: ck.get("lm_head.weight")))
    plan.append(("output_norm.weight", (cfg["hidden"],), "norm", lambda: ck.get("model.norm.weight")))
    H, D, E = cfg["hidden"], cfg["head_dim"], cfg["experts"]
    for i in range(cfg["layers"]):
        g = lambda s, i=i: (lambda: ck.get(L(i, s)))  # noqa: E731
        plan += [
            (f"blk.{i}.attn_norm.weight", (H,), "norm", g("input_layernorm.weight")),
            (f"blk.{i}.attn_q.weight", (cfg["heads"] * D, H), "attn", g("self_attn.q_proj.weight")),
            (f"blk.{i}.attn_k.weight", (cfg["kv_heads"] * D, H), "attn", g("self_attn.k_proj.weight")),
            (f"blk.{i}.attn_v.weight", (cfg["kv_heads"] * D, H), "attn", g("self_attn.v_proj.weight")),
        ]
        if cfg["bias"]:
            plan += [(f"blk.{i}.attn_{x}.bias", (n * D,), "bias", g(f"self_attn.{x}_proj.bias"))
                     for x, n in (("q", cfg["heads"]), ("k", cfg["kv_heads"]), ("v", cfg["kv_heads"]))]
        plan.append((f"blk.{i}.attn_output.weight", (H, cfg["heads"] * D), "attn", g("self_attn.o_proj.weight")))
        if L(i, "self_attn.q_norm.weight") in names:
            plan += [(f"blk.{i}.attn_q_norm.weight", (D,), "norm", g("self_attn.q_norm.weight")),
                     (f"blk.{i}.attn_k_norm.weight", (D,), "norm", g("self_attn.k_norm.weight"))]
        plan.append((f"blk.{i}.post_attention_norm.weight", (H,), "norm", g("post_attention_layernorm.weight")))
        if i in cfg["dense"]:
            I = cfg["intermediate"]
            plan += [(f"blk.{i}.ffn_gate.weight", (I, H), "dense", g("mlp.gate_proj.weight")),
                     (f"blk.{i}.ffn_up.weight", (I, H), "dense", g("mlp.up_proj.weight")),
                     (f"blk.{i}.ffn_down.weight", (H, I), "dense", g("mlp.down_proj.weight"))]
            continue
        M, S = cfg["moe_intermediate"], cfg["shared_intermediate"]
        plan.append((f"blk.{i}.ffn_gate_inp.weight", (E, H), "router", g("mlp.gate.weight")))
        plan.append((f"blk.{i}.exp_probs_b.bias", (E,), "bias", lambda: torch.zeros(E)))
        for w, shp in (("gate", (M, H)), ("up", (M, H)), ("down", (H, M))):
            stack = lambda i=i, w=w: torch.stack([ck.get(L(i, f"mlp.experts.{e}.{w}_proj.weight")) for e in range(E)])
            plan.append((f"blk.{i}.ffn_{w}_exps.weight", (E, *shp), "experts", stack))
        if S:
            for w, shp in (("gate", (S, H)), ("up", (S, H)), ("down", (H, S))):
                plan.append((f"blk.{i}.ffn_{w}_shexp.weight", shp, "shared", g(f"mlp.shared_expert.{w}_proj.weight")))
    return plan


def write_gguf(src: Path, out: Path, qtype: str, log=print) -> None:
    import gguf
    Q = gguf.GGMLQuantizationType
    cfg = load_config(src)
    dense = cfg["dense"]
    if dense != list(range(len(dense))):
        raise SystemExit(f"error: dense layers {dense} are not the first k layers; glm4moe cannot express that")
    S, M = cfg["shared_intermediate"], cfg["moe_intermediate"]
    if S and S % M:
        raise SystemExit(f"error: glm4moe's shared expert is n_ff_exp x count; {S} is not a multiple of {M}")
    ck = Checkpoint(src)
    plan = tensor_plan(cfg, ck)
    dropped = sorted(n for n in ck.names() if n.endswith("mlp.shared_expert_gate.weight"))

    w = gguf.GGUFWriter(str(out), ARCH)
    w.add_name(f"NekoMind (same-shape {ARCH} GGUF of {src.name})")
    w.add_file_type({"bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                     "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[qtype])
    w.add_context_length(cfg["ctx"])
    w.add_embedding_length(cfg["hidden"])
    w.add_block_count(cfg["layers"])
    w.add_feed_forward_length(cfg["intermediate"] or 0)
    w.add_head_count(cfg["heads"])
    w.add_head_count_kv(cfg["kv_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_dimension_count(cfg["head_dim"])  # full rotary (glm's converter writes head_dim * 0.5)
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["eps"]))
    w.add_expert_count(cfg["experts"])
    w.add_expert_used_count(cfg["top_k"])
    w.add_expert_feed_forward_length(M)
    w.add_expert_shared_count(S // M if S else 0)
    w.add_leading_dense_block_count(len(dense))
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SOFTMAX)
    w.add_expert_weights_norm(cfg["norm_topk_prob"])
    w.add_expert_weights_scale(1.0)

    if (src / "tokenizer.json").exists():
        tokens, scores, types, specials, tconf = vocab_from_tokenizer_json(src, cfg["vocab"])
        tok_src = "tokenizer.json"
    else:
        tokens, scores, types, specials, tconf = synthetic_vocab(cfg["vocab"])
        tok_src = "synthetic"
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    def tid(key, default):
        v = tconf.get(key)
        v = v.get("content") if isinstance(v, dict) else v
        return specials.get(v, default)
    eos_cfg = cfg["eos"][0] if isinstance(cfg["eos"], list) else cfg["eos"]
    w.add_bos_token_id(tid("bos_token", cfg["bos"]))
    w.add_eos_token_id(tid("eos_token", eos_cfg))
    w.add_unk_token_id(tid("unk_token", 0))
    if tconf.get("pad_token"):
        w.add_pad_token_id(tid("pad_token", 0))
    w.add_add_bos_token(bool(tconf.get("add_bos_token", True)))
    w.add_add_eos_token(bool(tconf.get("add_eos_token", False)))
    if "<|im_end|>" in specials:
        w.add_eot_token_id(specials["<|im_end|>"])
    tmpl = chat_template(src)
    if tmpl:
        w.add_chat_template(tmpl)

    quant = {"q8_0": Q.Q8_0, "q4_0": Q.Q4_0}.get(qtype)
    out_type = {}
    for name, shape, role, _ in plan:
        if role in ("norm", "bias"):
            t = Q.F32
        elif quant is not None and role != "router" and shape[-1] % 32 == 0:
            t = quant
        else:
            t = Q.BF16
        out_type[name] = t
        bs, ts = gguf.GGML_QUANT_SIZES[t]
        nbytes = int(np.prod(shape)) // bs * ts
        w.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    t0 = time.time()
    for k, (name, shape, role, make) in enumerate(plan):
        t = make()
        if tuple(t.shape) != tuple(shape):
            raise SystemExit(f"error: {name}: expected shape {list(shape)}, found {list(t.shape)}")
        q = out_type[name]
        if q == Q.F32:
            data = to_f32(t)
        elif q == Q.BF16:
            data = to_bf16_u16(t)
        else:
            data = gguf.quants.quantize(to_f32(t), q)
        w.write_tensor_data(data)
        if k % 50 == 0 or k == len(plan) - 1:
            log(f"  [{k + 1}/{len(plan)}] {name} {gguf.GGMLQuantizationType(q).name} ({time.time() - t0:.0f} s)")
    w.close()
    log(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB, {ARCH}, {qtype}, tokenizer: {tok_src}); "
        f"dropped {len(dropped)} shared_expert_gate tensors (glm4moe has no shared-expert gate)")


# ----------------------------------------------------------------------------- per-token bytes

def decode_bytes_hf(src: Path) -> dict:
    """Weight bytes NekoMind reads per decoded token, from the checkpoint's own dtypes."""
    cfg = load_config(src)
    ck = Checkpoint(src)
    frac = cfg["top_k"] / cfg["experts"] if cfg["experts"] else 0
    tie = cfg["tie"] if cfg["tie"] is not None else "lm_head.weight" not in ck.names()
    tot = {}
    for n in ck.names():
        h = ck.where[n]
        sl = h.get_slice(n)
        shape = sl.get_shape()
        size = {"BF16": 2, "F16": 2, "F32": 4}[sl.get_dtype()] * int(np.prod(shape))
        if ".mlp.experts." in n:
            role, b = "routed experts (top-k of E)", size * frac  # on average k of E experts per layer
        elif n == "model.embed_tokens.weight":
            role, b = "embedding row + LM head" if tie else "embedding row", size / shape[0] + (size if tie else 0)
        elif n == "lm_head.weight":
            if tie:
                continue
            role, b = "embedding row + LM head", size
        elif "shared_expert_gate" in n:
            role, b = "shared-expert gate", size
        elif ".mlp.shared_expert." in n:
            role, b = "shared expert", size
        elif ".mlp.gate.weight" in n:
            role, b = "router", size
        elif "self_attn" in n and "norm" not in n:
            role, b = "attention q/k/v/o", size
        elif "norm" in n:
            role, b = "norms", size
        else:
            role, b = "dense MLP", size
        tot[role] = tot.get(role, 0) + b
    tot["total"] = sum(tot.values())
    return tot


def decode_bytes_gguf(path: Path) -> dict:
    """Weight bytes llama.cpp reads per decoded token for a GGUF written by this script."""
    import gguf
    r = gguf.GGUFReader(str(path))
    f = lambda k: r.fields[k].contents()  # noqa: E731
    frac = f(f"{ARCH}.expert_used_count") / f(f"{ARCH}.expert_count")
    names = {t.name for t in r.tensors}
    tie = "output.weight" not in names
    tot, types = {}, {}
    for t in r.tensors:
        n, size = t.name, int(t.n_bytes)
        types.setdefault(t.tensor_type.name, 0)
        types[t.tensor_type.name] += size
        if "_exps" in n:
            role, b = "routed experts (top-k of E)", size * frac
        elif n == "token_embd.weight":
            rows = int(t.shape[-1])
            role, b = ("embedding row + LM head" if tie else "embedding row"), size / rows + (size if tie else 0)
        elif n == "output.weight":
            role, b = "embedding row + LM head", size
        elif "_shexp" in n:
            role, b = "shared expert", size
        elif "ffn_gate_inp" in n:
            role, b = "router", size
        elif "exp_probs_b" in n:
            role, b = "expert-selection bias (zeros)", size
        elif "attn_" in n and "norm" not in n:
            role, b = "attention q/k/v/o", size
        elif "norm" in n:
            role, b = "norms", size
        else:
            role, b = "dense MLP", size
        tot[role] = tot.get(role, 0) + b
    tot["total"] = sum(tot.values())
    tot["file_types"] = types
    return tot


def print_bytes(src: Path, ggufs: list[Path]) -> None:
    cols = [("NekoMind " + src.name, decode_bytes_hf(src))] + [(p.name, decode_bytes_gguf(p)) for p in ggufs]
    roles = []
    for _, d in cols:
        roles += [k for k in d if k not in roles and k not in ("total", "file_types")]
    print("| weight bytes read per decoded token | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for k in roles + ["total"]:
        print(f"| {k} | " + " | ".join(f"{d.get(k, 0) / 1e6:,.3f} MB" for _, d in cols) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path, nargs="*")
    ap.add_argument("--type", choices=["bf16", "q8_0", "q4_0"], default="bf16")
    ap.add_argument("--llama-quantize", default=None,
                    help=f"quantise with this llama-quantize (default {DEFAULT_LLAMA_QUANTIZE} when it exists)")
    ap.add_argument("--python-quant", action="store_true", help="quantise with gguf-py's numpy code instead")
    ap.add_argument("--bytes", action="store_true", help="print per-token weight bytes of SRC and the GGUFs given")
    a = ap.parse_args()
    if a.bytes:
        return print_bytes(a.src, a.out)
    if len(a.out) != 1:
        ap.error("give exactly one OUT.gguf")
    out = a.out[0]
    lq = a.llama_quantize or (DEFAULT_LLAMA_QUANTIZE if os.path.exists(DEFAULT_LLAMA_QUANTIZE) else None)
    if a.type == "bf16" or a.python_quant or not lq:
        if a.type != "bf16":
            print(f"quantising to {a.type} with gguf-py (numpy)")
        return write_gguf(a.src, out, a.type)
    tmp = out.with_suffix(out.suffix + ".bf16.tmp")
    write_gguf(a.src, tmp, "bf16")
    cmd = [lq, "--pure", str(tmp), str(out), a.type.upper(), str(os.cpu_count() or 2)]
    print("quantising with:", " ".join(cmd))
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    tmp.unlink(missing_ok=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"error: llama-quantize failed ({p.returncode})")
    print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB, {a.type} by llama-quantize --pure, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
