"""examples/ray: 4 shards as Ray tasks, one killed after its first checkpoint, retried and
resumed; the merge equals the unsharded run bit for bit."""

from __future__ import annotations

import json
import sys

import pytest

ray = pytest.importorskip("ray")

import qbat_gpu as qb  # noqa: E402
from conftest import REPO, run_cli  # noqa: E402

sys.path.insert(0, str(REPO / "examples" / "ray"))
import driver  # noqa: E402

STUDY = """
model = "spin-pair"
[params]
wb = 1.0
wc = 1.0
j1 = 0.1
j2 = { values = [0.0, 0.2] }
[initial]
random = "haar"
[time]
dt = 0.02
t_end = 10.0
samples = 51
[ensemble]
size = 400
seed = 3
"""


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"QBAT_INJECT_FAULT": "slow-blocks=200"}})
    yield
    ray.shutdown()


def test_ray_shards_with_a_killed_task_merge_to_the_unsharded_run(tmp_path, qbat_bin, local_ray):
    root = tmp_path / "study"
    merged = driver.run_sharded(STUDY, root, 4, max_retries=2, kill_first_attempt_of=0,
                                backend="cpu", format="npy", block_members=25, plots=False)
    # shard 0 was killed after its first checkpoint, retried, and resumed from it
    assert (root / ".kill-marker-0").is_file()
    t0 = next(t for t in merged.tasks if t["shard"] == 0)
    assert t0["resumed"] is True
    info0 = json.loads((root / "shards" / "shard-0" / "run.json").read_text())
    assert info0["blocks"]["resumed"] >= 1 and info0["blocks"]["count"] == 4
    assert all(not t["resumed"] for t in merged.tasks if t["shard"] != 0)
    # the unsharded run, by the CLI
    cfg = tmp_path / "study.toml"
    cfg.write_text(STUDY)
    whole = tmp_path / "whole"
    run_cli(qbat_bin, "run", str(cfg), "--out", str(whole), "--backend", "cpu", "--format", "npy", "--no-plots", "--no-progress")
    for name in ("series.npy", "summary.csv", "stats.csv", "summary.npy"):
        assert (merged.dir / name).read_bytes() == (whole / name).read_bytes(), f"merged {name} differs from the unsharded run"
    assert len(merged) == 400


SMALL = """
model = "spin-pair"
[initial]
random = "haar"
[time]
dt = 0.02
t_end = 1.0
samples = 11
[ensemble]
size = 40
seed = 5
"""


def test_ray_driver_refuses_a_root_of_another_config(tmp_path, qbat_bin, local_ray):
    root = tmp_path / "study"
    first = driver.run_sharded(SMALL, root, 2, backend="cpu", plots=False)
    assert len(first) == 40
    other = SMALL.replace("seed = 5", "seed = 6")
    # (a driver.ForeignShard; the old driver skipped the finished shards and returned the first
    # study's merge)
    with pytest.raises(ValueError, match="study.toml differs"):
        driver.run_sharded(other, root, 2, backend="cpu", plots=False)
    # the same study again finds its shards finished
    again = driver.run_sharded(SMALL, root, 2, backend="cpu", plots=False)
    assert all(t["skipped"] for t in again.tasks)


def test_ray_driver_refuses_a_root_of_another_shard_count(tmp_path, qbat_bin, local_ray):
    root = tmp_path / "study"
    driver.run_sharded(SMALL, root, 2, backend="cpu", plots=False)
    for n in (1, 4):
        with pytest.raises(ValueError, match="another shard count"):
            driver.run_sharded(SMALL, root, n, backend="cpu", plots=False)


def test_ray_driver_refuses_a_root_of_other_options(tmp_path, qbat_bin, local_ray):
    root = tmp_path / "study"
    first = driver.run_sharded(SMALL, root, 2, backend="cpu", format="npy", plots=False)
    assert (first.dir / "series.npy").is_file()
    # (the old driver found both shards finished, skipped them, and returned the npy merge
    # for a csv study)
    with pytest.raises(ValueError, match=r"study-options.json differs: format: 'npy' then, 'csv' now"):
        driver.run_sharded(SMALL, root, 2, backend="cpu", format="csv", plots=False)
    assert not (root / "merged" / "series.csv").exists()
    # an option given where it was left at its default is another option too
    with pytest.raises(ValueError, match=r"precision: 'f32' then, 'f64' now"):
        driver.run_sharded(SMALL, root, 2, backend="cpu", format="npy", precision="f64", plots=False)
    # the same options again find the shards finished; where a task runs is not an option
    again = driver.run_sharded(SMALL, root, 2, backend="cpu", format="npy", plots=False, adapter=None)
    assert all(t["skipped"] for t in again.tasks)


def test_ray_driver_takes_an_option_at_its_default_and_numpy_or_path_values_as_the_same(tmp_path):
    # (check_root alone: no task runs) format omitted and format="npy" (qb.study's default)
    # are the same study, as are seed=7 and numpy's int64(7), and a Path and its str; each
    # was refused as other options ("format: None then, 'npy' now", "seed: 7 then, '7' now")
    np = pytest.importorskip("numpy")
    from pathlib import Path

    root = tmp_path / "study"
    (root / "shards" / "shard-0").mkdir(parents=True)
    driver.check_root(root, SMALL, 2, {"backend": "cpu", "seed": 7, "devices": [str(tmp_path)]})
    driver.check_root(root, SMALL, 2, {"backend": "cpu", "format": "npy", "seed": np.int64(7), "devices": (Path(tmp_path),)})
    with pytest.raises(ValueError, match=r"seed: 7 then, 8 now"):
        driver.check_root(root, SMALL, 2, {"backend": "cpu", "seed": np.int64(8), "devices": [str(tmp_path)]})
    with pytest.raises(ValueError, match=r"format: 'npy' then, 'csv' now"):
        driver.check_root(root, SMALL, 2, {"backend": "cpu", "format": "csv", "seed": 7, "devices": [str(tmp_path)]})


def test_ray_driver_refuses_finished_shards_whose_options_were_not_recorded(tmp_path, qbat_bin, local_ray):
    # A root from before the options were recorded: its finished shards ran with options no
    # one knows. They were skipped and merged as this call's (npy for a csv study), and this
    # call's options recorded as theirs.
    root = tmp_path / "study"
    driver.run_sharded(SMALL, root, 2, backend="cpu", format="npy", plots=False)
    (root / "study-options.json").unlink()
    with pytest.raises(ValueError, match=r"study-options.json"):
        driver.run_sharded(SMALL, root, 2, backend="cpu", format="csv", plots=False)
    assert not (root / "study-options.json").exists()
    assert not (root / "merged" / "series.csv").exists()
