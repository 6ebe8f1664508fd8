#!/usr/bin/env bash
# Start the local stack in the foreground: demo upstream (unless GATEHOUSE_UPSTREAM is set),
# the Gatehouse server, and Envoy with the filter on 127.0.0.1:10000. Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/gatehouse
dir=.gatehouse
upstream=${GATEHOUSE_UPSTREAM:-}
pids=()
cleanup() { trap - INT TERM EXIT; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup INT TERM EXIT

if [ -z "$upstream" ]; then
  $bin demo-upstream --listen 127.0.0.1:18080 & pids+=($!)
  upstream_hostport=127.0.0.1:18080
else
  upstream_hostport=${upstream#http://}; upstream_hostport=${upstream_hostport%%/*}
fi
$bin dev init --bundle "${GATEHOUSE_BUNDLE:-policies/default.yaml}" --dir $dir --upstream "$upstream_hostport"
$bin serve --bundle $dir/bundle.yaml --handoff-key-file $dir/handoff.key --mask-key-file $dir/mask.key \
  --store $dir/store --grpc 127.0.0.1:18081 --http 127.0.0.1:18082 & pids+=($!)
GATEHOUSE_HANDOFF_KEY=$(cat $dir/handoff.key) envoy -c $dir/envoy.yaml --log-level warn --concurrency "${GATEHOUSE_ENVOY_WORKERS:-2}" & pids+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null http://127.0.0.1:9901/ready && break; sleep 0.1
done
cat <<MSG

Gatehouse is listening on http://127.0.0.1:10000 (upstream: $upstream_hostport)
  TOKEN=\$($bin token --sub alice --group eng)
  curl -s http://127.0.0.1:10000/v1/chat/completions -H "authorization: Bearer \$TOKEN" \\
    -H 'content-type: application/json' \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
Session log: $bin sessions list   (verify the chain: $bin sessions verify)
  over HTTP, for auditors: curl -s http://127.0.0.1:18082/v1/sessions \\
    -H "authorization: Bearer \$($bin token --sub audrey --group auditors)"
Ctrl-C stops everything.
MSG
wait -n "${pids[@]}"
