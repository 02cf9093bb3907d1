#!/usr/bin/env bash
# The whole test suite under AddressSanitizer, then under ThreadSanitizer, each in a build
# folder of its own (.build-asan, .build-tsan). Exits 1 if either finds anything.
#
#   bash Tests/Fuzz/sanitizers.sh [address|thread]…
set -uo pipefail
cd "$(dirname "$0")/../.."
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(address thread)
status=0
for k in "${kinds[@]}"; do
  dir=.build-${k:0:1}san
  mkdir -p "$dir"
  echo "== swift test --sanitize=$k ($dir, log in $dir/sanitize.log)"
  # Foundation's leak of empty-file reads is not ours (Tests/Fuzz/lsan.supp).
  ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=Tests/Fuzz/lsan.supp TSAN_OPTIONS=halt_on_error=0 \
    swift test --sanitize="$k" --scratch-path "$dir" 2>&1 | tee "$dir/sanitize.log" | grep -E "✘|Test run|ERROR: |WARNING: ThreadSanitizer|SUMMARY" | head -40
  if grep -qE "ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer|✘ Test run" "$dir/sanitize.log"; then status=1; fi
done
exit $status
