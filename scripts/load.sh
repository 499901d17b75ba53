#!/usr/bin/env bash
# Load test of the receivers on loopback, each server pinned to core 0 and
# wrk to core 1. Not part of CI: run it by hand, on a quiet machine.
#
#   scripts/load.sh
#
# Receivers, all with the same limits and handler:
#   layer    examples/hyper.rs (VerifyIntercomWebhookLayer)
#   handler  baseline --verify handler (collect, then verify once)
#   none     baseline --verify none (no verification: the ceiling)
#   express  scripts/peers/express (Node.js, express.raw + createHmac + timingSafeEqual)
# baseline is the test-support crate's binary (test-support/src/bin/baseline.rs):
# the server, limits and handler of examples/hyper.rs without the layer.
#
# For each body size, every receiver is loaded for DURATION seconds, ROUNDS
# times, interleaved (the order rotates each round). Prints the medians and
# the ratios of BENCHMARKS.md, each computed within a round (neighbours in
# time share the machine's conditions) then the median over rounds.
# Settings (environment): DURATION (s, default 5), ROUNDS (8),
# CONNECTIONS (128), SIZES (bytes, "2048 16384"), EXPRESS (1: include the
# Node.js peer when node is installed; 0: skip it).
# Needs: wrk, taskset, python3, cargo; node and npm for the peer.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-8}
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

cargo build --release --quiet --example hyper
cargo build --release --quiet -p tower-intercom-test-support --bin baseline
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
start handler target/release/baseline --verify handler
start none target/release/baseline --verify none
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
  hmac_ns[$size]=$(taskset -c 0 target/release/baseline --time-verify "$work/body-$size.json")
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
hmac = {int(k): float(v) * 1e-3 for k, v in (a.split("=") for a in sys.argv[6:])}  # us
runs = defaultdict(dict)  # (name, size) -> round -> fields
for line in open(path):
    name, size, rnd, *fields = line.split()
    runs[(name, int(size))][int(rnd)] = {k: float(v) for k, v in (f.split("=") for f in fields)}

def per_round(name, size, metric):
    """round -> value; metrics: rps, p50, p99, cpu (us per request), busy (%)."""
    out = {}
    for rnd, r in runs.get((name, size), {}).items():
        derived = {"cpu": r["cpu_us"] / max(r["requests"], 1),
                   "busy": r["cpu_us"] / (float(duration) * 1e4)}
        out[rnd] = derived[metric] if metric in derived else r[metric]
    return out

def med(name, size, metric):
    values = list(per_round(name, size, metric).values())
    return statistics.median(values) if values else None

def ratio(size, f):
    """Median [range] over rounds of f(rps, cpu), the receivers of a round
    having run one after the other under the same conditions."""
    names = ("layer", "handler", "none", "express")
    rps = {n: per_round(n, size, "rps") for n in names}
    cpu = {n: per_round(n, size, "cpu") for n in names}
    values = []
    for rnd in rps["layer"]:
        try:
            values.append(f({n: rps[n][rnd] for n in names if rnd in rps[n]},
                            {n: cpu[n][rnd] for n in names if rnd in cpu[n]}))
        except KeyError:
            pass
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"

bad = [(k, r) for k, rs in runs.items() for r in rs.values() if r["non2xx"] or r["errors"]]
print()
print(f"receivers on core 0, wrk on core 1 ({connections} connections, {duration} s x {rounds} rounds, "
      f"medians); load average after: {load}")
print(f"{'body':>7} {'receiver':>8} {'req/s':>10} {'p50 us':>9} {'p99 us':>9} {'CPU us/req':>11} {'core busy':>10}")
for size in sorted(hmac):
    for name in ("layer", "handler", "none", "express"):
        if (name, size) not in runs:
            continue
        print(f"{size:>7} {name:>8} {med(name, size, 'rps'):>10.0f} {med(name, size, 'p50'):>9.0f}"
              f" {med(name, size, 'p99'):>9.0f} {med(name, size, 'cpu'):>11.1f} {med(name, size, 'busy'):>9.0f}%")
print()
print("Ratios computed within each round (receivers run back to back), then median [range] over rounds;")
print("'capacity' compares CPU time per request, the receiver's own cost, which stays meaningful when")
print("wrk's core rather than the receiver's is what limits req/s.")
for size in sorted(hmac):
    h = hmac[size]
    print(f"{size} bytes (HMAC {h:.1f} us):")
    print(f"  layer/handler      req/s {ratio(size, lambda r, c: r['layer'] / r['handler'])}"
          f"  capacity {ratio(size, lambda r, c: c['handler'] / c['layer'])}  (goal >= 0.97)")
    print(f"  layer/(none+HMAC)  req/s {ratio(size, lambda r, c: r['layer'] * (1 / r['none'] + h * 1e-6))}"
          f"  capacity {ratio(size, lambda r, c: (c['none'] + h) / c['layer'])}  (goal >= 0.90)")
    print(f"  layer/none         req/s {ratio(size, lambda r, c: r['layer'] / r['none'])}"
          f"  capacity {ratio(size, lambda r, c: c['none'] / c['layer'])}")
    if ("express", size) in runs:
        print(f"  layer/express      req/s {ratio(size, lambda r, c: r['layer'] / r['express'])}"
              f"  capacity {ratio(size, lambda r, c: c['express'] / c['layer'])}  (goal >= 10)")
if bad:
    print(f"WARNING: {len(bad)} runs had non-2xx answers or socket errors: {bad[:3]}")
    sys.exit(1)
EOF
