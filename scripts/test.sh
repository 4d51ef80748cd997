#!/usr/bin/env bash
# The whole test suite, once against Redis 7.0 and once against Valkey 8.1, each test
# on private servers it starts itself. Installs a missing server first.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-servers.sh

for server in "$(command -v redis-server)" "$VALKEY_SERVER"; do
  echo "== test suite against $("$server" --version | cut -d' ' -f1-3)"
  DTRSFW_TEST_SERVER="$server" cargo test --workspace "$@"
done
