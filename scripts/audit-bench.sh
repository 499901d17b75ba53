#!/usr/bin/env bash
# The audit's history scan against `git log --all -p | grep -c dG9r`, side
# by side on the same generated repository: 10,000 commits, ~100 MB of
# distinct file contents, a few tokens and base64 noise. Not part of CI.
#
#   ./scripts/audit-bench.sh [DIR]   (default: a temporary directory, removed after)
#
# Prints the repository's size, then the wall time of each, best of 3.
# Generating the repository takes several minutes on a small machine; pass
# a DIR to keep it for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."

commits=${COMMITS:-10000}
work=${1:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
repo="$work/bench-repo"

export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1

cargo build --quiet --release --features audit --example audit
audit="${CARGO_TARGET_DIR:-target}/release/examples/audit"

if [ ! -d "$repo/.git" ]; then
  echo "generating $repo ($commits commits)..." >&2
  git init -q -b main "$repo"
  COMMITS=$commits python3 - <<'PY' | git -C "$repo" fast-import --quiet
import base64, os, random, sys, uuid

rng = random.Random(25)
commits = int(os.environ["COMMITS"])
words = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
    for _ in range(5000)
]
out = sys.stdout.buffer

def line():
    return " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))

def token():
    body = "tok:" + str(uuid.UUID(int=rng.getrandbits(128))).replace("-", "_") + ":1:0"
    return base64.b64encode(body.encode()).decode()

def noise():
    # Ordinary base64 that holds `dG9r` mid-run, as `grep` counts it.
    raw = bytes(rng.getrandbits(8) for _ in range(600))
    text = base64.b64encode(raw).decode()
    at = rng.randint(10, len(text) - 10)
    return text[:at] + "dG9r" + text[at:]

files = {}
paths = [f"pkg{d:02}/mod{f:03}.txt" for d in range(100) for f in range(20)]
for path in paths:
    files[path] = [line() for _ in range(rng.randint(20, 120))]

def write(data):
    out.write(data if isinstance(data, bytes) else data.encode())

for n in range(1, commits + 1):
    changed = rng.sample(paths, rng.randint(1, 4))
    for path in changed:
        lines = files[path]
        at = rng.randrange(len(lines))
        lines[at:at + rng.randint(0, 3)] = [line() for _ in range(rng.randint(1, 4))]
        if len(lines) > 150:
            del lines[: len(lines) - 100]
        if n % 2000 == 0:
            lines.insert(rng.randrange(len(lines)), f"INTERCOM_TOKEN={token()}")
        if n % 97 == 0:
            lines.insert(rng.randrange(len(lines)), f"blob: {noise()}")
    message = f"commit {n}\n".encode()
    write(f"commit refs/heads/main\nmark :{n}\n")
    write(f"committer Bench <bench@example.com> {1600000000 + n * 60} +0000\n")
    write(f"data {len(message)}\n")
    write(message)
    if n > 1:
        write(f"from :{n - 1}\n")
    for path in changed:
        body = ("\n".join(files[path]) + "\n").encode()
        write(f"M 100644 inline {path}\ndata {len(body)}\n")
        write(body)
        write(b"\n")
    write(b"\n")
PY
  git -C "$repo" reset -q --hard main
  git -C "$repo" gc -q
fi

blob_bytes=$(git -C "$repo" rev-list --all --objects --filter=object:type=blob --filter-provided-objects \
  | git -C "$repo" cat-file --batch-check='%(objectsize) %(rest)' | awk '{s+=$1} END {printf "%d\n", s}')
blobs=$(git -C "$repo" rev-list --all --objects --filter=object:type=blob --filter-provided-objects | wc -l)
log_bytes=$(git -C "$repo" log --all -p | wc -c)
echo "repository: $(git -C "$repo" rev-list --all --count) commits, $blobs distinct blobs," \
  "$((blob_bytes / 1000000)) MB of distinct contents, $((log_bytes / 1000000)) MB of 'git log --all -p'," \
  "pack $(du -sm "$repo/.git" | cut -f1) MB"

best() {
  # Best wall time of 3 runs of "$@", in seconds.
  local best="" t
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null || true
    end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
  done
  printf '%.2f' "$best"
}

grep_count=$(git -C "$repo" log --all -p | grep -c dG9r || true)
grep_time=$(best bash -c "git -C '$repo' log --all -p | grep -c dG9r")
audit_time=$(best "$audit" "$repo")
findings=$({ "$audit" "$repo" --format json || true; } | python3 -c '
import json, sys
report = json.load(sys.stdin)
check = next(c for c in report["checks"] if c["id"] == "git.access_tokens")
print(len(check["findings"]))')

echo "git log --all -p | grep -c dG9r: ${grep_time} s ($grep_count matching lines, tokens and noise alike)"
echo "cargo run --release --example audit: ${audit_time} s ($findings tokens found, each named by commit, path and line)"
