"""Damaged and hostile input through Python: refused with a one-line error naming the field or
the file, never a user's file replaced, never a hang."""

from __future__ import annotations

import os

import numpy as np
import pytest

import qbat_gpu as qb
from conftest import BLOCH, same_bits


def test_a_saved_run_read_back_is_saved_under_the_runs_own_rules(tmp_path):
    a = qb.run(BLOCH, backend="cpu", progress=False).save(tmp_path / "a", format="npy", plots=False)
    b = qb.run(BLOCH.replace("gamma = 0.05", "gamma = 0.5"), backend="cpu", progress=False).save(tmp_path / "b", format="npy", plots=False)
    # a directory of the user's: never written into, even with force
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text("my notes")
    with pytest.raises(qb.ConfigError, match="not a qbat-gpu output"):
        qb.open(b).save(mine, format="npy", force=True)
    assert (mine / "run.json").read_text() == "my notes"
    # over another run: its files replaced whole, a user's file beside them kept
    (a / "notes.txt").write_text("mine")
    qb.open(b).save(a, format="npy", force=True)
    assert (a / "notes.txt").read_text() == "mine"
    got, want = qb.open(a), qb.open(b)
    assert got.info["config"] == want.info["config"]
    assert same_bits(got.series, want.series)


def test_open_reads_only_the_files_the_run_wrote(tmp_path):
    out = qb.run(BLOCH, backend="cpu", progress=False).save(tmp_path / "o", format="npy", plots=False)
    data = bytearray((out / "series.npy").read_bytes())
    data[-1] ^= 1
    (out / "series.npy").write_bytes(bytes(data))
    with pytest.raises(qb.ConfigError, match="series.npy"):
        qb.open(out)


def test_a_config_that_is_not_a_file_is_refused_at_once(tmp_path):
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(qb.ConfigError, match="not a regular file"):
            qb.run(fifo, backend="cpu", progress=False)
    if os.path.exists("/dev/zero"):
        with pytest.raises(qb.ConfigError, match="not a regular file"):
            qb.run("/dev/zero", backend="cpu", progress=False)


def test_bad_states_and_outputs_are_named(tmp_path):
    rho = np.diag([1.0, 0, 0, 0]).astype(complex)
    nan = rho.copy()
    nan[2, 3] = nan[3, 2] = np.nan
    h = np.diag([1.0, 0.5, -0.5, -1.0]).astype(complex)
    with pytest.raises(qb.ConfigError, match="must be finite"):
        qb.mesolve(h, [], np.stack([rho, nan]), [0.0, 0.5], dt=0.01, backend="cpu", progress=False)
    # entries far beyond a density matrix's: refused, not an eigen-solve that never ends
    with pytest.raises(qb.ConfigError, match="not a density matrix"):
        qb.measures.concurrence(np.diag([1e308] * 4).astype(complex))
    with pytest.raises(qb.ConfigError, match="^out: "):
        qb.study(BLOCH, "", backend="cpu", progress=False)
    # a newline in a user's key stays inside the one line
    with pytest.raises(qb.ConfigError) as e:
        qb.run(BLOCH.replace("gamma = 0.05", '"gam\\nma" = 0.05'), backend="cpu", progress=False)
    assert "\n" not in str(e.value)
