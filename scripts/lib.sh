# Shared shell functions for scripts/test.sh. Sourced, not run.
# Each service function records the PID it started in $SSN_PIDS so stop_services can end it.

SSN_PIDS=()
PEERS_DIR="${SSN_PEERS_DIR:-$root/target/peers}"

step() { printf '\n==> %s\n' "$*" >&2; }

# A free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Polls "$@" until it succeeds or $1 seconds pass. Never sleeps blindly for readiness.
wait_until() {
  local deadline_s=$1; shift
  local end=$((SECONDS + deadline_s))
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS >= end )); then return 1; fi
    sleep 0.2
  done
}

setup_peers() {
  bash "$root/tests/peers/setup.sh" "$PEERS_DIR"
  export SSN_PYTHON="$PEERS_DIR/venv/bin/python"
  export SSN_JPOS_CLASSPATH
  SSN_JPOS_CLASSPATH=$(cat "$PEERS_DIR/jpos/classpath.txt")
}

start_services() {
  # Redis and Cassandra arrive with the ledger and Scylla issues (scripts/services.sh).
  if [[ -f "$root/scripts/services.sh" ]]; then
    # shellcheck source=/dev/null
    source "$root/scripts/services.sh"
    start_all_services
  fi
}

stop_services() {
  local pid
  for pid in "${SSN_PIDS[@]:-}"; do
    [[ -n "$pid" ]] || continue
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SSN_PIDS[@]:-}"; do
    [[ -n "$pid" ]] || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}
