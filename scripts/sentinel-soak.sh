#!/usr/bin/env bash
# The Sentinel failover soak: scripts/failover-soak.sh sentinel [N] (see there).
exec "$(dirname "$0")/failover-soak.sh" sentinel "$@"
