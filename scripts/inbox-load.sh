#!/usr/bin/env bash
# Load test of the durable inbox on loopback: the receiver pinned to core 0,
# the load generator to core 1. Not part of CI: run it by hand, on a quiet
# machine; it prints its figures and asserts no timing.
#
#   scripts/inbox-load.sh
#
# Contenders, each run ROUNDS times, interleaved (the order rotates each
# round), a fresh receiver and a fresh temporary directory every run:
#   layer    inbox_receiver --mode layer: VerifyIntercomWebhookLayer in front
#            of an empty 200, no inbox (the ceiling of the two below)
#   sqlite   inbox_receiver --mode sqlite: the layer in front of the SQLite
#            inbox's receiver (WAL, synchronous=FULL, group commit), no
#            workers: each 200 waits for a synced commit
#   redis    inbox_receiver --mode redis: the layer in front of the Redis
#            inbox's receiver, no workers; redis-server (--appendonly yes
#            --appendfsync everysec, its own temporary directory and port)
#            pinned to core REDIS_CORE (default 1, with the load generator:
#            the receiver keeps its core to itself; 0 puts it with the
#            receiver), its CPU time counted with the receiver's
#   postgres inbox_receiver --mode postgres: the layer in front of the
#            Postgres inbox's receiver (the store's default settings: a
#            pool of 16, group commit), no workers: each 200 waits for a
#            commit flushed to the write-ahead log. Its own server each run
#            (the newest `postgres` on PATH or in /usr/lib/postgresql/*/bin;
#            as the `postgres` user when the script runs as root): initdb
#            into the run's temporary directory (-E UTF8 --locale=C
#            --auth=trust, and initdb's own final sync, so that its files
#            are on disk before the run and not written back during it),
#            then postgres with the defaults of its version except
#            listen_addresses=127.0.0.1, a free port, its Unix socket in
#            that directory (-k), and, stated though they are the
#            defaults, fsync=on and synchronous_commit=on (the store also
#            sends synchronous_commit=on, and the receiver refuses a server
#            that can lose acknowledged commits); so full_page_writes=on,
#            wal_sync_method fdatasync (Linux), shared_buffers 128MB,
#            max_wal_size 1GB, checkpoint_timeout 5min, max_connections
#            100. The settings the server ran with are printed with the
#            figures. Pinned to POSTGRES_CORE (default 1, with the load
#            generator, as redis-server), every process of it counted with
#            the receiver's CPU time (its backends' that ended included);
#            stopped at once (immediate shutdown) after each run, its
#            directory removed
#   M@R      mode M in open loop: R requests per second offered whatever
#            the answers (SQLITE_RATE, REDIS_RATE: the goals;
#            POSTGRES_RATE), latencies
#            measured from when each request was due, OPEN_CONNECTIONS
#            connections
#            Each open-loop run also counts its 100 ms windows (by when
#            each request was due) whose own p99 was over 10 ms: a tail
#            made of a few stalls shows as a few windows, one spread over
#            the run as many. layer@R gives the machine's own tail at that
#            rate, with no inbox
#   M@R+w    the same with a worker (no-op handler, WORKER_CONCURRENCY at
#            a time) in the receiver's process, on its core: processed/s
#            and the backlog left at the end say whether workers keep up
#   sqlite-drain-C, redis-drain-C, postgres-drain-C
#            inbox_receiver --drain PREFILL --concurrency C: PREFILL
#            notifications stored, then a worker with a no-op handler and C
#            at a time drains them (no HTTP), on core 0; redis-server and
#            Postgres as for their modes
#
# The load generator (inbox_load) sends for DURATION seconds after a 1 s
# warmup, each request a SIZE-byte notification with its own id, signed
# before the clock starts; it records every latency. Closed loop (M alone):
# CONNECTIONS keep-alive connections each send as soon as answered, which
# finds the capacity, and its latencies include the queue of CONNECTIONS
# requests. Both binaries are in the test-support crate
# (test-support/src/bin/). After each run without workers the script
# checks that the inbox holds exactly the notifications acknowledged (by
# the receiver's counts; for Postgres also by counting the table's rows
# with psql, in every run, workers or not). It
# prints the disk's fsync rate before and after the runs: SQLite's figures
# follow it.
#
# Settings (environment): DURATION (s, default 10), ROUNDS (3),
# CONNECTIONS (128), OPEN_CONNECTIONS (512), SIZE (bytes, 2048), PREFILL
# (50000), WORKERS (drain concurrencies, "16 64", for each store; empty for
# none), WORKER_CONCURRENCY
# (64), SQLITE_RATE (10000), REDIS_RATE (20000), POSTGRES_RATE (5000),
# REDIS_CORE (1), POSTGRES_CORE (1), REDIS_ARGS
# (more redis-server options, e.g. "--auto-aof-rewrite-percentage 0" to
# see the runs without the append-only file's rewrites), POSTGRES_ARGS
# (more postgres options, e.g. "-c wal_compression=on"), RECEIVER_ARGS
# (more inbox_receiver flags for the inbox modes, e.g.
# "--checkpoint-interval 100" for sqlite), MODES
# ("layer sqlite redis postgres"; without redis or postgres when its
# server is not installed), OPEN ("sqlite@SQLITE_RATE redis@REDIS_RATE
# postgres@POSTGRES_RATE", each also with
# +w, and layer@REDIS_RATE; empty for none), TIMELINES (a directory: each
# open-loop run's latencies by 100 ms window are kept there as
# NAME-ROUND.txt, see inbox_load's --timeline).
# Needs: taskset, python3, curl, cargo; redis-server for the redis mode;
# for the postgres mode initdb, postgres, pg_isready and psql, pgrep, and
# (as root) runuser and a `postgres` user.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-128}
SIZE=${SIZE:-2048}
PREFILL=${PREFILL:-50000}
WORKERS=${WORKERS-"16 64"}
OPEN_CONNECTIONS=${OPEN_CONNECTIONS:-512}
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-64}
SQLITE_RATE=${SQLITE_RATE:-10000}
REDIS_RATE=${REDIS_RATE:-20000}
POSTGRES_RATE=${POSTGRES_RATE:-5000}
REDIS_CORE=${REDIS_CORE:-1}
POSTGRES_CORE=${POSTGRES_CORE:-1}
REDIS_ARGS=${REDIS_ARGS:-}
POSTGRES_ARGS=${POSTGRES_ARGS:-}
RECEIVER_ARGS=${RECEIVER_ARGS:-}
# The directory of Postgres's server binaries: where `postgres` on PATH
# really is, or else the newest /usr/lib/postgresql/*/bin; empty when
# there is none.
postgres_bin_dir() {
  local dir
  if dir=$(command -v postgres 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$dir")")
    [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && { echo "$dir"; return; }
  done
}
pg_bin=$(postgres_bin_dir)
if [ -z "${MODES:-}" ]; then
  MODES="layer sqlite"
  if command -v redis-server >/dev/null; then MODES="$MODES redis"
  else echo "redis-server not found: no redis mode" >&2; fi
  if [ -n "$pg_bin" ]; then MODES="$MODES postgres"
  else echo "postgres not found (PATH, /usr/lib/postgresql/*/bin): no postgres mode" >&2; fi
fi
if [ -z "${OPEN+set}" ]; then
  OPEN=""
  for mode in $MODES; do
    case $mode in
      layer) OPEN="$OPEN layer@$REDIS_RATE" ;;
      sqlite) OPEN="$OPEN sqlite@$SQLITE_RATE sqlite@$SQLITE_RATE+w" ;;
      redis) OPEN="$OPEN redis@$REDIS_RATE redis@$REDIS_RATE+w" ;;
      postgres) OPEN="$OPEN postgres@$POSTGRES_RATE postgres@$POSTGRES_RATE+w" ;;
    esac
  done
