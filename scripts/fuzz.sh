#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for a bounded time each, on the nightly toolchain.
#
#   scripts/fuzz.sh [seconds] [target...]      # default: 60 s per target, every target
#   JOBS=2 scripts/fuzz.sh 600                 # two targets at a time (each one process)
#   MERGE=1 scripts/fuzz.sh 600 rule           # afterwards, minimise what was found into fuzz/corpus/<t>
#
# New inputs go to fuzz/work/<t>/ (ignored by git); fuzz/corpus/<t>/ is read as seeds and only changed with
# MERGE=1. A crash leaves its input in fuzz/artifacts/<t>/ and makes the script exit non-zero; once fixed,
# copy it to fuzz/regressions/<t>/ so that `cargo test --test fuzz_corpus` replays it on stable.
# Each run is bounded twice: libFuzzer's -max_total_time, and `timeout` 120 s later in case it hangs.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [seconds] [target...]" >&2; exit 2 ;;
esac
jobs="${JOBS:-1}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "needs the nightly toolchain and cargo-fuzz: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
  exit 2
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

# Same flags for build and run, so that `run` does not rebuild: no sanitizer (the crate forbids unsafe
# code), debug assertions on (overflow checks), release optimisation.
flags=(--fuzz-dir fuzz -s none -a)
cargo +nightly fuzz build "${flags[@]}"

max_len() {
  case "$1" in
    dynamic_yaml | dynamic_toml | labels) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

run_one() {
  local t="$1" log="fuzz/work/$1.log"
  mkdir -p "fuzz/work/$t" "fuzz/artifacts/$t"
  local status=0
  timeout "$((secs + 120))" nice -n 10 cargo +nightly fuzz run "${flags[@]}" "$t" \
    "fuzz/work/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  local stats
  stats="$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 || true)"
  local execs
  execs="$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)"
  echo "$t: exit $status, executions ${execs:-?}, last: ${stats:-none} (log $log)"
  if [ "$status" -ne 0 ]; then
    grep -E 'panicked|ERROR|Test unit written' "$log" | head -5 || true
    return 1
  fi
  if [ "${MERGE:-0}" = 1 ]; then
    # The smallest set of inputs that reaches every edge reached (hit-count buckets ignored, so that the
    # committed corpus stays a few hundred files); the full corpus stays in fuzz/work/<t>.
    local tmp="fuzz/work/$t.min"
    rm -rf "$tmp" && mkdir -p "$tmp"
    cargo +nightly fuzz run "${flags[@]}" "$t" "$tmp" -- -set_cover_merge=1 -use_counters=0 -max_len="$(max_len "$t")" \
      "fuzz/corpus/$t" "fuzz/work/$t" >>"$log" 2>&1
    rm -rf "fuzz/corpus/$t" && mv "$tmp" "fuzz/corpus/$t"
  fi
}

failed=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
exit "$failed"
