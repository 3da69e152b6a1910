"""The library's refusals, notes and warnings as a Python caller reads them: the options they
name are the keywords the caller gave (``force=True``, ``resume=True``, ``block_members``,
``backend="cpu"``, ``shard=(k, n)``), in ``.field`` and in the message, never the CLI's flags
(``--force``, ``--resume``, ...), which the CLI's own messages keep."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

import qbat_gpu as qb
from qbat_gpu import _native, _progress
from conftest import BLOCH, SPIN_PAIR, run_cli

# 40 members, in blocks of 5 (the fault `slow-blocks` holds each block, so that a study can be
# stopped with blocks checkpointed)
STUDY = BLOCH.replace("samples = 41", "samples = 41\n[ensemble]\nsize = 40")
DICKE = {"model": "dicke", "params": {"n_cells": 2, "n_fock": 4, "g": 0.1}, "time": {"dt": 0.02, "t_end": 0.2, "samples": 3}}
# a CLI flag: two dashes starting a word (not inside a path)
FLAG = re.compile(r"(?<![\w/.~-])--[a-z]")


def no_flag(text: str) -> str:
    assert not FLAG.search(text), text
    return text


def refused(field: str, f, error=qb.ConfigError) -> str:
    with pytest.raises(error) as e:
        f()
    assert e.value.field == field, (e.value.field, str(e.value))
    return no_flag(str(e.value))


def stopped_study(out, monkeypatch, capsys):
    """A study into `out` stopped (by its progress ticker) once a block is checkpointed: what it
    said on stderr."""

    class Stop(_progress.Poll):
        def __call__(self, elapsed, done=0, total=0):
            if done:
                raise ValueError("stopped")

    monkeypatch.setenv("QBAT_INJECT_FAULT", "slow-blocks=300")
    with monkeypatch.context() as m:
        m.setattr(qb, "progress_for", lambda on, what: (False, Stop()))
        with pytest.raises(ValueError, match="stopped"):
            qb.study(STUDY, out, backend="cpu", block_members=5, plots=False)
    return capsys.readouterr().err


@pytest.fixture
def interrupted(tmp_path, monkeypatch, capsys):
    """A stopped study: its directory, and what it said on stderr."""
    out = tmp_path / "run"
    return out, stopped_study(out, monkeypatch, capsys)


def test_an_interrupted_study_is_continued_with_resume_true(interrupted):
    out, said = interrupted
    # the note of the stop, and the refusal of a fresh run over it
    assert f"continue with resume=True, out={out}" in no_flag(said), said
    why = refused("out", lambda: qb.study(STUDY, out, backend="cpu", block_members=5, plots=False))
    assert f"continue it with resume=True, out={out}, or pass force=True to start over" in why


def test_a_resume_with_other_options_names_the_keywords(interrupted):
    out, _ = interrupted

    def resume(config=STUDY, **kw):
        a = dict(backend="cpu", block_members=5, plots=False, resume=True)
        a.update(kw)
        return lambda: qb.study(config, out, **a)

    assert "leave block_members out (or give 5) to resume it" in refused("block_members", resume(block_members=3))
    assert "give verify=8 to resume it" in refused("verify", resume(verify=3))
    why = refused("backend", resume(backend="reference"))
    assert 'started with backend="cpu"' in why and "add allow_mixed_backends=True to finish it on another engine" in why
    assert "pass force=True without resume=True to start over" in refused("resume", resume(format="csv"))


def test_an_output_in_the_way_is_replaced_with_force_true(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    assert "pass force=True to replace" in refused("out", lambda: qb.study(BLOCH, out, backend="cpu", plots=False))
    r = qb.run(BLOCH, backend="cpu", progress=False)
    assert "pass force=True to replace" in refused("out", lambda: r.save(out, plots=False))


def test_the_cli_keeps_its_flags(tmp_path, qbat_bin):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    cfg = tmp_path / "b.toml"
    cfg.write_text(BLOCH)
    p = run_cli(qbat_bin, "run", str(cfg), "--out", str(out), "--backend", "cpu", "--no-progress", check=False)
    assert p.returncode == 2 and "--out: " in p.stderr and "pass --force to replace" in p.stderr, p.stderr


def test_merge_names_its_dirs_and_a_shard(tmp_path):
    whole = tmp_path / "whole"
    qb.study(BLOCH, whole, backend="cpu", plots=False)
    assert "is not the output of a shard run" in refused("dirs", lambda: qb.merge([whole], tmp_path / "m"))


def test_a_shard_is_named_as_a_pair():
    assert "the shard index k of (k, n) must be in 0..2" in refused("shard", lambda: qb.study(BLOCH, "unused", shard=(3, 2), backend="cpu"))


def test_a_run_too_large_for_memory_is_split_with_qb_study():
    # a billion parameter points: beyond any machine's memory
    why = refused("ensemble", lambda: qb.run(SPIN_PAIR, ensemble=10**9, backend="cpu", progress=False))
    assert "split the run with qb.study(..., shard=(k, n))" in why


def test_the_gpu_refusals_name_backend_cpu():
    # the dicke GPU kernel keeps no states (a ConfigError where a GPU adapter is found, else the
    # DeviceError of none): either way the advice is backend="cpu"
    with pytest.raises((qb.ConfigError, qb.DeviceError)) as e:
        qb.run(DICKE, backend="gpu", save_states="reduced", progress=False)
    assert 'backend="cpu"' in no_flag(str(e.value)), str(e.value)
    if isinstance(e.value, qb.ConfigError):
        assert e.value.field == "save_states"


def test_notes_name_the_keywords(tmp_path, capsys):
    qb.study(BLOCH, tmp_path / "s", backend="cpu", devices="nope", progress=False, plots=False)
    assert "note: devices ignored: the run is not on the GPU" in no_flag(capsys.readouterr().err).splitlines()


def test_a_shard_refused_shows_the_pair_as_given():
    why = refused("shard", lambda: qb.study(BLOCH, "unused", shard=(0, 0), backend="cpu"))
    assert "the shard count n of (k, n) must be at least 1, got (0, 0)" in why and "0/0" not in why


def test_a_commit_cut_short_names_what_a_python_caller_runs(tmp_path):
    out = tmp_path / "o"
    qb.study(BLOCH, out, backend="cpu", plots=False, progress=False)
    # a commit's manifest, in before its old files went: the reader refuses the directory
    (out / f"..qbat-manifest.json.incoming-{2**31 - 2}").write_text("{}")
    with pytest.raises(qb.ConfigError) as e:
        qb.open(out)
    why = str(e.value)
    assert f"finish it with the CLI's `qbat-gpu analyze {out}` (qbat_gpu has no analyze), or write it again with force=True" in why, why
    assert "the run again" not in why


def test_a_merge_without_memory_for_the_analysis_names_the_cli(tmp_path, qbat_bin, monkeypatch, capsys):
    # the shards of the CLI's default study, which asks for its analysis at its end
    shards = [tmp_path / f"s{k}" for k in range(2)]
    for k, s in enumerate(shards):
        run_cli(qbat_bin, "--out", str(s), "--shard", f"{k}/2", "--ensemble", "40", "--backend", "cpu", "--no-progress", "--no-plots")
    monkeypatch.setenv("QBAT_INJECT_FAULT", "analysis-short")
    m = tmp_path / "m"
    qb.merge(shards, m, plots=False)
    said = capsys.readouterr().err
    assert f"run the CLI's `qbat-gpu analyze {m}` (qbat_gpu has no analyze) where more is left, or with a lower --max-members" in said, said


def test_the_caller_paths_are_left_as_given(tmp_path, monkeypatch):
    # a word ` --force` of a directory's name is the caller's text, not the flag
    parent = tmp_path / "x --force"
    with pytest.raises(qb.ConfigError) as e:
        qb.study(BLOCH, parent / "y", backend="cpu", plots=False, progress=False)
    assert e.value.field == "out" and f"the parent directory {parent} does not exist" in str(e.value), str(e.value)
    out = tmp_path / "a --force b"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    r = qb.run(BLOCH, backend="cpu", progress=False)
    for save in (lambda: r.save(out, plots=False), lambda: qb.study(BLOCH, out, backend="cpu", plots=False, progress=False)):
        with pytest.raises(qb.ConfigError) as e:
            save()
        assert e.value.field == "out", str(e.value)
        assert f"{out} exists and is not empty; choose a new directory, or pass force=True to replace" in str(e.value), str(e.value)
    # a path field is the caller's too (not a flag's name with its dashes made underscores)
    monkeypatch.chdir(tmp_path)
    named = Path("--my-dir")
    qb.study(BLOCH, named, backend="cpu", plots=False, progress=False)
    (named / "run.json").write_text("{}")
    with pytest.raises(qb.ConfigError) as e:
        qb.open(named)
    assert e.value.field == os.path.join("--my-dir", "run.json"), (e.value.field, str(e.value))


def test_a_path_field_that_reads_as_a_flag_is_the_callers(tmp_path, monkeypatch):
    # `--my-dir` holds no flag, but as a field it read as one (`my_dir`)
    monkeypatch.chdir(tmp_path)
    named = Path("--my-dir")
    qb.study(BLOCH, named, backend="cpu", plots=False, progress=False)
    (named / f"..qbat-manifest.json.incoming-{2**31 - 2}").write_text("{}")
    with pytest.raises(qb.ConfigError) as e:
        qb.open(named)
    assert e.value.field == "--my-dir", (e.value.field, str(e.value))
    assert str(e.value).startswith("--my-dir: holds a commit that was cut short"), str(e.value)


def test_a_path_as_the_library_respells_it_is_the_callers(tmp_path):
    # a missing directory named through `.`: the refusal advises it as its components spell it
    given = f"{tmp_path}/x --force/."
    with pytest.raises(qb.ConfigError) as e:
        qb.study(BLOCH, given, backend="cpu", plots=False, progress=False)
    assert e.value.field == "out", str(e.value)
    assert f"{given} does not exist" in str(e.value) and f"give it as {tmp_path}/x --force" in str(e.value), str(e.value)


def test_a_path_named_as_a_flag_leaves_the_advice_of_its_call_and_of_later_calls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    qb.study(BLOCH, "--force", backend="cpu", plots=False, progress=False)
    (Path("--force") / "mine.txt").write_text("x")
    with pytest.raises(qb.ConfigError) as e:
        qb.study(BLOCH, "--force", backend="cpu", plots=False, progress=False)
    assert e.value.field == "out" and str(e.value).startswith("out: --force "), str(e.value)
    assert not FLAG.search(str(e.value)[len("out: --force "):]), str(e.value)
    # a later call, into another directory, names the keyword
    other = Path("other")
    other.mkdir()
    (other / "mine.txt").write_text("x")
    assert "pass force=True" in refused("out", lambda: qb.study(BLOCH, other, backend="cpu", plots=False, progress=False))
    r = qb.run(BLOCH, backend="cpu", progress=False)
    assert "pass force=True" in refused("out", lambda: r.save(other, plots=False))


def test_a_note_said_during_a_call_keeps_its_path(tmp_path, monkeypatch, capsys):
    # the stop's note, taken after the call ended, shows the call's own path as given
    out = tmp_path / "r --force"
    said = stopped_study(out, monkeypatch, capsys)
    assert f"continue with resume=True, out={out}" in said, said


def test_a_deep_path_is_refused_at_once(tmp_path):
    # the texts of a path are worked out once a call, in its length (not its length times its
    # depth), and not at each poll of what was said
    deep = f"{tmp_path}/{'a/' * 8000}x --force"
    t0 = time.monotonic()
    with pytest.raises((qb.ConfigError, OSError)) as e:
        qb.study(BLOCH, deep, backend="cpu", plots=False, progress=False)
    took = time.monotonic() - t0
    assert took < 2, (took, str(e.value)[:200])
    t0 = time.monotonic()
    for _ in range(10):
        _native.take_stderr()
    assert time.monotonic() - t0 < 0.5
