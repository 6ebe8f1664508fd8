#!/usr/bin/env bash
# Build a proxy-wasm crate for wasm32-wasip1 into target-wasm/<crate>.wasm
# (default: the Gatehouse filter; `scripts/build-wasm.sh noop-filter` builds the bench floor).
# Prefers an installed rustup wasm32-wasip1 target; otherwise builds std from Debian's
# rust-web-src with Debian's rustc and wasm-ld (see docs/ARCHITECTURE.md, "Building the filter").
set -euo pipefail
cd "$(dirname "$0")/.."
crate=${1:-gatehouse-filter}
artifact=${crate//-/_}
out=target-wasm
extra=""
if [ "$crate" = stage-bench ]; then
  # A WASI command (run by node), not a proxy-wasm library: it needs the C start file, and
  # its own target dir so the filter's build is not invalidated by the different flags.
  extra="-C link-arg=/usr/lib/wasm32-wasi/crt1-command.o"
  out=target-wasm/stage
fi
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  cargo build --profile wasm --target wasm32-wasip1 -p "$crate" --target-dir "$out"
else
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
  RUSTFLAGS="-C linker=wasm-ld-22 -C link-self-contained=no -L /usr/lib/wasm32-wasi $extra" \
    /usr/bin/cargo build --profile wasm --target wasm32-wasip1 \
      -Zbuild-std=std,panic_abort -p "$crate" --target-dir "$out"
fi
cp "$out/wasm32-wasip1/wasm/$artifact.wasm" "target-wasm/$artifact.wasm"
ls -l "target-wasm/$artifact.wasm"
