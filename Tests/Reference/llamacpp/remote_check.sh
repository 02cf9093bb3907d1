#!/usr/bin/env bash
# Opt-in (it needs build_llamacpp.sh's llama-cpp-python): nekochat as the client of a server
# nobody here wrote. Starts llama-cpp-python's OpenAI server on the demo GGUF, then
#   1. nekochat generate --server (chat and plain completion, text and JSON),
#   2. the chat in tmux: a message, a streamed reply, the "does not report routing" notice,
#      Esc mid-reply, /quit — and checks the transcript names the remote backend.
#
#   bash Tests/Reference/llamacpp/remote_check.sh [path/to/nekochat] [PORT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
bin=${1:-$repo/.build/release/nekochat}
port=${2:-18123}
work=$(mktemp -d)
fail() { echo "FAIL: $*"; status=1; }
status=0
"$here/serve_demo.sh" "$port" > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; tmux -L remote-check kill-server 2>/dev/null' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null && break; sleep 1; done
url=http://127.0.0.1:$port

out=$("$bin" generate --server "$url" --chat --prompt "Speak, friend." --max-tokens 24 --json) || fail "generate --chat --json"
echo "chat JSON: $out"
echo "$out" | grep -q '"finish_reason"' || fail "no finish_reason"
echo "$out" | grep -q '"routing"' && fail "routing from a server without the extension"
"$bin" generate --server "$url" --prompt "ROMEO." --max-tokens 16 || fail "plain completion"

tmux -L remote-check new-session -d -s c -x 100 -y 30 "XDG_DATA_HOME=$work $bin --server $url --max-tokens 200; echo EXITED \$?; sleep 30"
sleep 3
tmux -L remote-check send-keys -t c "What light through yonder window breaks?" Enter
for _ in $(seq 1 60); do tmux -L remote-check capture-pane -t c -p | grep -q "neko ·\|neko (stopped)" && break; sleep 0.5; done
screen=$(tmux -L remote-check capture-pane -t c -p)
echo "$screen"
echo "$screen" | grep -q "does not report routing" || fail "no notice about routing"
echo "$screen" | grep -q "tok/s" || fail "no tok/s"
tmux -L remote-check send-keys -t c "/quit" Enter
sleep 2
tmux -L remote-check capture-pane -t c -p | grep -q "EXITED 0" || fail "the chat did not exit cleanly"
grep -l '"backend":"remote"' "$work"/nekochat/*.jsonl >/dev/null 2>&1 || fail "the transcript does not record the remote backend"
[ $status -eq 0 ] && echo "remote check passed against llama-cpp-python's server"
exit $status
