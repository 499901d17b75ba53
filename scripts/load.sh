#!/usr/bin/env bash
# Load test of the receivers on loopback, each server pinned to core 0 and
# wrk to core 1. Not part of CI: run it by hand, on a quiet machine.
#
#   scripts/load.sh
#
# Receivers, all with the same limits and handler:
#   layer    examples/hyper.rs (VerifyIntercomWebhookLayer)
#   handler  examples/baseline.rs --verify handler (collect, then verify once)
#   none     examples/baseline.rs --verify none (no verification: the ceiling)
#   express  scripts/peers/express (Node.js, express.raw + createHmac + timingSafeEqual)
#
# For each body size, every receiver is loaded for DURATION seconds, ROUNDS
# times, interleaved; the medians are printed with the ratios the issue
# asks for. Settings (environment): DURATION (s, default 10), ROUNDS (3),
# CONNECTIONS (128), SIZES (bytes, "2048 16384"), EXPRESS (1: include the
# Node.js peer when node is installed; 0: skip it).
# Needs: wrk, taskset, python3, cargo; node and npm for the peer.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-128}
SIZES=${SIZES:-"2048 16384"}
EXPRESS=${EXPRESS:-1}

for tool in wrk taskset python3 cargo; do
  command -v "$tool" >/dev/null || { echo "load.sh needs $tool (Debian: apt-get install wrk util-linux python3)" >&2; exit 1; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "load.sh needs 2 cores: one for the server, one for wrk" >&2
  exit 1
fi
if [ "$EXPRESS" = 1 ] && ! command -v node >/dev/null; then
  echo "node not found: skipping the Express peer" >&2
  EXPRESS=0
fi

cargo build --release --quiet --example hyper --example baseline
if [ "$EXPRESS" = 1 ]; then
  (cd scripts/peers/express && npm ci --silent --no-audit --no-fund >/dev/null)
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export INTERCOM_WEBHOOK_SECRET="load-test-client-secret"
export RUST_LOG=warn

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME COMMAND...: starts a receiver on core 0 and waits until it answers.
declare -A port_of pid_of
start() {
  local name=$1; shift
  local port; port=$(free_port)
  PORT=$port taskset -c 0 "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
  port_of[$name]=$port
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
    sleep 0.1
  done
  echo "$name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}

start layer target/release/examples/hyper
start handler target/release/examples/baseline --verify handler
start none target/release/examples/baseline --verify none
receivers="layer handler none"
if [ "$EXPRESS" = 1 ]; then
  start express node scripts/peers/express/server.js
  receivers="$receivers express"
fi

declare -A signature_of
for size in $SIZES; do
  signature_of[$size]=$(python3 scripts/notification.py "$size" "$work/body-$size.json")
done

# Every receiver answers the signed body with 200 and a tampered signature
# with 401 (except the ceiling, which checks nothing).
for name in $receivers; do
  for size in $SIZES; do
    url="http://127.0.0.1:${port_of[$name]}/webhooks/intercom"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'content-type: application/json' \
      -H "x-hub-signature: ${signature_of[$size]}" --data-binary "@$work/body-$size.json")
    [ "$code" = 200 ] || { echo "$name answered $code to a signed $size-byte body" >&2; exit 1; }
    if [ "$name" != none ]; then
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url" -H 'content-type: application/json' \
        -H "x-hub-signature: sha1=0000000000000000000000000000000000000000" --data-binary "@$work/body-$size.json")
      [ "$code" = 401 ] || { echo "$name answered $code to a forged signature" >&2; exit 1; }
    fi
  done
done

# The HMAC time on the server's core, for the ceiling + HMAC estimate.
declare -A hmac_ns
for size in $SIZES; do
  hmac_ns[$size]=$(taskset -c 0 target/release/examples/baseline --time-verify "$work/body-$size.json")
done

results="$work/results"
: >"$results"
# CPU time a receiver has used so far, in ns: the sum over its threads
# of the scheduler's own account (exact, unlike the clock ticks of /proc/PID/stat).
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat | awk '{ sum += $1 } END { printf "%.0f", sum }'
}

