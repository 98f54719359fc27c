# Services the tests need, started on free loopback ports. Sourced by scripts/lib.sh, which
# provides free_port, wait_until and the SSN_PIDS array that stop_services uses.

# Seconds redis-server may take to answer PING before the test run gives up.
REDIS_START_SECONDS_MAX=30

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    step "installing redis-server (Debian package)"
    apt-get update && apt-get install -y redis-server
  fi
  local port dir
  port=$(free_port)
  dir=$(mktemp -d -t ssn-redis.XXXXXX)
  # No persistence: Redis is a cache of the ledger's journal, and every test ledger rebuilds
  # its cards from its own journal at open.
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$dir" --logfile "$dir/redis.log" &
  SSN_PIDS+=("$!")
  if ! wait_until "$REDIS_START_SECONDS_MAX" redis-cli -h 127.0.0.1 -p "$port" ping; then
    echo "redis-server did not answer PING within ${REDIS_START_SECONDS_MAX}s; log follows" >&2
    cat "$dir/redis.log" >&2 || true
    return 1
  fi
  export SSN_TEST_REDIS_URL="redis://127.0.0.1:$port/"
  step "redis-server on port $port (SSN_TEST_REDIS_URL=$SSN_TEST_REDIS_URL)"
}

# Cassandra 5.0 as the CQL engine of the Scylla stores: start_cassandra (fetched once into
# ~/.cache/ssn/cassandra, started on JDK 17, stopped by PID with the rest).
# shellcheck source=scripts/cassandra.sh
source "$root/scripts/cassandra.sh"

# Debian's chromium renders the semester report's HTML in tests/e2e/report.rs (headless, no
# network). Installed when missing, like redis-server.
# The console's browser test (tests/e2e/console.rs) drives it through chromedriver, Debian's
# chromium-driver (the same chromium version, so they always match).
ensure_chromium() {
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    step "installing chromium and chromium-driver (Debian packages)"
    apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver
  fi
}

# The TLS tests (tests/e2e/switch_interop.rs) make their certificates with `openssl` and talk
# to the admin API over HTTPS with `curl`. Installed when missing, like redis-server.
ensure_tls_tools() {
  if ! command -v openssl >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    step "installing openssl and curl (Debian packages)"
    apt-get update && apt-get install -y --no-install-recommends openssl curl ca-certificates
  fi
}

start_all_services() {
  ensure_chromium
  ensure_tls_tools
  start_redis
  start_cassandra
}
