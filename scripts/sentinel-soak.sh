#!/usr/bin/env bash
# Runs each Sentinel failover test of crates/dtrsfw/tests/sentinel.rs N times (default 10)
# and prints one FAILOVER-STATS line per run: acknowledged sends, lost ones, time to the
# promotion and to resumed consumption. Server: $DTRSFW_TEST_SERVER, as for the tests.
# A failing run (an assertion: a lost acknowledged send with wait_for_replicas(1), a late
# resume) prints FAILED with its test name and the soak goes on.
set -uo pipefail
runs=${1:-10}
cd "$(dirname "$0")/.."
bin=$(cargo test -q -p dtrsfw --test sentinel --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "cannot build the sentinel tests" >&2; exit 1; }
# A copy: a target dir shared with other builds may replace the binary meanwhile.
copy=$(mktemp "${TMPDIR:-/tmp}/sentinel-soak.XXXXXX")
trap 'rm -f "$copy"' EXIT
cp "$bin" "$copy" && chmod +x "$copy"
# SOAK_TESTS picks some of the tests (names or name prefixes).
tests=${SOAK_TESTS:-"kill_9_of_the_primary_loses_no_send kill_9_of_the_primary_without_the_option a_planned_sentinel_failover"}
for test in $tests; do
    for run in $(seq "$runs"); do
        out=$("$copy" "$test" --nocapture 2>&1)
        echo "$out" | grep FAILOVER-STATS || true
        if ! echo "$out" | grep -q "test result: ok"; then
            echo "FAILED run $run of $test:"
            echo "$out" | grep -A3 "panicked at" | head -8
        fi
    done
done
