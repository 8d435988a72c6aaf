#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo fuzz (libFuzzer): runs every target in fuzz/ for SECONDS
# each (default 60), then prints each target's executions per second and coverage. Fails when a
# target crashes, times out on an input or runs out of memory; the input that did it is kept in
# fuzz/artifacts/<target>/ and the target's whole output in fuzz/logs/<target>.log.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz when it is
# missing. Each target starts from its committed seeds in fuzz/corpus/<target>/ and what earlier
# runs found in fuzz/corpus-grown/<target>/ (not committed), where new inputs go.
#
# FUZZ_TOOLCHAIN (default nightly) and FUZZ_SANITIZER (default none: the crate forbids unsafe
# code, and without a sanitizer the targets run about twice as fast; `address` also works).
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
  echo "fuzz: no $toolchain toolchain (rustup toolchain install $toolchain)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked || exit 1
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

echo "== building the fuzz targets (toolchain $toolchain, sanitizer $sanitizer)"
if ! cargo "+$toolchain" fuzz build --sanitizer "$sanitizer"; then
  echo "fuzz: the targets do not build" >&2
  exit 1
fi

mkdir -p fuzz/logs
summary=()
failed=()
started=$SECONDS
for target in "${targets[@]}"; do
  grown="fuzz/corpus-grown/$target"
  seeds="fuzz/corpus/$target"
  mkdir -p "$grown" "fuzz/artifacts/$target"
  args=(
    "-max_total_time=$seconds"
    # One input taking 10 s is a hang; no input needs 2 GiB.
    -timeout=10
    -rss_limit_mb=2048
    -print_final_stats=1
  )
  if [ -f "fuzz/dicts/$target.dict" ]; then
    args+=("-dict=fuzz/dicts/$target.dict")
  fi
  dirs=("$grown")
  if [ -d "$seeds" ]; then
    dirs+=("$seeds")
  fi
  log="fuzz/logs/$target.log"
  echo "== fuzzing $target for ${seconds} s (log: $log)"
  cargo "+$toolchain" fuzz run --sanitizer "$sanitizer" "$target" "${dirs[@]}" -- "${args[@]}" \
    >"$log" 2>&1
  status=$?

  # libFuzzer's last stats line: `#1234 DONE cov: 567 ft: 890 corp: ... exec/s: 1234 ...`.
  last=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -n 1)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+$')
  ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+$')
  corpus=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+$')
  if [ -z "$runs" ]; then
    runs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#')
  fi
  if [ -z "$rate" ]; then
    rate=$(grep -oE 'exec/s: [0-9]+' <<<"$last" | grep -oE '[0-9]+$')
  fi

  outcome=ok
  if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
    outcome=timeout
  elif grep -qE 'ERROR: libFuzzer: (out-of-memory|malloc limit)' "$log"; then
    outcome=oom
  elif [ "$status" -ne 0 ] || grep -qE 'ERROR: libFuzzer|panicked at|Test unit written' "$log"; then
    outcome=crash
  fi
  if [ "$outcome" != ok ]; then
    failed+=("$target")
    echo "!! $target: $outcome (exit status $status); the end of $log:"
    grep -E 'panicked at|ERROR: libFuzzer|Test unit written|SUMMARY' -A3 "$log" | head -n 30
  fi
  [ -n "$last" ] && echo "   $last"
  summary+=("$(printf '%-12s %-8s %12s %10s %8s %8s %8s' "$target" "$outcome" \
    "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}")")
done

echo
echo "== fuzzing summary (${seconds} s per target, sanitizer $sanitizer, $((SECONDS - started)) s in all)"
printf '%-12s %-8s %12s %10s %8s %8s %8s\n' target outcome execs exec/s cov ft corpus
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in fuzz/artifacts/, reproduce with" \
    "cargo +$toolchain fuzz run --sanitizer $sanitizer <target> <artifact>)" >&2
  exit 1
fi
echo "fuzz: no crash, timeout or out-of-memory"