run() { # run NAME SIZE SECONDS ROUND
  local name=$1 size=$2 seconds=$3 round=$4
  local line before after
  before=$(cpu_ns "${pid_of[$name]}")
  line=$(BODY_FILE="$work/body-$size.json" SIGNATURE="${signature_of[$size]}" \
    timeout $((seconds + 30)) taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${seconds}s" --timeout 10s --latency \
      -s scripts/wrk-post.lua "http://127.0.0.1:${port_of[$name]}/webhooks/intercom" | grep '^RESULT') \
    || { echo "wrk failed against $name" >&2; exit 1; }
  after=$(cpu_ns "${pid_of[$name]}")
  [ "$round" = warmup ] || echo "$name $size $round ${line#RESULT } cpu_us=$(( (after - before) / 1000 ))" >>"$results"
}

echo "load: ${DURATION}s x ${ROUNDS} rounds, $CONNECTIONS connections, sizes $SIZES; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for name in $receivers; do
  for size in $SIZES; do run "$name" "$size" 2 warmup; done
done
set -- $receivers
for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    # Rotate the order each round so no receiver always runs first.
    order=("$@")
    for i in $(seq 0 $(($# - 1))); do
      name=${order[$(((i + round) % $#))]}
      echo "round $round/$ROUNDS: $name, $size bytes" >&2
      run "$name" "$size" "$DURATION" "$round"
    done
  done
done

hmac_args=()
for size in $SIZES; do hmac_args+=("$size=${hmac_ns[$size]}"); done
python3 - "$results" "$(cut -d' ' -f1-3 /proc/loadavg)" "$CONNECTIONS" "$DURATION" "$ROUNDS" "${hmac_args[@]}" <<'EOF'
import statistics, sys
from collections import defaultdict

path, load, connections, duration, rounds = sys.argv[1:6]
hmac = {int(k): float(v) for k, v in (a.split("=") for a in sys.argv[6:])}
rows = defaultdict(list)
for line in open(path):
    name, size, _round, *fields = line.split()
    rows[(name, int(size))].append(dict(f.split("=") for f in fields))

def med(name, size, key):
    values = [float(r[key]) for r in rows.get((name, size), [])]
    return statistics.median(values) if values else None

def cpu(name, size):
    """Median CPU time of the receiver per request (all its threads, user and
    kernel), in microseconds."""
    values = [float(r["cpu_us"]) / float(r["requests"]) for r in rows.get((name, size), [])]
    return statistics.median(values) if values else None

bad = [(k, r) for k, rs in rows.items() for r in rs if r["non2xx"] != "0" or r["errors"] != "0"]
print()
print(f"receivers on core 0, wrk on core 1 ({connections} connections, {duration} s x {rounds} rounds, medians); "
      f"load average after: {load}")
def busy(name, size):
    """Median share of its core the receiver used while loaded, in %."""
    return statistics.median(float(r["cpu_us"]) / (float(duration) * 1e4) for r in rows[(name, size)])

print(f"{'body':>7} {'receiver':>8} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'CPU us/req':>11} {'core busy':>10}")
for size in sorted(hmac):
    for name in ("layer", "handler", "none", "express"):
        rps = med(name, size, "rps")
        if rps is None:
            continue
        print(f"{size:>7} {name:>8} {rps:>10.0f} {med(name, size, 'p50'):>9.0f} {med(name, size, 'p99'):>9.0f}"
              f" {cpu(name, size):>11.1f} {busy(name, size):>9.0f}%")
print()
print("Ratios of requests/s, then of requests per CPU second (1 / CPU us/req: the receiver's own cost,")
print("which stays meaningful when wrk's core, not the receiver's, is what limits requests/s):")
for size in sorted(hmac):
    for label, value in (("req/s", lambda n: med(n, size, "rps")), ("CPU", lambda n: 1 / cpu(n, size))):
        layer, handler, none = (value(n) for n in ("layer", "handler", "none"))
        allowed = 1 / (1 / none + hmac[size] * 1e-9 * (1e6 if label == "CPU" else 1))
        print(f"{size} bytes, {label:>5}: HMAC {hmac[size] / 1000:.1f} us; "
              f"layer/handler {layer / handler:.3f} (goal >= 0.97); layer/none {layer / none:.3f}; "
              f"layer/(none + HMAC) {layer / allowed:.3f} (goal >= 0.90)", end="")
        if ("express", size) in rows:
            print(f"; layer/express {layer / value('express'):.1f}x (goal >= 10)")
        else:
            print()
if bad:
    print(f"WARNING: {len(bad)} runs had non-2xx answers or socket errors: {bad[:3]}")
    sys.exit(1)
EOF
