# Gatehouse: two commands on a fresh machine.
#   make run   - install what is missing, build, start the local stack on 127.0.0.1:10000
#   make test  - every test: unit tests, bundle checks, end-to-end tests in a real Envoy
SHELL := /bin/bash
CARGO ?= cargo
WASM := target-wasm/gatehouse_filter.wasm
BIN := target/release/gatehouse

.PHONY: run test setup build wasm server unit e2e policy-check fuzz bench lint fmt clean

setup:
	@scripts/setup.sh run

build: wasm server

wasm:
	@scripts/build-wasm.sh

server:
	$(CARGO) build --release -p gatehouse

run: setup build
	@scripts/run-local.sh

unit:
	$(CARGO) test --workspace

policy-check: server
	$(BIN) policy check policies/default.yaml policies/examples/*.yaml
	$(BIN) policy test policies/default.yaml policies/examples/*.yaml

e2e: build
	python3 -m pytest -q tests/e2e

# Every parser under libFuzzer for a bounded time (FUZZ_SECONDS per target).
FUZZ_SECONDS ?= 20
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

test:
	@scripts/setup.sh test
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) policy-check
	$(MAKE) e2e
	$(MAKE) fuzz

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	@scripts/setup.sh bench
	$(MAKE) build
	scripts/build-wasm.sh noop-filter
	$(BIN) bench
	scripts/stage-bench.sh
	$(BIN) bench-store
	scripts/bench-postgres.sh
	python3 tests/bench_envoy.py

clean:
	rm -rf target target-wasm .gatehouse fuzz/target
