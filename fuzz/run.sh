#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, one after the other, and prints what libFuzzer
# reports for each (executions, exec/s, corpus growth). Exits non-zero if any target crashes
# (a failed invariant, a panic, an overflow, a timeout or an out-of-memory).
#
#   bash fuzz/run.sh [seconds-per-target]     # default 30; `bash fuzz/run.sh 3600` for a campaign
#
# Environment: FUZZ_TARGETS="a b" (default: every target), FUZZ_SANITIZER (cargo-fuzz's -s;
# default: address), CARGO_BUILD_JOBS (default 2). The corpus grows in fuzz/corpus/<target>
# (git-ignored; fuzz/seeds/<target> are the committed seeds), crashes land in
# fuzz/artifacts/<target>/, the full logs in fuzz/target/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-30}
if ! [[ $secs =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: $0 [seconds-per-target]" >&2
  exit 2
fi
sanitizer=${FUZZ_SANITIZER:-address}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
fuzz=(cargo +nightly fuzz)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2
  exit 2
fi

read -r -a targets <<<"${FUZZ_TARGETS:-$("${fuzz[@]}" list | tr '\n' ' ')}"
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)"
"${fuzz[@]}" build -s "$sanitizer" >/dev/null

mkdir -p fuzz/target/logs
failed=()
rows=()
for target in "${targets[@]}"; do
  corpus=fuzz/corpus/$target
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  inputs=("$corpus")
  [ -d "fuzz/seeds/$target" ] && inputs+=("fuzz/seeds/$target")
  extra=()
  [ -f "fuzz/dicts/$target.dict" ] && extra+=("-dict=fuzz/dicts/$target.dict")
  log=fuzz/target/logs/$target.log
  echo "fuzz: $target for ${secs}s"
  rc=0
  "${fuzz[@]}" run -s "$sanitizer" "$target" "${inputs[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}" \
    >"$log" 2>&1 || rc=$?
  stat_of() { sed -n "s/^stat::$1: *//p" "$log" | tail -n1; }
  execs=$(stat_of number_of_executed_units)
  rate=$(stat_of average_exec_per_sec)
  added=$(stat_of new_units_added)
  corpus_size=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $rc); the end of $log:" >&2
    tail -n 40 "$log" >&2
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n1)
    if [ -n "$artifact" ]; then
      echo "fuzz: reproduce:  cargo +nightly fuzz run $target $artifact" >&2
      echo "fuzz: as input:   cargo +nightly fuzz fmt $target $artifact" >&2
    fi
  fi
  rows+=("$(printf '%-22s %12s %10s %8s %8s  %s' "$target" "${execs:-?}" "${rate:-?}" "${added:-?}" "$corpus_size" \
    "$([ "$rc" -eq 0 ] && echo ok || echo CRASH)")")
done

echo
printf '%-22s %12s %10s %8s %8s  %s\n' target executions exec/s new corpus result
printf '%s\n' "${rows[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]}" >&2
  exit 1
fi
