#!/usr/bin/env bash
# Runs schemathesis (PyPI) against the admin API exactly as `ssn-switch serve` serves it: starts
# the switch built by `cargo test` on a throwaway demo data directory and free loopback ports,
# fetches /api/v1/openapi.json with the bootstrap token, and lets schemathesis generate requests
# for every operation (examples, coverage and fuzzing phases, a fixed seed and deterministic
# generation so a run repeats). It fails on any 5xx, any response that breaks the document's
# schema, an undocumented status code or content type. The switch is stopped by PID.
#
#   bash scripts/schemathesis.sh target/debug/ssn-switch
#
# The virtualenv lives in target/peers/schemathesis and is reused while its version is the same.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
# Requests per operation and phase: enough to walk every field and status, bounded in time.
MAX_EXAMPLES=${SSN_SCHEMATHESIS_EXAMPLES:-25}
# The whole run may take this long before it is stopped and failed.
RUN_DEADLINE_S=900
READY_DEADLINE_S=60

root=$(cd "$(dirname "$0")/.." && pwd)
switch=$(readlink -f "${1:?usage: $0 PATH/TO/ssn-switch}")
venv="$root/target/peers/schemathesis"
stamp="$venv/.stamp"

if [[ "$(cat "$stamp" 2>/dev/null)" != "$SCHEMATHESIS_VERSION" ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  echo "$SCHEMATHESIS_VERSION" >"$stamp"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ssn-schemathesis.XXXXXX")
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

token="ssn_schemathesis_$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
SSN_BOOTSTRAP_TOKEN="$token" "$switch" serve --data-dir "$work/data" --demo \
  --bcd-listen 127.0.0.1:0 --ascii-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --log warn >"$work/stdout" 2>"$work/stderr" &
pid=$!

listening() { grep -q '"event":"listening"' "$work/stdout"; }
end=$((SECONDS + READY_DEADLINE_S))
until listening; do
  if ! kill -0 "$pid" 2>/dev/null || (( SECONDS >= end )); then
    echo "scripts/schemathesis.sh: the switch did not start:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.2
done
admin=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["admin"])' "$work/stdout")

curl --silent --show-error --fail -H "Authorization: Bearer $token" \
  "http://$admin/api/v1/openapi.json" -o "$work/openapi.json"

cd "$work"
timeout "$RUN_DEADLINE_S" "$venv/bin/schemathesis" run "$work/openapi.json" \
  --url "http://$admin/api/v1" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed 20261129 --generation-deterministic \
  --workers 1 --no-color

# The server must still be up and its books intact after everything schemathesis sent.
kill -0 "$pid"
curl --silent --show-error --fail "http://$admin/readyz" >/dev/null
kill "$pid"
wait "$pid" || true
pid=""
"$switch" verify --data-dir "$work/data"
