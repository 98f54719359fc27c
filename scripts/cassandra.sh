# Apache Cassandra 5.0 as the tests' local CQL engine (nothing here can install ScyllaDB, and
# Cassandra speaks the same CQL protocol v4 the `scylla` crate uses). Sourced by
# scripts/services.sh, which gets free_port, step and SSN_PIDS from scripts/lib.sh.
#
# The jars come from Maven Central once (`mvn dependency:copy-dependencies` on a throwaway
# pom) into $SSN_CASSANDRA_CACHE (default ~/.cache/ssn/cassandra/VERSION); a run that finds the
# cache complete downloads nothing. The node runs on JDK 17, loopback only, with a small heap
# and its data in a fresh temporary directory, and is stopped by PID with the other services.

CASSANDRA_VERSION=5.0.9
# Seconds a cold 2-core machine may take until Cassandra answers CQL.
CASSANDRA_START_SECONDS_MAX=180
# Heap of the test node: every test creates a keyspace of ten tables, and a few hundred
# tables overflow 1 GiB; 2 GiB stays small beside the builds sharing the machine.
CASSANDRA_HEAP_MB=2048

cassandra_cache_dir() {
  echo "${SSN_CASSANDRA_CACHE:-$HOME/.cache/ssn/cassandra}/$CASSANDRA_VERSION"
}

# Fetches cassandra-all and its dependencies into the cache, unless already there.
fetch_cassandra() {
  local cache
  cache=$(cassandra_cache_dir)
  if [[ -f "$cache/complete" ]]; then
    return 0
  fi
  step "fetching Cassandra $CASSANDRA_VERSION with Maven into $cache"
  rm -rf "$cache"
  mkdir -p "$cache"
  cat >"$cache/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ssn.test</groupId>
  <artifactId>cassandra-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
</project>
POM
  # The parent pom's system-scoped `${jmc5.path}` dependencies are excluded by scope.
  mvn -q -B -f "$cache/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$cache/lib" >"$cache/maven.log" 2>&1 || {
    echo "maven could not fetch cassandra-all $CASSANDRA_VERSION; log follows" >&2
    cat "$cache/maven.log" >&2
    return 1
  }
  ls "$cache"/lib/jamm-*.jar >/dev/null 2>&1 || {
    echo "the Cassandra dependencies lack jamm" >&2
    return 1
  }
  touch "$cache/complete"
}

# The --add-exports/--add-opens list of Cassandra 5.0's conf/jvm17-server.options: without it
# the JVM dies at start-up with InaccessibleObjectException.
cassandra_jvm17_options() {
  local e o
  for e in java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch \
    java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
    java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc; do
    printf -- '--add-exports\n%s=ALL-UNNAMED\n' "$e"
  done
  for o in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref \
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module \
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal \
    java.base/sun.nio.ch java.base/java.io java.base/java.nio java.base/java.util.concurrent \
    java.base/java.util java.base/java.util.concurrent.atomic java.base/java.lang \
    java.base/java.math java.base/java.lang.reflect java.base/java.net; do
    printf -- '--add-opens\n%s=ALL-UNNAMED\n' "$o"
  done
}

# True when something on 127.0.0.1:$1 answers a CQL v4 OPTIONS request with SUPPORTED.
cql_ready() {
  python3 - "$1" <<'PY'
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
s.sendall(struct.pack(">BBhBi", 4, 0, 1, 5, 0))  # v4 request, stream 1, OPTIONS, no body
header = s.recv(9)
sys.exit(0 if len(header) == 9 and header[0] == 0x84 and header[4] == 6 else 1)
PY
}

