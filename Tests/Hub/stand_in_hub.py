#!/usr/bin/env python3
"""A stand-in for the Hugging Face Hub on loopback, for the tests of `--model ORG/NAME` and
`nekochat pull` (and for `huggingface_hub` itself, which the tests use as the other peer).

Python's standard library only. Two servers: the Hub (API + resolve) and a "CDN" on a second port
that LFS files redirect to, as the real Hub's do. It speaks what huggingface_hub 2.x calls:

  GET  /api/models/ORG/NAME/revision/REV        {"id", "sha", "siblings": [{"rfilename"}]}
  GET  /api/models/ORG/NAME/tree/REV?recursive=…&cursor=N
                                                 [{"type": "file", "path", "size", "oid", "lfs"?}], paged
                                                 (PAGE entries, then `Link: <…>; rel="next"`)
  HEAD|GET /ORG/NAME/resolve/REV/PATH           X-Repo-Commit, ETag (git blob sha1); LFS files: a 302 to
                                                 the CDN with X-Linked-Etag (sha256) and X-Linked-Size
  GET  CDN/repos/ORG--NAME/SHA256                the bytes, with Range (206) support

    python3 stand_in_hub.py CONFIG.json [--log FILE]

CONFIG: {"repos": {"ORG/NAME": {"files": {"PATH": "/path/to/source", …}, "lfs": ["model.safetensors"],
          "refs": {"main": "…40 hex…"}, "commit": "…40 hex…",
          "mode": null | "gated" | "corrupt" | "break" | "ratelimit" | "slow", "token": "hf_…" (for gated)}}}
Modes: gated — 401 without a token, 403 with another token (X-Error-Code: GatedRepo);
corrupt — the CDN serves LFS bytes with one flipped; break — the CDN closes the connection halfway
through each LFS file the first time it is asked for from offset 0; ratelimit — the first two
requests of each kind get 429 with Retry-After: 1; slow — the CDN sends 64 KiB every 50 ms.
Prints {"hub": PORT, "cdn": PORT} on stdout once both listen. Every request is logged as a JSON
line (method, path, whether Authorization was sent, Range) to --log.
"""
import hashlib
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

