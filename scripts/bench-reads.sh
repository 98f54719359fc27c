#!/usr/bin/env bash
# Admin reads in a loop beside purchases, measured: for SECONDS seconds, asks the admin API at
# ADMIN (host:port) with TOKEN, one request after another, for each read of issue 17's list
# (the semester report in JSON, CSV and HTML, the public summary, transaction pages, a card's
# statement, audit pages), then prints per read the calls made, the slowest and the median
# time, and the HTTP codes seen. A benchmark helper (BENCHMARKS.md), not a test.
#
#   scripts/bench-reads.sh ADMIN TOKEN SECONDS CARD_ID YEAR HALF
set -euo pipefail
admin=$1
token=$2
seconds=$3
card=$4
year=$5
half=$6
base="http://$admin/api/v1"
reads=(
  "report-json /reports/semester?year=$year&half=$half&format=json"
  "report-csv /reports/semester?year=$year&half=$half&format=csv"
  "report-html /reports/semester?year=$year&half=$half&format=html"
  "summary /public/summary"
  "transactions-first /transactions?page=1&page_size=50"
  "transactions-deep /transactions?page=100000&page_size=50"
  "transactions-card /transactions?card_id=$card"
  "statement /cards/$card/statement"
  "audit /audit?page=1"
)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
end=$(($(date +%s) + seconds))
while [ "$(date +%s)" -lt "$end" ]; do
  for read in "${reads[@]}"; do
    name=${read%% *}
    path=${read#* }
    curl -s -o /dev/null -H "Authorization: Bearer $token" \
      -w "$name %{http_code} %{time_total}\n" "$base$path" >>"$out"
  done
done
awk '{n[$1]++; codes[$1]=codes[$1] " " $2; t[$1, n[$1]]=$3; if ($3 > max[$1]) max[$1]=$3}
  END {for (r in n) {
    m = n[r]; for (i = 1; i <= m; i++) v[i] = t[r, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) {x = v[i]; v[i] = v[j]; v[j] = x}
    split(codes[r], c, " "); seen = ""; for (i in c) if (index(seen, c[i]) == 0) seen = seen c[i] " "
    printf "%-20s calls %4d  median %.3f s  max %.3f s  codes %s\n", r, m, v[int((m + 1) / 2)], max[r], seen
  }}' "$out" | sort
