#!/usr/bin/env bash
# Build the proxy-wasm filter for wasm32-wasip1 into target-wasm/gatehouse_filter.wasm.
# Prefers an installed rustup wasm32-wasip1 target; otherwise builds std from Debian's
# rust-web-src with Debian's rustc and wasm-ld (see docs/ARCHITECTURE.md, "Building the filter").
set -euo pipefail
cd "$(dirname "$0")/.."
out=target-wasm
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  cargo build --profile wasm --target wasm32-wasip1 -p gatehouse-filter --target-dir "$out"
else
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-C linker=wasm-ld-22 -C link-self-contained=no -L /usr/lib/wasm32-wasi" \
    /usr/bin/cargo build --profile wasm --target wasm32-wasip1 \
      -Zbuild-std=std,panic_abort -p gatehouse-filter --target-dir "$out"
fi
cp "$out/wasm32-wasip1/wasm/gatehouse_filter.wasm" "$out/gatehouse_filter.wasm"
ls -l "$out/gatehouse_filter.wasm"
