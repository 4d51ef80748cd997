#!/usr/bin/env bash
# Runs each failover test of a suite N times (default 10) and prints one FAILOVER-STATS line
# per run (acknowledged sends, lost ones, times to the promotion and to resumed consumption),
# then a total per test. Server: $DTRSFW_TEST_SERVER, as for the tests.
#   scripts/failover-soak.sh sentinel [N]   crates/dtrsfw/tests/sentinel.rs: kill -9 with and
#                                           without wait_for_replicas(1), SENTINEL FAILOVER
#   scripts/failover-soak.sh cluster [N]    crates/dtrsfw/tests/cluster_failover.rs: kill -9 of
#                                           the channel's primary, with and without the option
# A failing run (an assertion: a lost acknowledged send with wait_for_replicas(1), a late
# resume, a WAIT on the wrong shard) prints FAILED with its test name and the soak goes on.
# SOAK_TESTS picks some of the tests (names or name prefixes).
set -uo pipefail
suite=${1:-}
runs=${2:-10}
case "$suite" in
  sentinel)
    file=sentinel
    default="kill_9_of_the_primary_loses_no_send kill_9_of_the_primary_without_the_option a_planned_sentinel_failover" ;;
  cluster)
    file=cluster_failover
    default="killing_the_channels_primary_loses_no_send killing_the_channels_primary_without_the_option" ;;
  *) echo "usage: $0 sentinel|cluster [runs]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
bin=$(cargo test -q -p dtrsfw --test "$file" --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "cannot build the $file tests" >&2; exit 1; }
# A copy: a target dir shared with other builds may replace the binary meanwhile.
copy=$(mktemp "${TMPDIR:-/tmp}/failover-soak.XXXXXX")
trap 'rm -f "$copy"' EXIT
cp "$bin" "$copy" && chmod +x "$copy"
for test in ${SOAK_TESTS:-$default}; do
    passed=0 failed=0 acked=0 lost=0
    for run in $(seq "$runs"); do
        out=$("$copy" "$test" --nocapture 2>&1)
        stats=$(echo "$out" | grep FAILOVER-STATS)
        [ -n "$stats" ] && echo "$stats"
        a=$(echo "$stats" | grep -o ' acked=[0-9]*' | cut -d= -f2)
        l=$(echo "$stats" | grep -o ' lost=[0-9]*' | cut -d= -f2)
        acked=$((acked + ${a:-0})) lost=$((lost + ${l:-0}))
        if echo "$out" | grep -q "test result: ok"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1))
            echo "FAILED run $run of $test:"
            echo "$out" | grep -A3 "panicked at" | head -8
        fi
    done
    echo "TOTAL $test: runs=$runs passed=$passed failed=$failed acked=$acked lost=$lost"
done
