"""qb.study (streamed, checkpointed, sharded) and qb.merge against the CLI's files."""

from __future__ import annotations

import os

import numpy as np
import pytest

import qbat_gpu as qb
from conftest import SPIN_PAIR, run_cli, same_bits


def test_study_writes_the_cli_files(tmp_path, qbat_bin):
    cfg = tmp_path / "sp.toml"
    cfg.write_text(SPIN_PAIR)
    cli = tmp_path / "cli"
    run_cli(qbat_bin, "run", str(cfg), "--out", str(cli), "--backend", "cpu", "--format", "npy", "--no-plots", "--no-progress", "--block-members", "5")
    r = qb.study(cfg, tmp_path / "py", backend="cpu", block_members=5, plots=False, progress=False)
    assert isinstance(r.series, np.memmap)
    for name in ("series.npy", "series.json", "summary.csv", "summary.npy", "stats.csv"):
        assert (r.dir / name).read_bytes() == (cli / name).read_bytes(), name
    assert r.info["blocks"]["count"] == 5
    mem = qb.run(cfg, backend="cpu", progress=False)
    assert same_bits(r.series, mem.series)
    # an existing run directory is refused unless force
    with pytest.raises(qb.ConfigError, match="not empty"):
        qb.study(cfg, tmp_path / "py", backend="cpu", plots=False, progress=False)


def test_shards_merge_to_the_whole_run(tmp_path):
    whole = qb.study(SPIN_PAIR, tmp_path / "whole", backend="cpu", format="csv", plots=False, progress=False)
    shards = [qb.study(SPIN_PAIR, tmp_path / f"s{k}", shard=(k, 3), backend="cpu", format="csv", plots=False, progress=False) for k in range(3)]
    assert sum(len(s) for s in shards) == len(whole)
    m = qb.merge([s.dir for s in reversed(shards)], tmp_path / "merged", plots=False)
    for name in ("series.csv", "summary.csv", "stats.csv"):
        assert (m.dir / name).read_bytes() == (whole.dir / name).read_bytes(), name
    with pytest.raises(qb.ConfigError):
        qb.merge([shards[0].dir, shards[1].dir], tmp_path / "m2", plots=False)
    with pytest.raises(qb.ConfigError, match="shard"):
        qb.study(SPIN_PAIR, tmp_path / "bad", shard=(3, 3), backend="cpu", progress=False)


def test_merge_takes_one_directory_as_a_path(tmp_path):
    """qb.merge(dir, out): one directory (a str, bytes or a Path) is a list of one, not its characters."""
    s0 = qb.study(SPIN_PAIR, tmp_path / "s0", shard=(0, 1), backend="cpu", format="csv", plots=False, progress=False)
    for k, d in enumerate([str(s0.dir), s0.dir, os.fsencode(s0.dir)]):
        m = qb.merge(d, tmp_path / f"m{k}", plots=False)
        assert (m.dir / "series.csv").read_bytes() == (s0.dir / "series.csv").read_bytes()
