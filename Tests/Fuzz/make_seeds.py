#!/usr/bin/env python3
"""Writes the fuzzers' seed inputs (Tests/Fuzz/seeds/<target>/), small and varied, from the
project's fixtures and from hand-made cases. Standard library only; deterministic.

    python3 Tests/Fuzz/make_seeds.py
"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(ROOT))
SEEDS = os.path.join(ROOT, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors):
    """tensors: {name: (dtype, shape, bytes)}"""
    header, body, offset = {}, b"", 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        body += data
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


# safetensors: tiny files of each dtype, an empty one, and a real index of shards.
put("safetensors", "bf16.safetensors", safetensors({"a.weight": ("BF16", [2, 3], bytes(range(12))), "b": ("F32", [2], b"\0\0\x80?\0\0\0@")}))
put("safetensors", "f16.safetensors", safetensors({"x": ("F16", [4], b"\0<\0<\0<\0<"), "y": ("BF16", [], b"\x80?")}))
put("safetensors", "empty.safetensors", safetensors({}))
with open(os.path.join(REPO, "Tests/Fixtures/engine/sharded3_bf16_normtopk/model.safetensors.index.json"), "rb") as f:
    put("safetensors", "index.json", f.read())

# config.json of every engine fixture.
engine = os.path.join(REPO, "Tests/Fixtures/engine")
for name in sorted(os.listdir(engine)):
    p = os.path.join(engine, name, "config.json")
    if os.path.exists(p):
        with open(p, "rb") as f:
            put("config", name + ".json", f.read())

# tokenizer.json, NUL, text: small tokenizers of each component kind.
chars = [chr(c) for c in range(32, 127)]
byte_vocab = {c: i for i, c in enumerate(["<unk>", "<s>", "</s>"] + chars + ["he", "ll", "hell", "hello", "▁"])}
specials = [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
            {"id": 2, "content": "</s>", "special": True}]
text = "\0hello world, héllo 日本 😀 <s> tab\tnewline\n 123"
tok = {
    "version": "1.0", "added_tokens": specials,
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
                                                       {"type": "Prepend", "prepend": "▁"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
                                                 {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True, "vocab": byte_vocab,
              "merges": ["h e", "l l", "he ll", "hell o"]},
}
put("tokenizer", "sentencepiece-like", json.dumps(tok) + text)
tok2 = dict(tok)
tok2["normalizer"] = {"type": "Lowercase"}
tok2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "'s|'t| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
tok2["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
tok2["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
put("tokenizer", "bytelevel", json.dumps(tok2) + text)
tok3 = dict(tok)
tok3["normalizer"] = None
tok3["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
tok3["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
tok3["added_tokens"] = specials + [{"id": 100, "content": "<|im_start|>", "special": True, "lstrip": True, "rstrip": True},
                                   {"id": 101, "content": "word", "special": False, "single_word": True, "normalized": True}]
put("tokenizer", "metaspace-added", json.dumps(tok3) + text + "<|im_start|>words word")

# templates, NUL, messages: real chat templates and a few tricky ones.
convo = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <s> {{ x }}"},
                    {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "again"}])
shared = "/work/shared/chat_templates"
if os.path.isdir(shared):
    for name in sorted(os.listdir(shared))[:24]:
        if name.endswith(".jinja"):
            with open(os.path.join(shared, name), "rb") as f:
                put("template", name, f.read() + b"\0" + convo.encode())
for i, t in enumerate([
        "{% for m in messages %}{{ m.role|upper }}: {{ m['content']|trim }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
        "{% set ns = namespace(n=0) %}{% for m in messages if m.role != 'system' %}{% set ns.n = ns.n + 1 %}{{ loop.index }}/{{ ns.n }}{% endfor %}",
        "{% macro f(x, y=2) %}{{ x ~ y }}{% endmacro %}{{ f(1) }}{{ f(y=3, x=4) }}{{ messages|tojson }}{{ (messages|length) ** 3 }}",
        "{{ raise_exception('no') if messages|length > 9 }}{{ '%s-%d'|format('a', 3) }}{{ 'x'.join(['a','b']) }}{{ messages[-1:] }}",
        "{% for m in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{{ m.content[1:3] }}{{ m.content.split(' ')|list }}{% endfor %}",
]):
    put("template", f"tricky{i}.jinja", t + "\0" + convo)

# transcripts: the version-1 fixtures and a version-2 log with routing.
tx = os.path.join(REPO, "Tests/Fixtures/transcripts")
for name in sorted(os.listdir(tx)):
    if name.endswith(".jsonl"):
        with open(os.path.join(tx, name), "rb") as f:
            put("transcript", name, f.read())
v2 = [
    {"type": "header", "version": 2, "backend": "local", "model": "/m", "model_name": "m", "fingerprint": "f", "context": 64, "experts": 8, "time": "t"},
    {"type": "settings", "settings": {"temperature": 0.5, "top_k": 40, "seed": 3, "mode": "chat", "stop": ["END"]}},
    {"type": "system", "content": "S"},
    {"type": "message", "id": 1, "parent": None, "role": "user", "content": "hi", "time": "t"},
    {"type": "message", "id": 2, "parent": 1, "role": "assistant", "content": "yo", "time": "t", "finish_reason": "eos",
     "prompt_tokens": 3, "completion_tokens": 2, "tokens_per_s": 10.5, "seed": 3,
     "routing": {"layers": [2, 3], "k": 2, "count": 2, "prompt": 1, "ids": [5, 6], "tokens": ["a", "b"], "expert_bytes": 1,
                 "experts": "AAECAwQFBgc=", "weights": "AACAPwAAAD8AAIA+AAAAPgAAgD8AAAA/AACAPgAAAD4=",
                 "shared_gate": "AACAPwAAAD8AAIA+AAAAPg==", "router_entropy": "AACAPwAAAD8AAIA+AAAAPg=="}},
    {"type": "regen", "of": 2}, {"type": "message", "id": 3, "parent": 1, "role": "assistant", "content": "hey", "finish_reason": "stop"},
    {"type": "select", "leaf": 2}, {"type": "title", "title": "T"}, {"type": "trimmed", "dropped": 2}, {"type": "new"},
]
put("transcript", "v2.jsonl", "\n".join(json.dumps(l) for l in v2) + "\n")
put("transcript", "openai.json", json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "text", "text": "b"}]}]}))

# keys: typing, editing, escape sequences, a bracketed paste, mouse-ish noise.
put("keys", "typing", "hello world\r\x1b\rsecond line\x01\x0bx\x17\x15")
put("keys", "arrows", "\x1b[A\x1b[B\x1b[C\x1b[D\x1b[H\x1b[F\x1b[5~\x1b[6~\x1b[3~\x1b[1;5A\x1b[1;3D\x1b[Z\x1bc\x1bm\t")
put("keys", "paste", "\x1b[200~pasted\r\ntext\twith tabs 日本語 😀\x1b[201~\r/set temperature 2\r")
put("keys", "broken", "\x1b[\x1b[200~never closed \x1b[20")

# http: request bodies.
for i, b in enumerate([
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True, "stream_options": {"include_usage": True},
         "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "min_p": 0.1, "repeat_penalty": 1.1, "seed": 1,
         "stop": ["a", "b"], "nekochat": {"routing": True}},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "x"}]}],
         "max_completion_tokens": 3, "n": 1, "stop": "x"},
        {"prompt": "Once upon", "max_tokens": 8}, {"prompt": [1, 2, 3]}, {"prompt": ["one"]},
]):
    put("http", f"body{i}.json", json.dumps(b))
print("seeds written to", SEEDS)

# The structure-aware targets read their input as a stream of choices: seeds are bytes, a few
# random (fixed seed) and a few that walk to the extremes (long runs of one choice).
import random  # noqa: E402

rng = random.Random(31)
for target in ["template-grammar", "tokenizer-grammar", "config-grammar", "transcript-grammar", "hub-grammar"]:
    for i in range(6):
        put(target, "random-%d" % i, bytes(rng.randrange(256) for _ in range(rng.choice([8, 32, 128, 512]))))
    put(target, "zeros", bytes(64))
    put(target, "ones", bytes([1] * 64))
    put(target, "ramp", bytes(range(256)))
# Templates: an expression chained 100,000 times, and a block nested 5,000 times.
put("template-grammar", "long-chain", bytes([10, 14, 0, 0, 9]))
put("template-grammar", "deep-blocks", bytes([7, 9, 0]))