fi

for tool in taskset python3 curl cargo; do
  command -v "$tool" >/dev/null || { echo "inbox-load.sh needs $tool" >&2; exit 1; }
done
as_root=
[ "$(id -u)" = 0 ] && as_root=1
if [[ " $MODES $OPEN " == *" postgres"* ]]; then
  [ -n "$pg_bin" ] || { echo "the postgres mode needs Postgres's server binaries (initdb, postgres)" >&2; exit 1; }
  for tool in "$pg_bin/pg_isready" "$pg_bin/psql" pgrep; do
    command -v "$tool" >/dev/null || { echo "the postgres mode needs $tool" >&2; exit 1; }
  done
  if [ -n "$as_root" ]; then
    command -v runuser >/dev/null && id postgres >/dev/null 2>&1 \
      || { echo "Postgres refuses to run as root: the postgres mode needs runuser and a postgres user" >&2; exit 1; }
  fi
fi
if [ "$(nproc)" -lt 2 ]; then
  echo "inbox-load.sh needs 2 cores: one for the receiver, one for the load generator" >&2
  exit 1
fi

cargo build --release --quiet -p tower-intercom-test-support --features inbox-redis,inbox-postgres \
  --bin inbox_receiver --bin inbox_load
target=${CARGO_TARGET_DIR:-target}
receiver_bin=$target/release/inbox_receiver
load_bin=$target/release/inbox_load

