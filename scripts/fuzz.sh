#!/usr/bin/env bash
# Runs the fuzz targets for a bounded time on the stable toolchain and
# reports executions and findings.
#
#   ./scripts/fuzz.sh                    # every target, 60 s each
#   ./scripts/fuzz.sh layer 600          # one target, 10 minutes
#   FUZZ_SANITIZER=none ./scripts/fuzz.sh all 300
#
# cargo-fuzz drives libFuzzer, which needs `-Z` flags (sanitizer coverage):
# RUSTC_BOOTSTRAP=1 lets the stable compiler accept them, so no nightly
# toolchain is needed. cargo-fuzz is installed with `cargo install` when
# missing. The corpus (fuzz/corpus/TARGET) grows across runs and is not
# committed; crashes land in fuzz/artifacts/TARGET. Exits 1 when any target
# found something. See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=(signature_header verify layer jwt_verify)
target="${1:-all}"
seconds="${2:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"

case "$target" in
  all) ;;
  signature_header | verify | layer | jwt_verify) targets=("$target") ;;
  *)
    echo "usage: $0 [all|signature_header|verify|layer|jwt_verify] [SECONDS]" >&2
    exit 2
    ;;
esac
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "SECONDS must be a positive number of seconds, got '$seconds'" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz not found: installing it with cargo install" >&2
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

echo "building the fuzz targets (release, sanitizer: $sanitizer)" >&2
cargo fuzz build -O --sanitizer "$sanitizer" >&2

summary=()
found=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  before=$(find "artifacts/$t" -type f ! -name '*.log' ! -name .started | wc -l)
  stamp="artifacts/$t/.started"
  touch "$stamp"
  echo "fuzzing $t for ${seconds}s (log: fuzz/$log)" >&2
  status=0
  cargo fuzz run -O --sanitizer "$sanitizer" "$t" "corpus/$t" -- \
    -max_total_time="$seconds" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -dict=dict/intercom.dict \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  after=$(find "artifacts/$t" -type f ! -name '*.log' ! -name .started | wc -l)
  new=$((after - before))
  if [ "$status" -ne 0 ] || [ "$new" -gt 0 ]; then
    found=1
    echo "== $t: FINDING (exit $status); last lines of fuzz/$log:" >&2
    tail -n 30 "$log" >&2
    find "artifacts/$t" -type f ! -name '*.log' ! -name .started -newer "$stamp" -printf '   fuzz/%p\n' >&2 || true
    echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -O $t <artifact>" >&2
  fi
  summary+=("$(printf '%-17s %10s executions  %6s exec/s  corpus %5s  new findings %s' \
    "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$new")")
done

echo
echo "fuzzed ${seconds}s per target, sanitizer $sanitizer, $(rustc --version)"
printf '%s\n' "${summary[@]}"
exit "$found"
