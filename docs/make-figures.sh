#!/usr/bin/env bash
# Reproduce the seed papers' headline figures: run each config in examples/papers/ that has an
# image in the README (all but 002-fig3, the n_th, delta map) on the CPU engine, analyse paper
# 000's run, and copy the figures into docs/.
# Usage: bash docs/make-figures.sh [path/to/qbat-gpu]   (default: builds target/release/qbat-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-}"
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=target/release/qbat-gpu
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
run() { "$BIN" run "examples/papers/$1.toml" --backend cpu --no-progress --out "$WORK/$1" --force > "$WORK/$1.log"; }

run 000-fig2
"$BIN" analyze "$WORK/000-fig2" --no-plots | tee "$WORK/000-analysis.txt"
cp "$WORK/000-fig2/plot_series.png" docs/000-fig2.png

run 002-fig2b
cp "$WORK/002-fig2b/plot_steady_energy_b.png" docs/002-fig2b.png

run 002-fig4a
cp "$WORK/002-fig4a/plot_series.png" docs/002-fig4a.png

run 003-fig2a-zeta0
run 003-fig2a-zeta1
cp "$WORK/003-fig2a-zeta0/plot_cavity_lambda_t.png" docs/003-fig2a-zeta0.png
cp "$WORK/003-fig2a-zeta1/plot_cavity_lambda_t.png" docs/003-fig2a-zeta1.png

run 004-fig3ef
cp "$WORK/004-fig3ef/plot_peak_times_theta.png" docs/004-fig3e.png
cp "$WORK/004-fig3ef/plot_peaks_theta.png" docs/004-fig3f.png

# The Dicke battery's collective charging (Ferraro et al. 2018): about 12 minutes on 2 cores.
cargo run --release --quiet --example dicke_ferraro -- 16 docs/dicke-ferraro.png

chmod 644 docs/*.png
ls -l docs/*.png
