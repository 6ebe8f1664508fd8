#!/usr/bin/env bash
# Per-stage cost of a decision (parse, extract, normalise, scan, token count), natively and
# as a WASI program inside V8 (node), the engine Envoy runs the filter in. The wasm build has
# no tokenizer, like the filter. Output: one JSON object per line and request.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stage-bench --features tokenizer
target/release/stage_bench
scripts/build-wasm.sh stage-bench >/dev/null
node --no-warnings tests/stage-bench/run-wasi.mjs target-wasm/stage_bench.wasm
