#!/usr/bin/env bash
# Fuzzes nekochat's parsers with libFuzzer + AddressSanitizer.
#
#   bash Tests/Fuzz/run.sh [SECONDS_EACH=600] [TARGET…]   (byte-level targets: safetensors config
#     tokenizer template transcript keys http hub; structure-aware ones, whose bytes are choices
#     in a grammar (Tests/Fuzz/Targets/Grammar.swift): template-grammar tokenizer-grammar
#     config-grammar transcript-grammar hub-grammar)
# Builds nekofuzz into .build-fuzz with -sanitize=fuzzer,address, then runs each target for the
# given time on a corpus grown from Tests/Fuzz/seeds/<target>. A crash, hang (10 s) or leak
# stops that target and leaves its input in .build-fuzz/crashes/; the script then exits 1.
# Put a fixed crash's input under Tests/Fuzz/regressions/<target>/ so the test suite replays it.
set -uo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(safetensors config tokenizer template transcript keys http hub
  template-grammar tokenizer-grammar config-grammar transcript-grammar hub-grammar)

swift build --product nekofuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DNEKO_FUZZ || exit 1
bin=.build-fuzz/debug/nekofuzz
mkdir -p .build-fuzz/crashes
status=0
for t in "${targets[@]}"; do
  corpus=.build-fuzz/corpus/$t
  mkdir -p "$corpus"
  echo "== $t: ${seconds}s"
  NEKO_FUZZ_TARGET=$t ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 LSAN_OPTIONS=suppressions=Tests/Fuzz/lsan.supp "$bin" "$corpus" "Tests/Fuzz/seeds/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix=".build-fuzz/crashes/$t-" 2>&1 | grep -E "^#[0-9]+ +DONE|^stat::number_of_executed_units|^stat::peak_rss|ERROR|SUMMARY|Test unit written|crash-|timeout-|leak-|oom-" \
    || true
  if ls .build-fuzz/crashes/"$t"-* >/dev/null 2>&1; then echo "!! $t: see .build-fuzz/crashes/$t-*"; status=1; fi
done
exit $status
