#!/usr/bin/env python3
"""Drives a running `nekochat serve` with the official `openai` Python client (and httpx for
raw requests), checking what the OpenAI API promises. Exits 1 with the failures listed.

    python check_openai_client.py --base http://127.0.0.1:PORT/v1 --model ID [--api-key KEY]

Run by Tests/NekochatCLITests/ServeTests.swift (with the venv .ci/run makes) against the demo model.
"""
import argparse
import json
import sys
import threading
import time

try:
    import httpx
except ImportError:  # openai 3 depends on httpx2, the same API
    import httpx2 as httpx
import openai

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--api-key", default=None)
    a = ap.parse_args()
    key = a.api_key or "unused"
    client = openai.OpenAI(base_url=a.base, api_key=key, max_retries=0, timeout=60)
    msgs = [{"role": "user", "content": "Speak, friend."}]

    # Models.
    models = [m.id for m in client.models.list().data]
    check(models == [a.model], f"models.list: {models}")

    # Not streaming: text, usage, finish reason, seed reproducibility.
    r = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0)
    c = r.choices[0]
    check(c.message.role == "assistant" and len(c.message.content) > 0, f"chat content: {c}")
    check(c.finish_reason in ("stop", "length"), f"finish_reason: {c.finish_reason}")
    check(r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
          and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, f"usage: {r.usage}")
    r2 = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0)
    check(r2.choices[0].message.content == c.message.content, "greedy replies differ between two identical requests")
    s1 = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=1.0, seed=42)
    s2 = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=1.0, seed=42)
    check(s1.choices[0].message.content == s2.choices[0].message.content, "the same seed gave different replies")

    # max_completion_tokens and length.
    r = client.chat.completions.create(model=a.model, messages=msgs, max_completion_tokens=3, temperature=0)
    check(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3, f"max_completion_tokens: {r}")

    # Streaming: the chunks add up to the same text; usage with include_usage; [DONE] ends it.
    stream = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    text, reasons, usage = "", [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for ch in chunk.choices:
            text += ch.delta.content or ""
            if ch.finish_reason:
                reasons.append(ch.finish_reason)
    check(text == c.message.content, f"streamed text {text!r} != {c.message.content!r}")
    check(len(reasons) == 1, f"finish reasons in stream: {reasons}")
    check(usage is not None and usage.completion_tokens > 0, f"stream usage: {usage}")

    # Stop strings: the text ends before the stop string, finish_reason stop.
    full = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0).choices[0].message.content
    if len(full) >= 6:
        stop = full[3:5]
        r = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0, stop=[stop])
        t = r.choices[0].message.content
        check(r.choices[0].finish_reason == "stop" and stop not in t and full.startswith(t), f"stop {stop!r}: {t!r} of {full!r}")

    # /v1/completions, plain text.
    r = client.completions.create(model=a.model, prompt="ROMEO.", max_tokens=8, temperature=0)
    check(len(r.choices[0].text) > 0 and r.object == "text_completion", f"completions: {r}")

    # The routing extension: per chunk, the routing of its tokens; absent without asking.
    raw = httpx.post(a.base + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                     json={"model": a.model, "messages": msgs, "max_tokens": 4, "temperature": 0, "nekochat": {"routing": True}})
    body = raw.json()
    routing = body.get("nekochat", {}).get("routing", [])
    check(raw.status_code == 200 and len(routing) == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] - 1,
          f"routing entries: {len(routing)} for usage {body.get('usage')}")
    check(all("experts" in l and "weights" in l and "layer" in l for tok in routing for l in tok), "routing record shape")
    check("nekochat" not in client.chat.completions.create(model=a.model, messages=msgs, max_tokens=2).model_dump(), "extension sent unasked")

    # Concurrent streams: all complete, with the same greedy text as alone.
    results = {}

    def run(i):
        s = client.chat.completions.create(model=a.model, messages=msgs, max_tokens=12, temperature=0, stream=True)
        results[i] = "".join(ch.delta.content or "" for chunk in s for ch in chunk.choices)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(all(results.get(i) == c.message.content for i in range(4)), f"concurrent streams: {results}")

    # A client that disconnects: the request is cancelled (the server is idle again at once).
    with httpx.stream("POST", a.base + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": a.model, "messages": msgs, "max_tokens": 2000, "temperature": 1, "stream": True}) as s:
        lines = s.iter_lines()
        for _ in range(3):
            next(lines)
    deadline = time.time() + 5
    running = None
    while time.time() < deadline:
        health = httpx.get(a.base.removesuffix("/v1") + "/health").json()
        running = health["running"] + health["waiting"]
        if running == 0:
            break
        time.sleep(0.05)
    check(running == 0, f"a disconnected stream is still running: {health}")

    # Bad requests: OpenAI's error object with the right status.
    def error(body, status, contains, path="/chat/completions", raw_body=None):
        h = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        resp = httpx.post(a.base + path, headers=h, content=raw_body if raw_body is not None else json.dumps(body))
        ok = resp.status_code == status
        try:
            msg = resp.json()["error"]["message"]
        except Exception:
            msg, ok = resp.text, False
        check(ok and contains in msg, f"{body if raw_body is None else raw_body!r}: {resp.status_code} {msg!r}")

    error(None, 400, "not valid JSON", raw_body=b"{bad json")
    error({"model": a.model}, 400, "messages")
    error({"model": a.model, "messages": msgs, "temperature": -1}, 400, "temperature")
    error({"model": a.model, "messages": msgs, "n": 2}, 400, "n = 1")
    error({"model": a.model, "messages": msgs, "max_tokens": 0}, 400, "max_tokens")
    error({"model": "gpt-17", "messages": msgs}, 404, "gpt-17")
    error({"model": a.model, "messages": [{"role": "user", "content": "word " * 5000}]}, 400, "the context holds")
    try:
        client.chat.completions.create(model="no-such-model", messages=msgs)
        check(False, "unknown model accepted")
    except openai.NotFoundError:
        pass
    try:
        client.chat.completions.create(model=a.model, messages=msgs, top_p=7)
        check(False, "top_p 7 accepted")
    except openai.BadRequestError as e:
        check("top_p" in str(e), f"top_p error: {e}")

    # The API key.
    if a.api_key:
        for bad in (None, "wrong"):
            h = {} if bad is None else {"Authorization": f"Bearer {bad}"}
            resp = httpx.post(a.base + "/chat/completions", headers=h, json={"model": a.model, "messages": msgs})
            check(resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error", f"key {bad}: {resp.status_code}")
        try:
            openai.OpenAI(base_url=a.base, api_key="wrong", max_retries=0).models.list()
            check(False, "a wrong key listed the models")
        except openai.AuthenticationError:
            pass

    if failures:
        print(f"{len(failures)} failure(s)", file=sys.stderr)
        sys.exit(1)
    print("all OpenAI client checks passed")


if __name__ == "__main__":
    main()