work=$(mktemp -d)
# Postgres, run as the postgres user, reaches its directory inside.
[ -z "$as_root" ] || chmod 711 "$work"
pid=
redis_pid=
postgres_pid=
postgres_runner=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

export INTERCOM_WEBHOOK_SECRET="inbox-load-test-client-secret"
export RUST_LOG=warn

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat | awk '{ sum += $1 } END { printf "%.0f", sum }'
}
# CPU time of Postgres, in ns: the postmaster's and its live children's
# (backends, checkpointer, WAL writer, ...), and, in clock ticks, that of
# its children that ended (the postmaster's cutime and cstime).
postgres_cpu_ns() {
  local live ended
  live=$(for p in "$postgres_pid" $(pgrep -P "$postgres_pid"); do
    cat /proc/"$p"/task/*/schedstat 2>/dev/null
  done | awk '{ sum += $1 } END { printf "%.0f", sum }')
  ended=$(sed 's/.*) //' /proc/"$postgres_pid"/stat \
    | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f", ($14 + $15) * 1e9 / hz }')
  echo $((live + ended))
}

# start MODE DIR [RECEIVER FLAGS]: a receiver on core 0 (and, for redis, a
# redis-server on REDIS_CORE with its data in DIR; for postgres, a server
# on POSTGRES_CORE in DIR/postgres); sets pid and port once it answers.
# start_redis DIR: a redis-server on REDIS_CORE with its data in DIR; sets
# redis_pid and redis_url once it answers.
start_redis() {
  local redis_port; redis_port=$(free_port)
  taskset -c "$REDIS_CORE" redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$1" --save "" \
    --appendonly yes --appendfsync everysec $REDIS_ARGS >"$work/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 1 100); do
    if python3 -c 'import socket,sys; s=socket.create_connection(("127.0.0.1",int(sys.argv[1]))); s.sendall(b"PING\r\n"); sys.exit(0 if s.recv(7)==b"+PONG\r\n" else 1)' \
      "$redis_port" 2>/dev/null; then break; fi
    sleep 0.1
  done
  redis_url=redis://127.0.0.1:$redis_port/
}
# What runs Postgres's binaries: as the postgres user when the script
# runs as root (Postgres refuses to run as root).
as_postgres=()
[ -z "$as_root" ] || as_postgres=(runuser -u postgres --)
# start_postgres DIR: a Postgres server of its own in DIR/postgres, on
# POSTGRES_CORE; sets postgres_pid (the postmaster), postgres_socket and
# postgres_url once it accepts connections.
start_postgres() {
  local dir=$1/postgres
  mkdir -p "$dir"
  [ -z "$as_root" ] || chown postgres: "$dir"
  "${as_postgres[@]}" "$pg_bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --auth=trust >"$work/initdb.log" 2>&1 \
    || { echo "initdb failed:" >&2; cat "$work/initdb.log" >&2; exit 1; }
  postgres_port=$(free_port)
  postgres_socket=$dir
  # shellcheck disable=SC2086
  taskset -c "$POSTGRES_CORE" "${as_postgres[@]}" "$pg_bin/postgres" -D "$dir/data" -p "$postgres_port" -k "$dir" -c listen_addresses=127.0.0.1 \
    -c fsync=on -c synchronous_commit=on $POSTGRES_ARGS >"$work/postgres.log" 2>&1 &
  postgres_runner=$!
  for _ in $(seq 1 300); do
    if "$pg_bin/pg_isready" -q -h "$dir" -p "$postgres_port"; then
      postgres_pid=$(head -n 1 "$dir/data/postmaster.pid")
      postgres_url=postgres://postgres@127.0.0.1:$postgres_port/postgres
      return 0
    fi
    kill -0 "$postgres_runner" 2>/dev/null || break
    sleep 0.1
  done
  echo "postgres did not start:" >&2; cat "$work/postgres.log" >&2; exit 1
}
# psql_run SQL: SQL as the superuser over the Unix socket; prints the rows.
psql_run() {
  "$pg_bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$postgres_socket" -p "$postgres_port" \
    -U postgres -d postgres -c "$1"
}
# An immediate shutdown: no checkpoint to write, the directory goes next.
stop_postgres() {
  if [ -n "$postgres_pid" ]; then kill -QUIT "$postgres_pid" 2>/dev/null || true; postgres_pid=; fi
  if [ -n "$postgres_runner" ]; then wait "$postgres_runner" 2>/dev/null || true; postgres_runner=; fi
}
start() {
  local mode=$1 dir=$2 url= extra=()
  if [ "$mode" = redis ]; then
    start_redis "$dir"; url=$redis_url
  fi
  if [ "$mode" = postgres ]; then
    start_postgres "$dir"; url=$postgres_url
  fi
  [ "$mode" = layer ] || read -ra extra <<<"$RECEIVER_ARGS"
  port=$(free_port)
  PORT=$port taskset -c 0 "$receiver_bin" --mode "$mode" --dir "$dir" ${url:+--url "$url"} "${extra[@]}" "${@:3}" \
    >"$work/receiver.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/stats"; then return 0; fi
    sleep 0.1
  done
  echo "$mode receiver did not start:" >&2; cat "$work/receiver.log" >&2; exit 1
}
stop() {
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; redis_pid=
  fi
  stop_postgres
}
# CPU time of the store's server (redis-server or Postgres; 0 for none),
# in ns.
server_cpu_ns() {
  if [ -n "$redis_pid" ]; then cpu_ns "$redis_pid"
  elif [ -n "$postgres_pid" ]; then postgres_cpu_ns
  else echo 0; fi
}

# Sanity, once per mode: a signed notification gets 200, a forged one 401,
# and the inbox answers a redelivery as a duplicate.
python3 scripts/notification.py "$SIZE" "$work/body.json" >"$work/signature"
postgres_settings=
for mode in $MODES; do
  mkdir -p "$work/check"; start "$mode" "$work/check"
  if [ "$mode" = postgres ]; then
    # What the server runs with, printed with the figures.
    postgres_settings=$(psql_run "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY ord)
      FROM unnest(ARRAY['server_version', 'fsync', 'synchronous_commit', 'wal_sync_method',
        'full_page_writes', 'wal_level', 'commit_delay', 'shared_buffers', 'wal_buffers',
        'max_wal_size', 'checkpoint_timeout', 'max_connections']) WITH ORDINALITY AS s(name, ord)")
  fi
  url="http://127.0.0.1:$port/webhooks/intercom"
  post() {
    curl -s -D "$work/headers" -o /dev/null -w '%{http_code}' -X POST "$url" \
      -H 'content-type: application/json' -H "x-hub-signature: $1" --data-binary "@$work/body.json"
  }
  code=$(post "$(cat "$work/signature")"); [ "$code" = 200 ] || { echo "$mode answered $code to a signed body" >&2; exit 1; }
  code=$(post "sha1=$(printf '0%.0s' $(seq 40))"); [ "$code" = 401 ] || { echo "$mode answered $code to a forged signature" >&2; exit 1; }
  if [ "$mode" != layer ]; then
    code=$(post "$(cat "$work/signature")")
    [ "$code" = 200 ] && grep -qi '^x-intercom-duplicate: true' "$work/headers" \
      || { echo "$mode did not answer a redelivery as a duplicate" >&2; exit 1; }
  fi
  stop; rm -rf "$work/check"
done

results="$work/results"
: >"$results"

ack() { # ack NAME ROUND, NAME = MODE[@RATE][+w]
  local name=$1 round=$2 dir="$work/run" line stats before after load=() receiver=() windows=
  local mode=${name%%[@+]*} connections=$CONNECTIONS
  if [[ $name == *@* ]]; then
    local rate=${name#*@}; rate=${rate%+w}
    load=(--rate "$rate" --timeline "$work/timeline"); connections=$OPEN_CONNECTIONS
  fi
  [[ $name == *+w ]] && receiver=(--workers "$WORKER_CONCURRENCY")
  mkdir -p "$dir"; start "$mode" "$dir" "${receiver[@]}"
  [ "$mode" = layer ] && load+=(--repeat --pool 20000)
  before=$(cpu_ns "$pid"); server_before=$(server_cpu_ns)
  line=$(timeout $((DURATION + 120)) taskset -c 1 "$load_bin" --url "http://127.0.0.1:$port/webhooks/intercom" \
    --connections "$connections" --duration "$DURATION" --size "$SIZE" "${load[@]}" | grep '^RESULT') \
    || { echo "the load generator failed against $name" >&2; exit 1; }
  after=$(cpu_ns "$pid"); server_after=$(server_cpu_ns)
  local rewrites=
  if [ -n "$redis_pid" ] && command -v redis-cli >/dev/null; then
    rewrites=$(redis-cli -u "$redis_url" INFO persistence | tr -d '\r' \
      | sed -n 's/^\(aof_rewrites\|aof_delayed_fsync\):/\1=/p' | tr '\n' ' ')
  fi
  if [[ $name == *@* ]]; then
    windows="slow_windows=$(awk '$4 > 10000' "$work/timeline" | wc -l) windows=$(wc -l <"$work/timeline")"
    [ -z "${TIMELINES:-}" ] || { mkdir -p "$TIMELINES"; cp "$work/timeline" "$TIMELINES/$name-$round.txt"; }
  fi
  stats=$(curl -s "http://127.0.0.1:$port/stats")
  # Postgres: the rows in the table, as another client reads them.
  local stored=
  [ -z "$postgres_pid" ] || stored="stored=$(psql_run 'SELECT count(*) FROM tower_intercom.inbox')"
  stop; rm -rf "$dir"
  local server_cpu=$((server_after - server_before))
  echo "$name $round ${line#RESULT } cpu_us=$(( (after - before + server_cpu) / 1000 ))" \
    "server_cpu_us=$((server_cpu / 1000)) $rewrites $stored $windows ${stats/-/}" | tee -a "$results" >&2
}

drain() { # drain MODE CONCURRENCY ROUND
  local mode=$1 c=$2 round=$3 dir="$work/run" line store=()
  mkdir -p "$dir"
  if [ "$mode" = redis ]; then start_redis "$dir"; store=(--mode redis --url "$redis_url"); fi
  if [ "$mode" = postgres ]; then start_postgres "$dir"; store=(--mode postgres --url "$postgres_url"); fi
  line=$(timeout 900 taskset -c 0 "$receiver_bin" --drain "$PREFILL" --concurrency "$c" --dir "$dir" --size "$SIZE" \
    "${store[@]}" | grep '^RESULT') || { echo "the $mode drain with concurrency $c failed" >&2; exit 1; }
  stop; rm -rf "$dir"
  echo "$mode-drain-$c $round ${line#RESULT }" | tee -a "$results" >&2
}

contenders=($MODES $OPEN)
for mode in $MODES; do
  [ "$mode" = layer ] && continue
  for c in $WORKERS; do contenders+=("$mode-drain-$c"); done
done
# The disk's fsync rate, which bounds SQLite's commits (and so its latency
# under load): 4 KiB written and synced in a loop for 2 s, in the directory
# the runs use. It varies from session to session on a shared machine.
fsync_rate() {
  python3 - "$work" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-rate")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
n, start = 0, time.monotonic()
while time.monotonic() - start < 2:
    os.write(fd, b"x" * 4096)
    os.fsync(fd)
    n += 1
print(f"{n / (time.monotonic() - start):.0f}")
os.close(fd)
os.unlink(path)
PY
}
fsyncs_before=$(fsync_rate)

echo "inbox load: ${DURATION}s x ${ROUNDS} rounds, $CONNECTIONS connections ($OPEN_CONNECTIONS open loop)," \
  "$SIZE-byte notifications, redis-server on core $REDIS_CORE, Postgres on core $POSTGRES_CORE," \
  "drain of $PREFILL; load average before: $(cut -d' ' -f1-3 /proc/loadavg); fsyncs/s: $fsyncs_before" >&2
[ -z "$postgres_settings" ] || echo "postgres: $postgres_settings" >&2
for round in $(seq 1 "$ROUNDS"); do
  n=${#contenders[@]}
  for i in $(seq 0 $((n - 1))); do
    name=${contenders[$(((i + round) % n))]}
    echo "round $round/$ROUNDS: $name" >&2
    case $name in
      *-drain-*) drain "${name%%-drain-*}" "${name##*-drain-}" "$round" ;;
      *) ack "$name" "$round" ;;
    esac
  done
done

fsyncs_after=$(fsync_rate)

python3 - "$results" "$(cut -d' ' -f1-3 /proc/loadavg)" "$CONNECTIONS" "$DURATION" "$ROUNDS" "$PREFILL" \
  "$OPEN_CONNECTIONS" "$WORKER_CONCURRENCY" "$REDIS_CORE" "$SQLITE_RATE" "$REDIS_RATE" \
  "$fsyncs_before" "$fsyncs_after" "$POSTGRES_CORE" "$POSTGRES_RATE" "$postgres_settings" <<'EOF'
import statistics, sys
from collections import defaultdict

(path, load, connections, duration, rounds, prefill, open_connections, worker_concurrency,
 redis_core, sqlite_rate, redis_rate, fsyncs_before, fsyncs_after, postgres_core, postgres_rate,
 postgres_settings) = sys.argv[1:17]
duration = float(duration)
runs = defaultdict(dict)  # name -> round -> fields
for line in open(path):
    name, rnd, *fields = line.split()
    r = {}
    for f in fields:
        k, _, v = f.partition("=")
        try:
            r[k] = float(v)
        except ValueError:
            r[k] = v
    runs[name][int(rnd)] = r

def med(name, key):
    v = [r[key] for r in runs[name].values() if key in r]
    return statistics.median(v) if v else None

def spread(values):
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]" if values else "-"

def per_round(f):
    """f(round's runs by name) for each round where it is defined."""
    out = []
    for rnd in sorted({rnd for rs in runs.values() for rnd in rs}):
        try:
            out.append(f({n: rs[rnd] for n, rs in runs.items() if rnd in rs}))
        except KeyError:
            pass
    return out

problems = []
print()
print(f"receiver on core 0, load generator on core 1, redis-server on core {redis_core}, "
      f"Postgres on core {postgres_core}; "
      f"{duration:.0f} s x {rounds} rounds, medians [range]; load average after: {load}")
if postgres_settings:
    print(f"Postgres: {postgres_settings}")
print(f"the disk's fsyncs/s (4 KiB, 2 s): {fsyncs_before} before the runs, {fsyncs_after} after")
print(f"closed loop: {connections} connections; open loop (M@rate): {open_connections} connections, "
      f"latency from when each request was due; +w: no-op worker, concurrency {worker_concurrency}, "
      f"in the receiver's process")
print("CPU us/ack: the receiver's and its store server's CPU time per acknowledged notification,")
print("the server's share in brackets (redis-server: its main process, not the children that")
print("rewrite its append-only file; Postgres: all its processes);")
print("busy: each core's busy share over the measured window (core 0, core 1), and the load")
print("generator's own share of core 1; rewrites: append-only file rewrites during the run, and")
print("in brackets the times Redis held its writes because a background sync was 2 s late;")
print("slow: open loop, the 100 ms windows (by when each request was due) whose own p99 was")
print("over 10 ms, of all windows")
print(f"{'receiver':>17} {'acked/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'CPU us/ack':>14} "
      f"{'non-200':>8} {'processed/s':>11} {'backlog':>8} {'busy':>9} {'load':>5} {'rewrites':>9} {'slow':>7}")
acks = [n for n in runs if "-drain-" not in n]
order = {"layer": 0, "sqlite": 1, "redis": 2, "postgres": 3}
acks.sort(key=lambda n: (order.get(n.split("@")[0], 9), len(n), n))
for name in acks:
    rs = list(runs[name].values())
    workers = name.endswith("+w")
    for r in rs:
        if r["errors"] or r["non2xx"] or r["exhausted"]:
            problems.append(f"{name}: errors={r['errors']:.0f} non2xx={r['non2xx']:.0f} "
                            f"exhausted={r['exhausted']:.0f} statuses={r['statuses']}")
        if "stored" in r and r["stored"] != r["all_ok"]:
            problems.append(f"{name}: {r['stored']:.0f} rows in Postgres but {r['all_ok']:.0f} acknowledged")
        if not workers and "pending" in r and r["pending"] != r["all_ok"]:
            problems.append(f"{name}: {r['pending']:.0f} stored but {r['all_ok']:.0f} acknowledged")
        if workers and "done" in r and r["done"] + r["pending"] + r["in_progress"] != r["all_ok"]:
            problems.append(f"{name}: {r['done'] + r['pending'] + r['in_progress']:.0f} stored but "
                            f"{r['all_ok']:.0f} acknowledged")
    cpu = statistics.median(r["cpu_us"] / max(r["all_ok"], 1) for r in rs)
    server_cpu = statistics.median(r.get("server_cpu_us", 0) / max(r["all_ok"], 1) for r in rs)
    cpu = f"{cpu:.1f}" + (f" [{server_cpu:.1f}]" if server_cpu else "")
    # The round of the median p99: its cores, as one picture.
    typical = sorted(rs, key=lambda r: r["p99"])[len(rs) // 2]
    busy = str(typical.get("busy", "-")).replace(",", "/")
    load_cpu = typical.get("load_cpu", "-")
    load_cpu = f"{load_cpu:.2f}" if isinstance(load_cpu, float) else load_cpu
    rewrites = "-" if "aof_rewrites" not in typical else f"{typical['aof_rewrites']:.0f}"
    if "aof_delayed_fsync" in typical:
        rewrites += f" [{typical['aof_delayed_fsync']:.0f}]"
    slow = "-"
    if "windows" in typical:
        slow = f"{typical['slow_windows']:.0f}/{typical['windows']:.0f}"
    processed = backlog = "-"
    if workers and "done" in rs[0]:
        processed = f"{statistics.median(r['done'] / (duration + 1) for r in rs):.0f}"
        backlog = f"{statistics.median(r['pending'] + r['in_progress'] for r in rs):.0f}"
    print(f"{name:>17} {med(name, 'rps'):>9.0f} {med(name, 'p50') / 1e3:>7.2f} {med(name, 'p99') / 1e3:>7.2f}"
          f" {med(name, 'max') / 1e3:>7.1f} {cpu:>14} {sum(r['non2xx'] for r in rs):>8.0f}"
          f" {processed:>11} {backlog:>8} {busy:>9} {load_cpu:>5} {rewrites:>9} {slow:>7}")

drains = sorted((n for n in runs if "-drain-" in n),
                key=lambda n: (order.get(n.split("-")[0], 9), int(n.rsplit("-", 1)[1])))
if drains:
    print()
    print(f"workers alone, no-op handler, {int(prefill):,} notifications stored first (in process, core 0; "
          f"redis-server on core {redis_core}, Postgres on core {postgres_core}); commits: SQLite's")
    print("while draining (the Postgres store counts its insert statements only: none while draining):")
    print(f"{'store':>8} {'concurrency':>11} {'drained/s':>10} {'filled/s':>9} {'commits':>8} {'writes/commit':>14}")
    for name in drains:
        rs = list(runs[name].values())
        store, c = name.split("-drain-")
        commits = "-" if store != "sqlite" else f"{med(name, 'drain_commits'):.0f}"
        wpc = "-" if store != "sqlite" else \
            f"{statistics.median(r['drain_writes'] / max(r['drain_commits'], 1) for r in rs):.1f}"
        print(f"{store:>8} {c:>11} {med(name, 'drain_rps'):>10.0f} {med(name, 'fill_rps'):>9.0f}"
              f" {commits:>8} {wpc:>14}")

for store, what in (("sqlite", "SQLite group commit"),
                    ("postgres", "Postgres group commit (commits: insert statements, each its own transaction)")):
    if store in runs:
        print()
        print(f"{what} during the closed-loop runs (median [range] over rounds):")
        rs = list(runs[store].values())
        print(f"  commits {spread([r['commits'] for r in rs])}, writes {spread([r['writes'] for r in rs])}, "
              f"writes per commit {spread([r['writes'] / max(r['commits'], 1) for r in rs])}, "
              f"largest batch {spread([r['largest'] for r in rs])}")

print()
print("Goals (within each round, then median [range] over rounds):")
# (store, rate, p99 goal in ms at that rate; None: no latency goal set)
goals = [("sqlite", float(sqlite_rate), 25), ("redis", float(redis_rate), 10),
         ("postgres", float(postgres_rate), None)]
for name, rate, p99 in goals:
    if name in runs:
        print(f"  {name} capacity (closed loop): acked/s / {rate:,.0f} = "
              f"{spread([r['rps'] / rate for r in runs[name].values()])} (goal >= 1)")
        if "layer" in runs:
            print(f"  {name} / layer acked/s = {spread(per_round(lambda rr: rr[name]['rps'] / rr['layer']['rps']))}")
    at = f"{name}@{rate:.0f}"
    if at in runs:
        if p99 is None:
            tail = f"p99 = {spread([r['p99'] / 1e3 for r in runs[at].values()])} ms (no goal set)"
        else:
            tail = (f"p99 / {p99} ms = {spread([r['p99'] / 1e3 / p99 for r in runs[at].values()])} "
                    f"(goal <= 1)")
        print(f"  {at} (open loop): acked/s / offered = "
              f"{spread([r['rps'] / rate for r in runs[at].values()])}; {tail}")
        base = f"layer@{rate:.0f}"
        if base in runs:
            print(f"  {at} p99 - {base} p99 (the machine's own tail at that rate, no inbox) = "
                  f"{spread(per_round(lambda rr: (rr[at]['p99'] - rr[base]['p99']) / 1e3))} ms")
    if at + "+w" in runs:
        print(f"  {at}+w: processed/s / offered = "
              f"{spread([r['done'] / (duration + 1) / rate for r in runs[at + '+w'].values()])} "
              f"(goal >= 1: workers keep up on the receiver's core)")
for d in drains:
    store = d.split("-drain-")[0]
    if store in runs:
        print(f"  {d} drained/s / {store} acked/s = "
              f"{spread(per_round(lambda rr: rr[d]['drain_rps'] / rr[store]['rps']))} (goal >= 1: workers keep up)")
if problems:
    print("WARNING:", *problems[:6], sep="\n  ")
    sys.exit(1)
EOF
