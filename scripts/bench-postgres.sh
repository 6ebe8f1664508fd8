#!/usr/bin/env bash
# Recording throughput on a scratch PostgreSQL (started here, removed after): records/s and
# acknowledgement latency of `gatehouse bench-store`, the figure beside the SQLite one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(mktemp -d /tmp/gatehouse-bench-pg.XXXXXX)
chmod 755 "$root"
trap 'scripts/pg.sh stop "$root/data" >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
url=$(scripts/pg.sh start "$root/data" 21434)
target/release/gatehouse bench-store --store "$url" "$@"
