#!/usr/bin/env bash
# Build the libFuzzer targets in fuzz/ with coverage instrumentation and run each for a
# bounded time. Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Corpora and crash artifacts stay under fuzz/corpus and fuzz/artifacts (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json_strict decide_body normalize mask_stream bundle)
# What cargo-fuzz passes, without its nightly-only sanitizer flag.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation out of build scripts and proc macros.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins -q --target "$host"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "fuzz: $t for ${secs}s"
  ./target/"$host"/release/"$t" "corpus/$t" -max_total_time="$secs" -max_len=4096 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|==|SUMMARY|.*panicked|Done)" || true
  if ls "artifacts/$t"/crash-* "artifacts/$t"/oom-* "artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "fuzz: $t found a failing input in fuzz/artifacts/$t" >&2
    exit 1
  fi
done
echo "fuzz: no failure"
