#!/usr/bin/env bash
# Builds the independent interoperability peers into DIR (scripts/lib.sh passes target/peers):
#
#   DIR/venv                  a Python virtualenv holding exactly pyiso8583 and pycryptodome
#                             (3DES for the PIN blocks of `peer.py client`)
#   DIR/jpos/classes          the compiled jPOS peer, main class ssn.peers.Peer
#   DIR/jpos/lib/*.jar        jPOS and every jar it needs at run time
#   DIR/jpos/classpath.txt    the whole run-time classpath on one line:
#                             java -cp "$(cat DIR/jpos/classpath.txt)" ssn.peers.Peer gen 1000 7
#
# Idempotent: each half writes a stamp holding a hash of its inputs when it finishes, and a later
# run whose inputs hash the same does nothing, so a warm run neither downloads nor builds.
# Everything Maven writes goes under DIR, never into the source tree.
#
#   bash tests/peers/setup.sh target/peers
set -euo pipefail

PYISO8583_VERSION=4.0.1
PYCRYPTODOME_VERSION=4.4.0

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)

fail() {
  echo "tests/peers/setup.sh: $*" >&2
  exit 1
}

# The inputs of a half, as one hash; a different hash means that half is built again.
inputs_hash() {
  {
    cat "$here/setup.sh"
    "$@"
  } | sha256sum | cut -d' ' -f1
}

# Where a tool resolves to, so that a different interpreter or JDK means a rebuild.
resolved() {
  local path
  if path=$(command -v "$1"); then readlink -f "$path"; else echo "no $1"; fi
}

python_inputs() {
  echo "pyiso8583==$PYISO8583_VERSION"
  echo "pycryptodome==$PYCRYPTODOME_VERSION"
  resolved python3
}

java_inputs() {
  (cd "$here/jpos" && find pom.xml src -type f | LC_ALL=C sort | xargs sha256sum)
  resolved javac
  resolved mvn
}

stamp_matches() {
  local stamp=$1 hash=$2
  [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]
}

setup_python() {
  local venv=$out/venv hash log
  hash=$(inputs_hash python_inputs)
  if stamp_matches "$venv/.stamp" "$hash" && [[ -x "$venv/bin/python" ]]; then
    return 0
  fi
  command -v python3 >/dev/null || fail "python3 is not on PATH"
  rm -rf "$venv"
  log=$out/venv.log
  if ! python3 -m venv "$venv" >"$log" 2>&1; then
    cat "$log" >&2
    fail "python3 -m venv $venv failed (output above)"
  fi
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "pyiso8583==$PYISO8583_VERSION" "pycryptodome==$PYCRYPTODOME_VERSION" >"$log" 2>&1; then
    cat "$log" >&2
    fail "pip install pyiso8583==$PYISO8583_VERSION pycryptodome==$PYCRYPTODOME_VERSION failed (output above)"
  fi
  "$venv/bin/python" "$here/pyiso/peer.py" gen --count 1 --seed 1 >/dev/null \
    || fail "the pyiso8583 peer does not run: $venv/bin/python $here/pyiso/peer.py gen --count 1 --seed 1"
  "$venv/bin/python" -c "from Crypto.Cipher import DES3" \
    || fail "pycryptodome does not import in $venv"
  rm -f "$log"
  echo "$hash" >"$venv/.stamp"
}

setup_java() {
  local jpos=$out/jpos hash log classpath
  hash=$(inputs_hash java_inputs)
  if stamp_matches "$jpos/.stamp" "$hash" && [[ -s "$jpos/classpath.txt" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || fail "mvn is not on PATH (Maven 3.8 and a JDK 17 are needed)"
  command -v java >/dev/null || fail "java is not on PATH"
  rm -rf "$jpos"
  mkdir -p "$jpos"
  log=$out/jpos-build.log
  # -Dpeer.out moves Maven's build directory, the classes and the copied jars under DIR.
  if ! mvn -q -B -Dstyle.color=never -f "$here/jpos/pom.xml" -Dpeer.out="$jpos" \
      compile dependency:copy-dependencies >"$log" 2>&1; then
    # Maven 3.8 writes colour resets even in batch mode; they only garble a log.
    sed 's/\x1b\[[0-9;]*m//g' "$log" >&2
    fail "the Maven build of the jPOS peer failed (output above; full log in $log)"
  fi
  classpath=$jpos/classes
  local jar
  for jar in "$jpos"/lib/*.jar; do
    classpath+=":$jar"
  done
  echo "$classpath" >"$jpos/classpath.txt"
  java -cp "$classpath" ssn.peers.Peer gen 1 1 >/dev/null \
    || fail "the jPOS peer does not run: java -cp \"\$(cat $jpos/classpath.txt)\" ssn.peers.Peer gen 1 1"
  rm -f "$log"
  echo "$hash" >"$jpos/.stamp"
}

setup_python
setup_java
