"""examples/slurm: array.sbatch run as a task would be (SLURM_* set by hand, no Slurm), and
submit.sh with a stand-in sbatch: finished shards, another study in the same output root, a
missing binary. (examples/slurm/test-local.sh runs them under a real Slurm.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

SLURM = REPO / "examples" / "slurm"

STUDY = """
model = "spin-pair"
[params]
wb = 1.0
wc = 1.0
j1 = 0.1
j2 = 0.1
[initial]
random = "haar"
[time]
dt = 0.01
t_end = 2.0
samples = 21
[ensemble]
size = 40
seed = 3
[output]
measures = ["energy_b", "concurrence"]
"""

if shutil.which("sha256sum") is None:
    pytest.skip("the Slurm scripts need sha256sum (coreutils)", allow_module_level=True)


def clean_env(**env: str) -> dict:
    """This process's environment without the scripts' settings, Slurm's or the test hooks',
    plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("QBAT", "SLURM_", "SBATCH_"))}
    return {**base, **env}


def task(cwd: Path, qbat_bin: Path, k: int, n: int, config: str = "s.toml", **env: str) -> subprocess.CompletedProcess:
    """Array task k of an array of n tasks, into ROOT (cwd/root)."""
    e = clean_env(QBAT=str(qbat_bin), QBAT_CONFIG=config, QBAT_OUT_ROOT="root", QBAT_BACKEND="cpu",
                  SLURM_ARRAY_JOB_ID="1", SLURM_ARRAY_TASK_ID=str(k), SLURM_ARRAY_TASK_COUNT=str(n), **env)
    return subprocess.run(["bash", str(SLURM / "array.sbatch")], cwd=cwd, env=e, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def work(tmp_path) -> Path:
    (tmp_path / "s.toml").write_text(STUDY)
    return tmp_path


def test_array_task_killed_after_its_commit_is_finished_on_requeue(work, qbat_bin):
    # attempt 1 stops between the commit of shard-0 and the removal of its staging directory
    first = task(work, qbat_bin, 0, 2, QBAT_INJECT_FAULT="exit-after-commit")
    assert first.returncode != 0
    shards = work / "root" / "shards"
    assert (shards / "shard-0" / "run.json").is_file() and (shards / ".shard-0.partial").is_dir()
    # the requeued task finds the shard finished (it used to try --resume: exit 2, "cannot
    # resume ... it has finished already")
    again = task(work, qbat_bin, 0, 2)
    assert again.returncode == 0, again.stderr
    assert "has finished already" in again.stdout


def test_array_task_refuses_another_study_in_its_root(work, qbat_bin):
    for k in (0, 1):
        p = task(work, qbat_bin, k, 2)
        assert p.returncode == 0, p.stderr
    assert "has finished already" in task(work, qbat_bin, 0, 2).stdout
    # an array of 4 over the shards of 2 (shard 0 used to report "finished already", exit 0)
    p = task(work, qbat_bin, 0, 4)
    assert p.returncode == 2 and "it has 2 shards, not 4" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    # another config, another QBAT_ARGS
    (work / "t.toml").write_text(STUDY.replace("seed = 3", "seed = 4"))
    p = task(work, qbat_bin, 0, 2, config="t.toml")
    assert p.returncode == 2 and "its config differs from t.toml" in p.stderr, p.stderr
    p = task(work, qbat_bin, 1, 2, QBAT_ARGS="--precision f64")
    assert p.returncode == 2 and "QBAT_ARGS" in p.stderr, p.stderr
    # the same study still finds its shards finished
    assert task(work, qbat_bin, 1, 2).returncode == 0


def test_array_task_checks_the_finished_shard_itself(work, qbat_bin):
    # a root recorded for 4 shards whose shard-0 is shard 0 of 2 (copied in): refused
    assert task(work, qbat_bin, 0, 2).returncode == 0
    other = work / "other"
    other.mkdir()
    (other / "s.toml").write_text(STUDY)
    assert task(other, qbat_bin, 1, 4).returncode == 0
    shutil.copytree(work / "root" / "shards" / "shard-0", other / "root" / "shards" / "shard-0")
    p = task(other, qbat_bin, 0, 4)
    assert p.returncode == 2 and "holds shard 0/2, not shard 0/4" in p.stderr, p.stderr
    # shards in a root without a record of their study (an older array.sbatch's): refused
    (work / "root" / "study.stamp").unlink()
    p = task(work, qbat_bin, 0, 2)
    assert p.returncode == 2 and "unrecorded study" in p.stderr, p.stderr


@pytest.fixture()
def sbatch_env(work) -> dict:
    """The environment of an sbatch on PATH that records its arguments (in work/sbatch.log)
    and prints a job id."""
    bin_dir = work / "fakebin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\necho "$*" >>"$FAKE_SBATCH_LOG"\necho "$(( $(wc -l <"$FAKE_SBATCH_LOG") + 100 ));cluster"\n')
    (bin_dir / "sbatch").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_SBATCH_LOG": str(work / "sbatch.log")}


def submit(cwd: Path, qbat: str, sbatch_env: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = clean_env(QBAT=qbat, QBAT_CONFIG="s.toml", QBAT_OUT_ROOT="root", **sbatch_env, **env)
    return subprocess.run(["bash", str(SLURM / "submit.sh"), *args], cwd=cwd, env=e, capture_output=True, text=True, timeout=60)


def test_submit_refuses_another_shard_count_or_qbat_args(work, qbat_bin, sbatch_env):
    p = submit(work, str(qbat_bin), sbatch_env)
    assert p.returncode == 0, p.stderr
    assert submit(work, str(qbat_bin), sbatch_env, "--array=0-3%2").returncode == 0
    assert submit(work, str(qbat_bin), sbatch_env, "--array=2", QBAT_SHARDS="4").returncode == 0
    # (each used to be submitted, exit 0)
    for args, env, why in [(["--array=0-7"], {}, "it has 4 shards, not 8"), (["-a", "0-1"], {}, "it has 4 shards, not 2"),
                           ([], {"QBAT_ARGS": "--precision f64"}, "its QBAT_ARGS are '', not '--precision f64'")]:
        p = submit(work, str(qbat_bin), sbatch_env, *args, **env)
        assert p.returncode == 2 and why in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
    assert (work / "root" / "study.stamp").read_text().splitlines()[1] == "shards 4"
    submitted = (work / "sbatch.log").read_text().splitlines()
    assert len(submitted) == 6  # three accepted submissions, two sbatch calls each
    # the tasks of the submitted array accept the record submit.sh wrote
    p = task(work, qbat_bin, 3, 4, config=str(work / "root" / "study.toml"))
    assert p.returncode == 0, p.stderr


def test_submit_names_qbat_when_the_binary_is_missing(work, sbatch_env):
    for qbat in (str(work / "no-such-dir" / "qbat-gpu"), str(work / "qbat-gpu"), "no-such-qbat-gpu"):
        p = submit(work, qbat, sbatch_env)
        # (a path in a missing directory used to stop at `realpath: ...: No such file or directory`, exit 1)
        assert p.returncode == 2 and "set QBAT" in p.stderr, p.stderr
    assert not (work / "sbatch.log").exists()


def test_a_submission_sbatch_refused_records_no_study(work, qbat_bin, sbatch_env):
    # sbatch refuses the first submission (a partition misspelt): the root records nothing, and
    # the corrected one, of another shard count, is taken (it was refused as another study)
    failing = dict(sbatch_env)
    bin_dir = work / "failbin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/bash\necho 'sbatch: error: invalid partition specified' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    failing["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    p = submit(work, str(qbat_bin), failing, "--array=0-7", "--partition=typo")
    assert p.returncode != 0
    assert not (work / "root" / "study.stamp").exists() and not (work / "root" / "study.toml").exists()
    p = submit(work, str(qbat_bin), sbatch_env, "--array=0-3")
    assert p.returncode == 0, p.stderr
    assert (work / "root" / "study.stamp").read_text().splitlines()[1] == "shards 4"


def test_array_tasks_refused_at_their_options_leave_the_root_free(work, qbat_bin):
    # a task run with a misspelt option fails before any shard starts; the corrected tasks are
    # not refused as another study
    p = task(work, qbat_bin, 0, 2, QBAT_ARGS="--precison f64")
    assert p.returncode == 2, p.stderr
    p = task(work, qbat_bin, 0, 2, QBAT_ARGS="--precision f64")
    assert p.returncode == 0, p.stderr
    assert task(work, qbat_bin, 1, 2, QBAT_ARGS="--precision f64").returncode == 0
