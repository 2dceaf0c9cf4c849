#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time (cargo-fuzz, libFuzzer, stable toolchain,
# no sanitizer). A crash fails the run and leaves its input in fuzz/artifacts/<target>/: turn it
# into a regression test next to the code it broke, then fix the code.
#
#   bash scripts/fuzz.sh                         # about a minute per target
#   KEHAI_FUZZ_SECONDS=600 bash scripts/fuzz.sh  # longer
#   bash scripts/fuzz.sh tokens                  # one target
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${KEHAI_FUZZ_SECONDS:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo fuzz build -s none
for target in "${targets[@]}"; do
  echo "== fuzzing $target for ${seconds}s"
  # -max_len: notification bodies and tokens are small; longer inputs only slow the search.
  log="target/fuzz-$target.log"
  status=0
  cargo fuzz run "$target" -s none -- -max_total_time="$seconds" -max_len=8192 >"$log" 2>&1 || status=$?
  # libFuzzer's progress lines trimmed: the summary, or the failure with its assertion.
  grep -E '^(#[0-9]+ +DONE|Done |==[0-9]+== ERROR|SUMMARY|thread .* panicked|assertion|  left|  right)' "$log" || true
  [ "$status" -eq 0 ] || { echo "fuzz target $target failed: its input is in fuzz/artifacts/$target/"; exit 1; }
done
