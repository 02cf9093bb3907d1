#!/usr/bin/env python3
"""A misbehaving OpenAI-compatible server, to test how nekochat's client reports failures.

    python fake_server.py MODE   # prints the port it listens on, then serves until killed

MODE: ok | 401 | 404 | 429 | 500 | malformed | die (the connection drops mid-stream) | slow
/v1/models always answers (401 mode: only with the key "good"); /v1/chat/completions and
/v1/completions behave as MODE says. Standard library only.
"""
import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[1]


def chunk(text, finish=None):
    return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
                                  "choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}) + "\n\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, ctype="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message):
        self.send(status, json.dumps({"error": {"message": message, "type": "fake", "param": None, "code": None}}))

    def do_GET(self):
        if MODE == "401" and self.headers.get("Authorization") != "Bearer good":
            return self.error(401, "Incorrect API key provided")
        self.send(200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "me"}]}))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if MODE in ("401",) and self.headers.get("Authorization") != "Bearer good":
            return self.error(401, "Incorrect API key provided")
        if MODE == "404":
            return self.error(404, "The model `fake` does not exist")
        if MODE == "429":
            return self.error(429, "Rate limit reached, slow down")
        if MODE == "500":
            return self.error(500, "The server had an error while processing your request")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = ["Once ", "upon ", "a ", "time ", "there ", "was ", "a ", "server."]
        if MODE == "malformed":
            self.wfile.write(chunk(words[0]).encode())
            self.wfile.write(b"data: {this is not json\n\n")
            self.wfile.flush()
            return
        for i, w in enumerate(words):
            self.wfile.write(chunk(w).encode())
            self.wfile.flush()
            if MODE == "slow":
                time.sleep(0.3)
            if MODE == "die" and i == 2:
                self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                return
        self.wfile.write(chunk("", "stop").encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