# Starts one Cassandra node in a fresh directory on free loopback ports and exports
# SSN_TEST_CASSANDRA_NODES (host:port) and SSN_TEST_CASSANDRA_PID (for tests that stop and
# restart it). Arguments, all optional: a directory to reuse (restart with the same data), the
# CQL port and the storage port. SSN_CASSANDRA_COMMITLOG=batch acknowledges a write only once
# its commit log is on disk and keeps the system keyspaces' commit log (so a node killed with
# SIGKILL loses nothing it acknowledged, its schema included); the default, periodic, is
# faster and enough for tests that never kill the node.
start_cassandra() {
  fetch_cassandra
  local cache dir port storage_port java commitlog unsafe_system
  if [[ "${SSN_CASSANDRA_COMMITLOG:-periodic}" == batch ]]; then
    commitlog="commitlog_sync: batch"
    unsafe_system=false
  else
    commitlog=$'commitlog_sync: periodic\ncommitlog_sync_period: 10000ms'
    unsafe_system=true
  fi
  cache=$(cassandra_cache_dir)
  dir=${1:-$(mktemp -d -t ssn-cassandra.XXXXXX)}
  port=${2:-$(free_port)}
  storage_port=${3:-$(free_port)}
  java=$(cassandra_java)
  mkdir -p "$dir"/{data,commitlog,hints,saved_caches,cdc}
  cat >"$dir/cassandra.yaml" <<YAML
cluster_name: ssn-test
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage_port
native_transport_port: $port
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage_port"
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
hints_directory: $dir/hints
saved_caches_directory: $dir/saved_caches
cdc_raw_directory: $dir/cdc
$commitlog
auto_snapshot: false
hinted_handoff_enabled: false
dynamic_snitch: false
concurrent_reads: 8
concurrent_writes: 16
write_request_timeout: 5000ms
read_request_timeout: 5000ms
YAML
  local jamm
  jamm=$(ls "$cache"/lib/jamm-*.jar | head -1)
  local -a options
  mapfile -t options < <(cassandra_jvm17_options)
  "$java" -Xms${CASSANDRA_HEAP_MB}m -Xmx${CASSANDRA_HEAP_MB}m -XX:+UseG1GC \
    -XX:ActiveProcessorCount=2 -Xss256k \
    -javaagent:"$jamm" "${options[@]}" \
    -Djava.net.preferIPv4Stack=true \
    -Dcassandra.config="file://$dir/cassandra.yaml" \
    -Dcassandra.storagedir="$dir" \
    -Dcassandra-foreground=yes \
    -Dcassandra.unsafesystem=$unsafe_system \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.jmx.local.port="$(free_port)" \
    -Dcassandra.logdir="$dir" \
    -cp "$cache/lib/*" org.apache.cassandra.service.CassandraDaemon >"$dir/cassandra.log" 2>&1 &
  local pid=$!
  SSN_PIDS+=("$pid")
  if ! wait_until "$CASSANDRA_START_SECONDS_MAX" cql_ready "$port"; then
    echo "Cassandra did not answer CQL within ${CASSANDRA_START_SECONDS_MAX}s; log tail follows" >&2
    tail -n 60 "$dir/cassandra.log" >&2 || true
    return 1
  fi
  export SSN_TEST_CASSANDRA_NODES="127.0.0.1:$port"
  export SSN_TEST_CASSANDRA_PID="$pid"
  export SSN_TEST_CASSANDRA_DIR="$dir"
  step "Cassandra $CASSANDRA_VERSION on port $port, pid $pid (SSN_TEST_CASSANDRA_NODES=$SSN_TEST_CASSANDRA_NODES)"
}

# JDK 17: Cassandra 5.0 runs on 11 or 17, and Java 24+ cannot run it at all.
cassandra_java() {
  local candidate
  for candidate in "${SSN_CASSANDRA_JAVA:-}" /usr/lib/jvm/java-17-openjdk-amd64/bin/java \
    /usr/lib/jvm/java-17-openjdk-arm64/bin/java "$(command -v java)"; do
    if [[ -n "$candidate" && -x "$candidate" ]] &&
      "$candidate" -version 2>&1 | grep -q 'version "17'; then
      echo "$candidate"
      return 0
    fi
  done
  echo "no JDK 17 found for Cassandra (set SSN_CASSANDRA_JAVA)" >&2
  return 1
}
