#!/usr/bin/env bash
# Start-up of the switch on a data directory, measured: seconds from spawn to the "listening"
# line, the switch's own "ledger opened" line (entries, from_snapshot, millis) and its RSS
# once listening; then the switch is stopped by PID. A benchmark helper (BENCHMARKS.md), not
# a test.
#
#   scripts/bench-start.sh DATA_DIR [SWITCH_BINARY]
set -euo pipefail
dir=$1
bin=${2:-target/release/ssn-switch}
out=$(mktemp)
err=$(mktemp)
start=$(date +%s.%N)
"$bin" serve --data-dir "$dir" --bcd-listen 127.0.0.1:0 --ascii-listen 127.0.0.1:0 \
  --admin-listen 127.0.0.1:0 --log info >"$out" 2>"$err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$out" "$err"' EXIT
for _ in $(seq 1 6000); do
  if grep -q '"event":"listening"' "$out"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$err" >&2; exit 1; fi
  sleep 0.01
done
listening=$(date +%s.%N)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
opened=$(grep 'ledger opened' "$err" | grep -o '"fields":{[^}]*}' | head -1 || true)
printf 'start to listening %.2f s, RSS %d MB, %s\n' \
  "$(awk "BEGIN {print $listening - $start}")" $((rss_kb / 1024)) "$opened"
grep -o '"admin":"[^"]*"' "$out" | head -1
kill "$pid"
wait "$pid" 2>/dev/null || true
