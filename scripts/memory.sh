#!/usr/bin/env bash
# Memory under a flood, on loopback. Not part of CI: run it by hand.
#
#   scripts/memory.sh
#
# Starts two receivers and floods each with scripts/flood.py (1,000
# concurrent requests announcing a Content-Length of 1 GiB, then 1,000
# concurrent chunked bodies that trickle and never end), while valid signed
# notifications keep being sent; prints resident memory and the answers.
#
#   layer alone     baseline --verify layer, no concurrency limit
#                   and no timeout: only VerifyIntercomWebhookLayer (1 MiB limit)
#                   bounds memory, so it follows the bytes received.
#   hyper example   examples/hyper.rs as shipped: 1 MiB limit, 256 webhooks in
#                   flight (429 beyond), 5 s per webhook (408 beyond).
#   by hand         baseline --verify handler, no concurrency limit
#                   and no timeout: the body collected with http_body_util's
#                   Limited (1 MiB), then verify; what the layer replaces.
#   inbox           inbox_receiver --mode sqlite: the layer (1 MiB limit, no
#                   concurrency limit, no timeout) in front of the SQLite
#                   inbox's receiver (bounded write queue, 429 when full);
#                   the valid requests are committed (or found duplicate).
#
# baseline and inbox_receiver are the test-support crate's binaries
# (test-support/src/bin/).
#
# Settings (environment): CONNECTIONS (1000), TRICKLE_SECONDS (6).
# Needs: python3, cargo. Bounded: about two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${CONNECTIONS:-1000}
TRICKLE_SECONDS=${TRICKLE_SECONDS:-6}

cargo build --release --quiet --example hyper
cargo build --release --quiet -p tower-intercom-test-support --bin baseline
cargo build --release --quiet -p tower-intercom-test-support --features inbox-sqlite --bin inbox_receiver
# Room for the flood's sockets on both ends.
ulimit -n "$(( CONNECTIONS * 4 + 1024 ))" 2>/dev/null || true

export INTERCOM_WEBHOOK_SECRET="memory-test-client-secret"
export RUST_LOG=error
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

flood() { # flood LABEL COMMAND...
  local label=$1; shift
  local port; port=$(free_port)
  PORT=$port "$@" >"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
    sleep 0.1
  done
  echo "$label:"
  timeout 120 python3 scripts/flood.py "$port" "$pid" --connections "$CONNECTIONS" \
    --trickle-seconds "$TRICKLE_SECONDS"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
}

echo "memory under a flood of $CONNECTIONS concurrent connections; load average $(cut -d' ' -f1-3 /proc/loadavg)"
flood "layer alone (1 MiB limit, no concurrency limit, no timeout)" \
  target/release/baseline --verify layer --max-in-flight 0 --timeout-secs 0
flood "examples/hyper.rs (1 MiB limit, 256 in flight, 5 s timeout)" \
  target/release/examples/hyper
flood "by hand: Limited::collect then verify (1 MiB limit, no concurrency limit, no timeout)" \
  target/release/baseline --verify handler --max-in-flight 0 --timeout-secs 0
mkdir -p "$work/inbox"
flood "inbox: layer + SQLite inbox receiver (1 MiB limit, no concurrency limit, no timeout)" \
  target/release/inbox_receiver --mode sqlite --dir "$work/inbox"
