"""Shared fixtures: the repository root, the CLI binary (QBAT_BIN, default
target/release/qbat-gpu) and small configs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def qbat_bin() -> Path:
    p = Path(os.environ.get("QBAT_BIN", REPO / "target" / "release" / "qbat-gpu"))
    if not p.is_file():
        pytest.fail(f"the qbat-gpu binary is not at {p}: build it with `cargo build --release` or set QBAT_BIN")
    return p


def run_cli(qbat_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI, with no progress bar and no plots where it takes them."""
    p = subprocess.run([str(qbat_bin), *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"qbat-gpu {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
    return p


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (also -0.0 against 0.0 and NaN payloads)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


# A small bloch-charger sweep (theta swept, charger decay) and a random-state spin pair.
BLOCH = """
model = "bloch-charger"
[params]
wb = 1.0
j = { values = [0.8, 1.2] }
gamma = 0.05
[initial]
theta = { linspace = [0.0, 3.141592653589793, 5] }
phi = 0.3
[time]
dt = 0.01
t_end = 4.0
samples = 41
"""

SPIN_PAIR = """
model = "spin-pair"
[params]
wb = 1.0
wc = 1.0
j1 = { uniform = [0.05, 0.2] }
j2 = 0.1
dephasing = 0.02
[initial]
random = "haar"
[time]
dt = 0.02
t_end = 5.0
samples = 26
[ensemble]
size = 24
seed = 11
"""


def long_spin_pair(t_end: float, size: int) -> str:
    """A spin-pair run of `size` Haar-random members to `t_end` at dt = 1e-3 (11 samples): long
    enough, at the sizes the tests choose, to be polled or interrupted while it goes."""
    return f"""
model = "spin-pair"
[initial]
random = "haar"
[time]
dt = 0.001
t_end = {t_end!r}
samples = 11
[ensemble]
size = {size}
"""
