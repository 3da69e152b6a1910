#!/usr/bin/env bash
# Short fuzzing smoke run: each target for SECONDS_PER_TARGET (default 15) seconds, starting
# from the committed corpus. New inputs go to a temporary directory, so the committed corpus is
# left unchanged. Exits non-zero on the first crash, panic, timeout or out-of-memory; the input
# is then in fuzz/artifacts/<target>/.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it pass its -Z flags.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECONDS_PER_TARGET:-15}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: cargo-fuzz is not installed; skipping" >&2
    exit 0
fi
export RUSTC_BOOTSTRAP=1
flags=(-O --sanitizer none)
cargo fuzz build "${flags[@]}"
for target in config_parser ensemble_expansion damaged_outputs; do
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    echo "== $target: ${secs} s"
    cargo fuzz run "${flags[@]}" "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    rm -rf "$scratch"
    trap - EXIT
done
