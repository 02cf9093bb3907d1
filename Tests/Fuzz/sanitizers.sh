#!/usr/bin/env bash
# The whole test suite under AddressSanitizer, then under ThreadSanitizer, each in a build
# folder of its own (.build-asan, .build-tsan; the full log in <folder>/sanitize.log). Exits 1 if
# a build or a test fails or a sanitizer reports anything.
#
#   bash Tests/Fuzz/sanitizers.sh [address|thread]…
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
kinds=("$@")
[ ${#kinds[@]} -eq 0 ] && kinds=(address thread)
status=0
for k in "${kinds[@]}"; do
  dir=.build-${k:0:1}san
  log=$dir/sanitize.log
  mkdir -p "$dir"
  echo "== swift test --sanitize=$k ($log)"
  # Leaks that are not ours (Tests/Fuzz/lsan.supp). The path is absolute: the tmux tests start
  # the chat from other folders, and a sanitizer that cannot read it stops the program. Stacks
  # of 120 frames: a JSON document parsed for a static is 30 frames deep before its initialiser.
  ASAN_OPTIONS=detect_leaks=1:malloc_context_size=120 LSAN_OPTIONS=suppressions=$root/Tests/Fuzz/lsan.supp TSAN_OPTIONS=halt_on_error=0 \
    swift test --sanitize="$k" --scratch-path "$dir" >"$log" 2>&1
  rc=$?
  grep -E "✘ Test [^ ]+ (failed|recorded)|Test run|ERROR: |WARNING: ThreadSanitizer|SUMMARY" "$log" | sort | uniq -c | sort -rn | sed 20q
  if [ $rc -ne 0 ]; then echo "!! swift test --sanitize=$k exited $rc"; status=1; fi
  if grep -qE "ERROR: AddressSanitizer|ERROR: LeakSanitizer|WARNING: ThreadSanitizer" "$log"; then status=1; fi
done
exit $status