PAGE = 2


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class State:
    def __init__(self, config, log):
        self.repos = config["repos"]
        self.log_path = log
        self.lock = threading.Lock()
        self.broken = set()
        self.limited = {}
        self.blobs = {}          # (repo, sha256) -> (bytes, mode)
        for name, repo in self.repos.items():
            repo.setdefault("refs", {"main": repo["commit"]})
            repo["data"] = {}
            for path, src in repo["files"].items():
                with open(src, "rb") as f:
                    data = f.read()
                repo["data"][path] = data
                if path in repo.get("lfs", []):
                    self.blobs[(name.replace("/", "--"), hashlib.sha256(data).hexdigest())] = (data, repo.get("mode"))
        self.cdn_port = 0

    def log(self, entry):
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def make_handler(state, role):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body=b"", headers=None, head=False):
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def error(self, status, code, message, head=False, extra=None):
            h = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
            h.update(extra or {})
            self.send(status, json.dumps({"error": message}).encode(), h, head)

        def record(self):
            state.log({"server": role, "method": self.command, "path": self.path,
                       "auth": self.headers.get("Authorization") is not None, "range": self.headers.get("Range")})

        def do_HEAD(self):
            self.record()
            self.route(head=True)

        def do_GET(self):
            self.record()
            self.route(head=False)

        def route(self, head):
            if role == "cdn":
                return self.cdn(head)
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/")]
            if parts[1:3] == ["api", "models"] and len(parts) >= 7:
                return self.api(parts[3] + "/" + parts[4], parts[5], parts[6], "/".join(parts[7:]), url.query)
            if len(parts) >= 6 and parts[3] == "resolve":
                return self.resolve(parts[1] + "/" + parts[2], parts[4], "/".join(parts[5:]), head)
            self.send(404, b"{}", {"Content-Type": "application/json"}, head)

        def repo_for(self, name, head):
            repo = state.repos.get(name)
            if repo is None:
                self.error(401, "RepoNotFound", "Repository not found", head)
                return None
            if repo.get("mode") == "gated":
                auth = self.headers.get("Authorization")
                if auth is None:
                    self.error(401, "GatedRepo", "Access to model %s is restricted." % name, head)
                    return None
                if auth != "Bearer " + repo.get("token", ""):
                    self.error(403, "GatedRepo", "Access to model %s is restricted and you are not in the authorized list." % name, head)
                    return None
            if repo.get("mode") == "ratelimit":
                with state.lock:
                    n = state.limited.get((name, self.command), 0)
                    state.limited[(name, self.command)] = n + 1
                if n < 2:
                    self.error(429, "RateLimited", "Too many requests", head, {"Retry-After": "1"})
                    return None
            return repo

        def commit_of(self, repo, rev, head):
            if rev in (repo["commit"],) or rev in repo["refs"]:
                return repo["refs"].get(rev, rev)
            self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev, head)
            return None

        def api(self, name, kind, rev, rest, query):
            repo = self.repo_for(name, False)
            if repo is None:
                return
            commit = self.commit_of(repo, rev, False)
            if commit is None:
                return
            if kind == "revision":
                body = {"id": name, "modelId": name, "sha": commit,
                        "siblings": [{"rfilename": p} for p in sorted(repo["data"])]}
                return self.send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            if kind != "tree":
                return self.send(404, b"{}")
            entries = []
            for path in sorted(repo["data"]):
                data = repo["data"][path]
                e = {"type": "file", "oid": git_sha1(data), "size": len(data), "path": path}
                if path in repo.get("lfs", []):
                    e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(e)
            q = urllib.parse.parse_qs(query)
            start = int(q.get("cursor", ["0"])[0])
            page = entries[start:start + PAGE]
            headers = {"Content-Type": "application/json"}
            if start + PAGE < len(entries):
                keep = {k: v[0] for k, v in q.items() if k != "cursor"}
                keep["cursor"] = str(start + PAGE)
                nxt = "http://%s%s?%s" % (self.headers.get("Host"), urllib.parse.urlsplit(self.path).path,
                                         urllib.parse.urlencode(keep))
                headers["Link"] = '<%s>; rel="next"' % nxt
            self.send(200, json.dumps(page).encode(), headers)

        def resolve(self, name, rev, path, head):
            repo = self.repo_for(name, head)
            if repo is None:
                return
            commit = self.commit_of(repo, rev, head)
            if commit is None:
                return
            data = repo["data"].get(path)
            if data is None:
                return self.error(404, "EntryNotFound", "Entry not found", head, {"X-Repo-Commit": commit})
            common = {"X-Repo-Commit": commit}
            if path in repo.get("lfs", []):
                sha = hashlib.sha256(data).hexdigest()
                common.update({"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                               "ETag": '"%s"' % git_sha1(b"pointer " + sha.encode()),
                               "Location": "http://127.0.0.1:%d/repos/%s/%s?X-Amz-Signature=stand-in"
                                           % (state.cdn_port, name.replace("/", "--"), sha)})
                return self.send(302, b"", common, head)
            common.update({"ETag": '"%s"' % git_sha1(data), "Content-Type": "application/octet-stream"})
            self.send(200, data, common, head)

        def cdn(self, head):
            url = urllib.parse.urlsplit(self.path)
            key = tuple(url.path.split("/")[-2:])
            if key not in state.blobs:
                return self.send(404, b"", {}, head)
            data, mode = state.blobs[key]
            sha = key
            if mode == "corrupt":
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
            start, status, headers = 0, 200, {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
                status = 206
                headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
            body = data[start:]
            if head:
                return self.send(status, b"", dict(headers, **{"Content-Length": str(len(body))}), True)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "break" and start == 0:
                with state.lock:
                    first = sha not in state.broken
                    state.broken.add(sha)
                if first:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
            if mode == "slow":
                for i in range(0, len(body), 65536):
                    self.wfile.write(body[i:i + 65536])
                    self.wfile.flush()
                    time.sleep(0.05)
                return
            self.wfile.write(body)

    return Handler


def main():
    config_path = sys.argv[1]
    log = None
    if "--log" in sys.argv:
        log = sys.argv[sys.argv.index("--log") + 1]
    with open(config_path) as f:
        state = State(json.load(f), log)
    cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "cdn"))
    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state, "hub"))
    state.cdn_port = cdn.server_address[1]
    for server in (cdn, hub):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"hub": hub.server_address[1], "cdn": cdn.server_address[1]}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
