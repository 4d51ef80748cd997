#!/usr/bin/env bash
# The whole test suite, once against Redis 7.0 and once against Valkey 8.1, each test
# on private servers it starts itself. Installs a missing server first.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-servers.sh

run_suite() { # server-binary cli-binary
  echo "== test suite against $("$1" --version | cut -d' ' -f1-3)"
  DTRSFW_TEST_SERVER="$1" DTRSFW_TEST_CLI="$2" cargo test --workspace "${@:3}"
}
run_suite "$(command -v redis-server)" "$(command -v redis-cli)" "$@"
run_suite "$VALKEY_SERVER" "$(dirname "$VALKEY_SERVER")/valkey-cli" "$@"
