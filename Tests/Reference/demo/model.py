#!/usr/bin/env python3
"""Trainable PyTorch NekoMind (float32) computing exactly Sources/NekoModel/README.md's forward pass.

Conventions shared with ../nekomind_ref.py:
  * rmsnorm(x, w) = w * x / sqrt(mean(x^2) + eps); q_norm / k_norm per head over head_dim, before RoPE;
  * RoPE rotate-half pairs (i, i + d/2); inv_freq and angles computed in float64, cos/sin rounded
    to float32;
  * GQA: query head h uses KV head h // (heads / kv_heads);
  * MoE: p = softmax(router logits) in float32 over all experts; top-k with ties to the LOWER index
    (stable descending sort); optional renormalisation (norm_topk_prob); y = sum_j w_j expert_j(h)
    + sigmoid(h . w_shared_gate) * shared_expert(h);
  * tied LM head (logits = rmsnorm(x) . embed^T).
Routed experts are kept fused in memory ([E, I, H] gate/up, [E, H, I] down) and computed sparsely
(gather the tokens routed to each expert, index_add back); `export_state_dict` writes them per
expert with the Hugging Face names of Sources/NekoModel/README.md.
The Switch-Transformer load-balancing loss E * sum_i f_i * P_i (f_i = fraction of routing slots
given to expert i, P_i = mean router probability of expert i) is returned per MoE layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class DemoConfig:
    vocab_size: int = 4096
    hidden_size: int = 256
    num_hidden_layers: int = 6
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    intermediate_size: int = 688
    moe_intermediate_size: int = 256
    shared_expert_intermediate_size: int = 256
    num_experts: int = 8
    num_experts_per_tok: int = 2
    norm_topk_prob: bool = False
    first_k_dense_replace: int = 2
    mlp_only_layers: list = field(default_factory=list)
    decoder_sparse_step: int = 1
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    max_position_embeddings: int = 2048
    bos_token_id: int = 1
    eos_token_id: list = field(default_factory=lambda: [2])

    def is_moe_layer(self, i: int) -> bool:
        return not (i in self.mlp_only_layers or i < self.first_k_dense_replace or not self.num_experts
                    or (i + 1) % self.decoder_sparse_step != 0)

    def hf_config(self) -> dict:
        return {
            "architectures": ["NekoMindForCausalLM"],
            "model_type": "nekomind",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "intermediate_size": self.intermediate_size,
            "moe_intermediate_size": self.moe_intermediate_size,
            "shared_expert_intermediate_size": self.shared_expert_intermediate_size,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "norm_topk_prob": self.norm_topk_prob,
            "first_k_dense_replace": self.first_k_dense_replace,
            "mlp_only_layers": list(self.mlp_only_layers),
            "decoder_sparse_step": self.decoder_sparse_step,
            "hidden_act": "silu",
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "attention_bias": False,
            "tie_word_embeddings": True,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id),
            "torch_dtype": "bfloat16",
        }


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float):
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    ang = positions.to(torch.float64)[:, None] * inv_freq[None, :]
    return torch.cos(ang).to(torch.float32), torch.sin(ang).to(torch.float32)  # [T, d/2]


def apply_rope(x, cos, sin):
    # x [B, heads, T, d]; cos/sin [T, d/2]
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, c: DemoConfig):
        super().__init__()
        self.c = c
        H, nh, nkv, hd = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(H, nh * hd, bias=False)
        self.k_proj = nn.Linear(H, nkv * hd, bias=False)
        self.v_proj = nn.Linear(H, nkv * hd, bias=False)
        self.o_proj = nn.Linear(nh * hd, H, bias=False)
        self.q_norm = RMSNorm(hd, c.rms_norm_eps)
        self.k_norm = RMSNorm(hd, c.rms_norm_eps)

    def forward(self, h, cos, sin):
        c = self.c
        B, T, _ = h.shape
        nh, nkv, hd = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        q = self.q_norm(self.q_proj(h).view(B, T, nh, hd)).transpose(1, 2)
        k = self.k_norm(self.k_proj(h).view(B, T, nkv, hd)).transpose(1, 2)
        v = self.v_proj(h).view(B, T, nkv, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        g = nh // nkv
        # query head j uses KV head j // g  ==  repeat_interleave of the KV heads
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0 / math.sqrt(hd))
        return self.o_proj(a.transpose(1, 2).reshape(B, T, nh * hd))


class MLP(nn.Module):
    def __init__(self, H, I):
        super().__init__()
        self.gate_proj = nn.Linear(H, I, bias=False)
        self.up_proj = nn.Linear(H, I, bias=False)
        self.down_proj = nn.Linear(I, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class MoE(nn.Module):
    def __init__(self, c: DemoConfig):
        super().__init__()
        self.c = c
        H, E, I = c.hidden_size, c.num_experts, c.moe_intermediate_size
        self.gate = nn.Linear(H, E, bias=False)  # router
        self.w_gate = nn.Parameter(torch.empty(E, I, H))
        self.w_up = nn.Parameter(torch.empty(E, I, H))
        self.w_down = nn.Parameter(torch.empty(E, H, I))
        self.shared_expert = MLP(H, c.shared_expert_intermediate_size)
        self.shared_expert_gate = nn.Linear(H, 1, bias=False)

    def forward(self, h):
        c = self.c
        shp = h.shape
        x = h.reshape(-1, shp[-1])
        N = x.shape[0]
        p = torch.softmax(self.gate(x).float(), dim=-1)                     # [N, E] float32
        w_sorted, order = torch.sort(p, dim=-1, descending=True, stable=True)  # ties -> lower index
        idx = order[:, :c.num_experts_per_tok]
        w = w_sorted[:, :c.num_experts_per_tok]
        if c.norm_topk_prob:
            w = w / w.sum(-1, keepdim=True)
        y = torch.zeros_like(x)
        flat_idx = idx.reshape(-1)
        flat_tok = torch.arange(N, device=x.device).repeat_interleave(c.num_experts_per_tok)
        flat_w = w.reshape(-1)
        perm = torch.argsort(flat_idx, stable=True)
        counts = torch.bincount(flat_idx, minlength=c.num_experts).tolist()
        tok_sorted = flat_tok[perm]
        w_sorted_slots = flat_w[perm]
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            t = tok_sorted[start:start + n]
            xe = x[t]
            out = F.linear(F.silu(F.linear(xe, self.w_gate[e])) * F.linear(xe, self.w_up[e]), self.w_down[e])
            y.index_add_(0, t, out * w_sorted_slots[start:start + n, None].to(out.dtype))
            start += n
        y = y + torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)
        # Switch-Transformer load balancing: E * sum_i f_i P_i  (f_i: share of the N*k routing slots)
        f = torch.tensor(counts, dtype=torch.float32, device=x.device) / (N * c.num_experts_per_tok)
        P = p.mean(0)
        aux = c.num_experts * (f * P).sum()
        self.last_routing = (idx.detach(), w.detach(), p.detach())
        return y.view(shp), aux


class Layer(nn.Module):
    def __init__(self, c: DemoConfig, i: int):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.is_moe = c.is_moe_layer(i)
        self.mlp = MoE(c) if self.is_moe else MLP(c.hidden_size, c.intermediate_size)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        if self.is_moe:
            y, aux = self.mlp(h)
        else:
            y, aux = self.mlp(h), None
        return x + y, aux


class NekoMindDemo(nn.Module):
    def __init__(self, c: DemoConfig):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Layer(c, i) for i in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self._rope_cache = None

    def init_weights(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        std = 0.02
        out_std = std / math.sqrt(2 * self.c.num_hidden_layers)
        for name, prm in self.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                nn.init.ones_(prm)
            elif name.endswith("shared_expert_gate.weight"):
                nn.init.zeros_(prm)  # sigmoid(0) = 0.5 at the start
            elif "o_proj" in name or "down_proj" in name or name.endswith("w_down"):
                with torch.no_grad():
                    prm.copy_(torch.randn(prm.shape, generator=g) * out_std)
            else:
                with torch.no_grad():
                    prm.copy_(torch.randn(prm.shape, generator=g) * std)

    def rope(self, T):
        if self._rope_cache is None or self._rope_cache[0].shape[0] < T:
            self._rope_cache = rope_cos_sin(torch.arange(max(T, 512)), self.c.head_dim, self.c.rope_theta)
        cos, sin = self._rope_cache
        return cos[:T], sin[:T]

    def forward(self, ids):
        """ids [B, T] -> (logits [B, T, V] float32, list of per-MoE-layer aux losses)."""
        T = ids.shape[1]
        cos, sin = self.rope(T)
        x = self.embed_tokens(ids)
        auxes = []
        for ly in self.layers:
            x, aux = ly(x, cos, sin)
            if aux is not None:
                auxes.append(aux)
        logits = F.linear(self.norm(x), self.embed_tokens.weight)
        return logits, auxes

    def routing(self):
        """{layer index: (experts [N,k], weights [N,k], probs [N,E])} of the last forward."""
        return {i: ly.mlp.last_routing for i, ly in enumerate(self.layers) if ly.is_moe}

    # ---- Hugging Face layout ------------------------------------------------------------------
    def export_state_dict(self) -> dict:
        out = {"model.embed_tokens.weight": self.embed_tokens.weight, "model.norm.weight": self.norm.weight}
        for i, ly in enumerate(self.layers):
            p = f"model.layers.{i}."
            a = ly.self_attn
            out[p + "input_layernorm.weight"] = ly.input_layernorm.weight
            out[p + "post_attention_layernorm.weight"] = ly.post_attention_layernorm.weight
            for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                out[p + f"self_attn.{n}.weight"] = getattr(a, n).weight
            out[p + "self_attn.q_norm.weight"] = a.q_norm.weight
            out[p + "self_attn.k_norm.weight"] = a.k_norm.weight
            m = ly.mlp
            if not ly.is_moe:
                for n in ("gate_proj", "up_proj", "down_proj"):
                    out[p + f"mlp.{n}.weight"] = getattr(m, n).weight
            else:
                out[p + "mlp.gate.weight"] = m.gate.weight
                for e in range(self.c.num_experts):
                    out[p + f"mlp.experts.{e}.gate_proj.weight"] = m.w_gate[e]
                    out[p + f"mlp.experts.{e}.up_proj.weight"] = m.w_up[e]
                    out[p + f"mlp.experts.{e}.down_proj.weight"] = m.w_down[e]
                for n in ("gate_proj", "up_proj", "down_proj"):
                    out[p + f"mlp.shared_expert.{n}.weight"] = getattr(m.shared_expert, n).weight
                out[p + "mlp.shared_expert_gate.weight"] = m.shared_expert_gate.weight
        return {k: v.detach().contiguous() for k, v in out.items()}

    def load_export_state_dict(self, sd: dict):
        """Inverse of export_state_dict (used to check the export / to load BF16-rounded weights)."""
        own = self.export_state_dict()
        assert set(own) == set(sd), (set(own) ^ set(sd))
        with torch.no_grad():
            self.embed_tokens.weight.copy_(sd["model.embed_tokens.weight"])
            self.norm.weight.copy_(sd["model.norm.weight"])
            for i, ly in enumerate(self.layers):
                p = f"model.layers.{i}."
                a = ly.self_attn
                ly.input_layernorm.weight.copy_(sd[p + "input_layernorm.weight"])
                ly.post_attention_layernorm.weight.copy_(sd[p + "post_attention_layernorm.weight"])
                for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
                    getattr(a, n).weight.copy_(sd[p + f"self_attn.{n}.weight"])
                a.q_norm.weight.copy_(sd[p + "self_attn.q_norm.weight"])
                a.k_norm.weight.copy_(sd[p + "self_attn.k_norm.weight"])
                m = ly.mlp
                if not ly.is_moe:
                    for n in ("gate_proj", "up_proj", "down_proj"):
                        getattr(m, n).weight.copy_(sd[p + f"mlp.{n}.weight"])
                else:
                    m.gate.weight.copy_(sd[p + "mlp.gate.weight"])
                    for e in range(self.c.num_experts):
                        m.w_gate[e].copy_(sd[p + f"mlp.experts.{e}.gate_proj.weight"])
                        m.w_up[e].copy_(sd[p + f"mlp.experts.{e}.up_proj.weight"])
                        m.w_down[e].copy_(sd[p + f"mlp.experts.{e}.down_proj.weight"])
                    for n in ("gate_proj", "up_proj", "down_proj"):
                        getattr(m.shared_expert, n).weight.copy_(sd[p + f"mlp.shared_expert.{n}.weight"])
                    m.shared_expert_gate.weight.copy_(sd[p + "mlp.shared_expert_gate.weight"])


def count_params(c: DemoConfig) -> dict:
    H, V = c.hidden_size, c.vocab_size
    attn = H * c.num_attention_heads * c.head_dim * 2 + H * c.num_key_value_heads * c.head_dim * 2 + 2 * c.head_dim
    norms = 2 * H
    dense = 3 * H * c.intermediate_size
    expert = 3 * H * c.moe_intermediate_size
    shared = 3 * H * c.shared_expert_intermediate_size + H
    router = H * c.num_experts
    total = V * H + H
    active = V * H + H
    for i in range(c.num_hidden_layers):
        total += attn + norms
        active += attn + norms
        if c.is_moe_layer(i):
            total += router + c.num_experts * expert + shared
            active += router + c.num_experts_per_tok * expert + shared
        else:
            total += dense
            active += dense
    return {"total": total, "active": active}
