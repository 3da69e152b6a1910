#!/usr/bin/env bash
# The Python package's CI: run from the repository root (`bash python/ci.sh`). Installs the
# test dependencies from PyPI into a virtual environment, builds and installs the package with
# `pip install ./python`, and runs the Python tests (which compare against the CLI's own output
# files, QuTiP, closed forms, a local Ray instance, and execute the quickstart notebook).
# No GPU needed: backend="auto" tests use lavapipe where it is installed, else the CPU engine.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
say() { printf '[python-ci %4ds] %s\n' "$((SECONDS - t0))" "$*"; }

# One target directory for the CLI and the extension, so that they share compiled dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export QBAT_BIN="${QBAT_BIN:-$CARGO_TARGET_DIR/release/qbat-gpu}"
PY="${PYTHON:-python3}"
VENV="${QBAT_PY_VENV:-$CARGO_TARGET_DIR/python-ci-venv}"

if [ ! -x "$QBAT_BIN" ]; then
    say "building the CLI (cargo build --release)"
    cargo build --release --locked
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
say "installing the test dependencies"
python -m pip install --quiet --disable-pip-version-check \
    "maturin==1.16.0" "numpy==2.4.6" "pytest==9.2.0" "qutip==5.3.1" "pandas==3.1.1" \
    "xarray==2026.9.0" "ray==2.60.0" "nbclient==0.11.0" "nbformat==5.11.1" "ipykernel==7.4.0" \
    "matplotlib==3.11.2" "blake3==1.0.11"

# The extension reuses the CLI's compiled crates only where cargo gives both builds the same
# features (Cargo.toml asks the library for those numpy and pyo3 turn on): said here, not
# failed, when a dependency's update made them differ (the build then takes minutes longer).
features() { cargo tree --locked -e no-dev --prefix none -f '{p} [{f}]' --manifest-path "$1" 2>/dev/null | sed 's/ ([^)]*)//g'; }
# (crates in both trees, by name and version, whose sets of feature lists differ: a crate built
# for the host and the target may appear twice)
differ="$(python3 - <(features Cargo.toml) <(features python/Cargo.toml) <<'PY'
import sys
def sets(path):
    out = {}
    for line in open(path):
        name, _, feats = line.strip().partition(" [")
        feats = feats.rstrip("]")
        out.setdefault(name, set()).add(feats)
    return out
cli, ext = sets(sys.argv[1]), sets(sys.argv[2])
for name in sorted(set(cli) & set(ext)):
    if cli[name] != ext[name]:
        print(f"    {name}: {sorted(cli[name])} / {sorted(ext[name])}")
PY
)"
if [ -n "$differ" ]; then
    say "note: the extension builds these crates with other features than the CLI, so twice:"
    printf '%s\n' "$differ"
fi

say "pip install ./python (builds the extension, abi3, release)"
python -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./python

say "pytest python/tests"
# run outside the source tree so that the installed package (not python/qbat_gpu) is imported
cd python/tests
python -m pytest -q -p no:cacheprovider .
say "done"
