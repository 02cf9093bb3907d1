"""config.json and safetensors reading for the NekoMind reference (nekomind_ref.py), written
from Sources/NekoModel/README.md: every field, default and alternative spelling of config.json, single or
sharded safetensors in BF16/F16/F32, with strict checks. See nekomind_ref.py's docstring for the
choices made where Sources/NekoModel/README.md is silent."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import torch
from safetensors import safe_open

ALLOWED_DTYPES = {"BF16", "F16", "F32"}
EXPERT_COUNT_KEYS = ("num_experts", "num_local_experts", "n_routed_experts")


class LoadError(Exception):
    pass


def _default_log(msg: str) -> None:
    print(f"[nekomind_ref] {msg}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# config.json
# --------------------------------------------------------------------------------------------
@dataclass
class NekoConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int | None
    moe_intermediate_size: int | None
    shared_expert_intermediate_size: int | None
    num_experts: int
    num_experts_per_tok: int | None
    norm_topk_prob: bool
    mlp_only_layers: list
    first_k_dense_replace: int
    decoder_sparse_step: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int | None
    tie_word_embeddings: bool | None  # None = absent from config.json
    attention_bias: bool
    bos_token_id: object = None
    eos_token_id: object = None
    raw: dict = field(default_factory=dict)

    def is_moe_layer(self, i: int) -> bool:
        """Sources/NekoModel/README.md: layer i is dense iff i in mlp_only_layers, or i < first_k_dense_replace, or
        num_experts is 0/absent, or (i+1) % decoder_sparse_step != 0; every other layer is MoE."""
        if i in self.mlp_only_layers:
            return False
        if i < self.first_k_dense_replace:
            return False
        if not self.num_experts:
            return False
        if (i + 1) % self.decoder_sparse_step != 0:
            return False
        return True

    @property
    def moe_layers(self) -> list:
        return [i for i in range(self.num_hidden_layers) if self.is_moe_layer(i)]


def parse_config(cfg: dict, log=_default_log) -> NekoConfig:
    def req(key):
        if cfg.get(key) is None:
            raise LoadError(f"config.json: required field '{key}' is missing")
        return cfg[key]

    H = int(req("hidden_size"))
    L = int(req("num_hidden_layers"))
    nh = int(req("num_attention_heads"))
    vocab = int(req("vocab_size"))
    if cfg.get("num_key_value_heads") is None:
        nkv = nh
        log(f"num_key_value_heads absent: using num_attention_heads = {nh}")
    else:
        nkv = int(cfg["num_key_value_heads"])
    if nh % nkv != 0:
        raise LoadError(f"num_attention_heads {nh} is not a multiple of num_key_value_heads {nkv}")
    if cfg.get("head_dim") is None:
        if H % nh != 0:
            raise LoadError(f"head_dim absent and hidden_size {H} not divisible by {nh} heads")
        head_dim = H // nh
    else:
        head_dim = int(cfg["head_dim"])
    if head_dim % 2:
        raise LoadError(f"head_dim {head_dim} must be even for RoPE")

    # expert count: any of three spellings; they must agree when several are present
    found = {k: cfg[k] for k in EXPERT_COUNT_KEYS if cfg.get(k) is not None}
    if len(set(found.values())) > 1:
        raise LoadError(f"config.json: conflicting expert counts {found}")
    num_experts = int(next(iter(found.values()))) if found else 0
    if found:
        log(f"expert count {num_experts} read from '{next(iter(found))}'")

    # rope theta: top-level, else rope_parameters.rope_theta, else 1e6
    rp = cfg.get("rope_parameters")
    if cfg.get("rope_scaling") is not None:
        raise LoadError(f"config.json: rope_scaling {cfg['rope_scaling']} is not supported")
    if isinstance(rp, dict) and rp.get("rope_type", "default") not in ("default", None):
        raise LoadError(f"config.json: rope_parameters.rope_type {rp.get('rope_type')!r} is not supported")
    if cfg.get("rope_theta") is not None:
        theta = float(cfg["rope_theta"])
        if isinstance(rp, dict) and rp.get("rope_theta") is not None and float(rp["rope_theta"]) != theta:
            log(f"rope_theta {theta} and rope_parameters.rope_theta {rp['rope_theta']} differ: using top-level")
    elif isinstance(rp, dict) and rp.get("rope_theta") is not None:
        theta = float(rp["rope_theta"])
        log(f"rope_theta {theta} read from rope_parameters")
    else:
        theta = 1e6
        log("rope_theta absent: default 1e6")

    act = cfg.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise LoadError(f"config.json: hidden_act {act!r} is not supported (silu only)")

    ab, qb = cfg.get("attention_bias"), cfg.get("qkv_bias")
    attention_bias = bool(ab) or bool(qb)
    if qb is not None:
        log(f"qkv_bias={qb} (attention_bias={ab}) -> q/k/v biases {'on' if attention_bias else 'off'}")

    step = cfg.get("decoder_sparse_step")
    step = 1 if step is None else int(step)
    if step < 1:
        raise LoadError(f"config.json: decoder_sparse_step {step} must be >= 1")

    c = NekoConfig(
        hidden_size=H,
        num_hidden_layers=L,
        num_attention_heads=nh,
        num_key_value_heads=nkv,
        head_dim=head_dim,
        vocab_size=vocab,
        intermediate_size=cfg.get("intermediate_size"),
        moe_intermediate_size=cfg.get("moe_intermediate_size"),
        shared_expert_intermediate_size=cfg.get("shared_expert_intermediate_size"),
        num_experts=num_experts,
        num_experts_per_tok=cfg.get("num_experts_per_tok"),
        norm_topk_prob=bool(cfg.get("norm_topk_prob", False) or False),
        mlp_only_layers=list(cfg.get("mlp_only_layers") or []),
        first_k_dense_replace=int(cfg.get("first_k_dense_replace") or 0),
        decoder_sparse_step=step,
        rms_norm_eps=float(cfg.get("rms_norm_eps") if cfg.get("rms_norm_eps") is not None else 1e-6),
        rope_theta=theta,
        max_position_embeddings=cfg.get("max_position_embeddings"),
        tie_word_embeddings=cfg.get("tie_word_embeddings"),
        attention_bias=attention_bias,
        bos_token_id=cfg.get("bos_token_id"),
        eos_token_id=cfg.get("eos_token_id"),
        raw=cfg,
    )
    moe = c.moe_layers
    if moe:
        if not c.num_experts_per_tok:
            raise LoadError("config.json: num_experts_per_tok is required when a layer is MoE")
        if not (1 <= c.num_experts_per_tok <= c.num_experts):
            raise LoadError(f"num_experts_per_tok {c.num_experts_per_tok} out of range 1..{c.num_experts}")
        if c.moe_intermediate_size is None:
            raise LoadError("config.json: moe_intermediate_size is required when a layer is MoE")
    if len(moe) < L and c.intermediate_size is None:
        raise LoadError("config.json: intermediate_size is required when a layer is dense")
    return c


# --------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------
def read_tensors(model_dir: str, log=_default_log) -> dict:
    """Returns {name: tensor in its stored dtype}. Single file or index + shards."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        files = sorted(set(weight_map.values()))
        log(f"sharded checkpoint: {len(files)} shards, {len(weight_map)} tensors")
    elif os.path.exists(single):
        weight_map = None
        files = ["model.safetensors"]
    else:
        raise LoadError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
    out = {}
    for fn in files:
        with safe_open(os.path.join(model_dir, fn), framework="pt") as f:
            for name in f.keys():
                dt = f.get_slice(name).get_dtype()
                if dt not in ALLOWED_DTYPES:
                    raise LoadError(f"{fn}: tensor {name} has dtype {dt}; only BF16/F16/F32 are supported")
                if weight_map is not None and weight_map.get(name) != fn:
                    raise LoadError(f"{fn}: tensor {name} is not mapped to this shard in the index")
                if name in out:
                    raise LoadError(f"tensor {name} appears twice")
                out[name] = f.get_tensor(name)
    if weight_map is not None:
        missing = [n for n in weight_map if n not in out]
        if missing:
            raise LoadError(f"index names tensors absent from their shards: {missing[:5]}")
    return out


def load_config_file(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "config.json")) as f:
        return json.load(f)
