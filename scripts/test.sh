#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a warm one: installs what it needs when missing
# (a Python virtualenv with pyiso8583, the jPOS peer, Redis, Cassandra), starts the servers the
# tests need on free loopback ports, runs every test, and stops what it started by PID.
#
#   ./scripts/test.sh            everything (what CI runs)
#   ./scripts/test.sh -p ssn-codec   extra arguments go to `cargo test`
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"

trap stop_services EXIT

# The suite builds each target once: incremental artifacts would only double target/ on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step "peers: pyiso8583 virtualenv and the jPOS program"
setup_peers

step "services"
start_services

step "cargo fmt --check"
cargo fmt --all -- --check

if [[ $# -eq 0 ]]; then
  step "cargo clippy (workspace, all targets, warnings denied)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "cargo test (workspace, all targets)"
cargo test --workspace --all-targets --locked --no-fail-fast "$@"

if [[ $# -eq 0 ]]; then
  step "schemathesis against the admin API's served OpenAPI document"
  bash "$root/scripts/schemathesis.sh" "$root/target/debug/ssn-switch"
fi

step "done"
