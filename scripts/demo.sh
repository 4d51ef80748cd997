#!/usr/bin/env bash
# The main job in one command: installs a missing server, builds `dtredis` and runs
# `dtredis demo` against a private server (or $REDIS_URL when set).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure-servers.sh
cargo run --quiet --release -p dtredis -- demo "$@"
