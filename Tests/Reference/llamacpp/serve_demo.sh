#!/usr/bin/env bash
# Serve the demo model (Sources/nekochat/Resources/DemoModel) with llama-cpp-python's OpenAI-compatible
# server, as a third-party server to test a client against:
#
#   Tests/Reference/llamacpp/serve_demo.sh PORT
#   curl -N http://127.0.0.1:PORT/v1/chat/completions -H 'Content-Type: application/json' \
#        -d '{"messages":[{"role":"user","content":"Hello"}],"stream":true,"max_tokens":32}'
#
# The GGUF (glm4moe, BF16, with the demo's tokenizer and ChatML template) is made by make_gguf.py on
# first use. Its text is NOT exactly the demo model's: glm4moe has no shared-expert gate, so every MoE
# layer adds the shared expert unscaled (see README.md). Tokenization and the template are the demo's.
# Env: DEMO_GGUF (default /work/gguf/demo-bf16.gguf), VENV (default /work/venv), THREADS (default 2),
#      CHAT_FORMAT (default: none, i.e. the Jinja template stored in the GGUF; "chatml" for
#      llama-cpp-python's built-in one), HOST (default 127.0.0.1).
set -euo pipefail
PORT=${1:?usage: serve_demo.sh PORT}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
VENV=${VENV:-/work/venv}
GGUF=${DEMO_GGUF:-/work/gguf/demo-bf16.gguf}
if [ ! -f "$GGUF" ]; then
  mkdir -p "$(dirname "$GGUF")"
  "$VENV/bin/python" "$here/make_gguf.py" "$repo/Sources/nekochat/Resources/DemoModel" "$GGUF" --type bf16
fi
"$VENV/bin/python" -c 'import llama_cpp.server' 2>/dev/null || {
  echo "error: llama_cpp.server is not installed in $VENV: run build_llamacpp.sh --python-only" >&2; exit 1; }
args=(--model "$GGUF" --host "${HOST:-127.0.0.1}" --port "$PORT" --n_ctx 2048 --n_threads "${THREADS:-2}"
      --model_alias nekomind-demo)
[ -n "${CHAT_FORMAT:-}" ] && args+=(--chat_format "$CHAT_FORMAT")
exec "$VENV/bin/python" -m llama_cpp.server "${args[@]}"
