#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS (default 60) from its committed seeds,
# then a table of executions per target. Needs nightly Rust; installs cargo-fuzz if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=(token path policy limit_headers edge_inputs)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
mkdir -p target/fuzz-logs
summary=()
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  log="target/fuzz-logs/$target.log"
  echo "fuzz: $target for ${seconds}s"
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1) > "$log" 2>&1 || {
    tail -40 "$log" >&2
    echo "fuzz: $target FAILED (log: $log)" >&2
    exit 1
  }
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || echo "?")
  summary+=("$(printf '%-14s %12s runs  %6s s  %8s runs/s  cov %s' "$target" "$runs" "$seconds" "$((runs / seconds))" "$cov")")
done
echo
echo "fuzz: executions per target"
printf '  %s\n' "${summary[@]}"
