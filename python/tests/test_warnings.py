"""The library's notes and warnings reach Python: a ``WARNING: `` line is a `qb.QbatWarning`, a
note is written to ``sys.stderr`` (what Jupyter shows in the cell), and neither goes to fd 2
(the Jupyter server's console); the CLI still writes both to its stderr."""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pytest

import qbat_gpu as qb
from qbat_gpu import _progress
from conftest import long_spin_pair, run_cli

# alpha = 2 in 5 Fock levels: the Fock tail is far above its threshold (a WARNING)
FOCK = {"model": "cavity-cells", "params": {"g": 0.2, "alpha": [2.0, 0.0], "n_fock": 4},
        "time": {"dt": 0.01, "t_end": 0.5, "samples": 3},
        "output": {"measures": ["energy_b", "photon_number", "fock_tail"]}}
# an adapter with the CPU engine: a note, on any machine; the CLI's, and as Python relays it,
# naming the keywords the caller gave
NOTE = "note: --adapter nope ignored: --backend cpu does not use a GPU"
PY_NOTE = 'note: adapter nope ignored: backend="cpu" does not use a GPU'
LONG = long_spin_pair(20.0, 1000)
SHORT = long_spin_pair(0.1, 4)


def cli_stderr(qbat_bin, tmp_path, config, *args: str) -> str:
    cfg = tmp_path / "cli.toml"
    cfg.write_text(qb.dict_to_toml(config) if isinstance(config, dict) else config)
    return run_cli(qbat_bin, "run", str(cfg), "--out", str(tmp_path / "cli"), "--no-progress", "--no-plots", *args).stderr


def test_a_warning_is_a_qbat_warning_with_the_cli_text(tmp_path, qbat_bin, capfd):
    cli = [line for line in cli_stderr(qbat_bin, tmp_path, FOCK, "--backend", "cpu").splitlines() if line.startswith("WARNING: ")]
    assert len(cli) == 1 and "fock_tail" in cli[0], cli
    assert issubclass(qb.QbatWarning, UserWarning) and "QbatWarning" in qb.__all__
    with pytest.warns(qb.QbatWarning) as run_said:
        r = qb.run(FOCK, backend="cpu", progress=False)
    with pytest.warns(qb.QbatWarning) as study_said:
        qb.study(FOCK, tmp_path / "s", backend="cpu", progress=False, plots=False)
    # the CLI's text, less its advice of --auto-fock, an option Python does not have
    assert cli[0].endswith(", or --auto-fock"), cli
    for said in (run_said, study_said):
        texts = [f"WARNING: {w.message}" for w in said if issubclass(w.category, qb.QbatWarning)]
        assert texts == [cli[0].removesuffix(", or --auto-fock")], texts
        # attributed to this file (the caller), not to the package
        assert all(w.filename == __file__ for w in said), [w.filename for w in said]
    assert cli[0][len("WARNING: "):] in r.info["notes"]
    # not also on fd 2 (nor on sys.stderr)
    assert "fock_tail" not in capfd.readouterr().err


def test_warnings_filters_apply_to_it(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", qb.QbatWarning)
        with pytest.raises(qb.QbatWarning, match="fock_tail exceeds"):
            qb.run(FOCK, backend="cpu", progress=False)
        # raised once the study is done, not cancelling it: its output is whole
        with pytest.raises(qb.QbatWarning, match="fock_tail exceeds"):
            qb.study(FOCK, tmp_path / "s", backend="cpu", progress=False, plots=False)
        assert qb.open(tmp_path / "s").info["fock_tail"]["flags"]["count"] == 1
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=qb.QbatWarning)
        qb.run(FOCK, backend="cpu", progress=False)
    assert not said, [str(w.message) for w in said]


def test_a_note_is_written_to_sys_stderr(tmp_path, qbat_bin, capsys):
    cli = cli_stderr(qbat_bin, tmp_path, SHORT, "--backend", "cpu", "--adapter", "nope")
    assert NOTE in cli.splitlines(), cli
    capsys.readouterr()
    qb.run(SHORT, backend="cpu", adapter="nope", progress=False)
    # capsys holds what Python wrote to sys.stderr, not fd 2
    assert capsys.readouterr().err.splitlines() == [PY_NOTE]
    # and from a study
    qb.study(SHORT, tmp_path / "s", backend="cpu", adapter="nope", progress=False, plots=False)
    assert PY_NOTE in capsys.readouterr().err.splitlines()


def test_nothing_goes_to_fd_2(tmp_path, capfd):
    # capfd sees fd 2 and sys.stderr together: once is through sys.stderr alone
    qb.run(SHORT, backend="cpu", adapter="nope", progress=False)
    assert capfd.readouterr().err.splitlines() == [PY_NOTE]
    with pytest.warns(qb.QbatWarning):
        qb.run(FOCK, backend="cpu", progress=False)
    assert capfd.readouterr().err == ""


def test_notes_are_relayed_while_the_run_goes(monkeypatch, capsys):
    progress = []

    class Spy(_progress.Poll):
        def __call__(self, elapsed, done=0, total=0):
            progress.append((done, total))
            super().__call__(elapsed, done, total)

    written = []
    monkeypatch.setattr(_progress, "_write", lambda text: written.append((text, progress[-1] if progress else None)))
    monkeypatch.setattr(qb, "progress_for", lambda on, what: (False, Spy()))
    qb.run(LONG, backend="cpu", adapter="nope", verify=0)
    if len(progress) < 2:
        pytest.skip("the run ended before its first poll")
    assert [t for t, _ in written] == [PY_NOTE + "\n"]
    done, total = written[0][1]
    assert total == 1000 and done < total, f"relayed only at the end: {progress}"


def test_a_save_that_waits_says_so_while_it_waits(tmp_path, monkeypatch):
    """A save into an output that another commit holds (here a lock taken by the test) says so
    while it waits, not only once it returns; so do merge and the copy of a read output, which
    go the same way (`_progress.relayed_while`)."""
    fcntl = pytest.importorskip("fcntl")
    r = qb.run(SHORT, backend="cpu", progress=False)
    out = tmp_path / "o"
    r.save(out, plots=False)
    written = []
    monkeypatch.setattr(_progress, "_write", written.append)
    said = lambda: any("waiting for another commit" in t for t in written)  # noqa: E731
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    seen_while_held = threading.Event()

    def release() -> None:
        deadline = time.monotonic() + 20
        while not said() and time.monotonic() < deadline:
            time.sleep(0.02)
        if said():
            seen_while_held.set()
        os.close(fd)

    holder = threading.Thread(target=release)
    holder.start()
    r.save(out, plots=False, force=True)
    holder.join()
    assert seen_while_held.is_set(), f"the wait was said only after it: {written}"
    assert qb.open(out).series.shape == r.series.shape


def test_saving_an_opened_result_waits_for_a_commit_into_it_and_refuses_another_run(tmp_path, monkeypatch):
    """Saving a result opened from a directory copies the directory under its shared lock: a
    commit into it meanwhile (here the test's lock, another run's files moved in under it) is
    waited for, said while it waits, and the run found there then, not the one the result was
    opened from, is refused (ConfigError naming the directory), nothing written. It was saved
    as this result."""
    import shutil

    fcntl = pytest.importorskip("fcntl")
    src, other, copy = tmp_path / "src", tmp_path / "other", tmp_path / "copy"
    qb.run(SHORT, backend="cpu", progress=False).save(src, plots=False)
    qb.run(SHORT, backend="cpu", progress=False, seed=7).save(other, plots=False)
    opened = qb.open(src)
    written = []
    monkeypatch.setattr(_progress, "_write", written.append)
    said = lambda: any("waiting for another commit" in t for t in written)  # noqa: E731
    fd = os.open(src, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def commit_the_other_run() -> None:
        deadline = time.monotonic() + 20
        while not said() and time.monotonic() < deadline:
            time.sleep(0.02)
        for p in src.iterdir():
            p.unlink()
        for p in other.iterdir():
            shutil.copy(p, src / p.name)
        os.close(fd)

    committer = threading.Thread(target=commit_the_other_run)
    committer.start()
    try:
        with pytest.raises(qb.ConfigError, match="no longer holds the run") as e:
            opened.save(copy, plots=False)
    finally:
        committer.join()
    assert str(src) in str(e.value)
    assert said(), f"the save did not wait for the commit: {written}"
    assert not copy.exists()


def test_ctrl_c_stops_a_save_that_waits_for_another_commit(tmp_path):
    """Ctrl-C while a save waits for another commit's lock on its directory (here the test's)
    stops the wait at once: KeyboardInterrupt, nothing written, the output there the earlier
    run's, whole. It raised nothing until the lock was given back, and then wrote."""
    import _thread

    fcntl = pytest.importorskip("fcntl")
    r = qb.run(SHORT, backend="cpu", progress=False)
    other = qb.run(long_spin_pair(0.1, 5), backend="cpu", progress=False)
    out = tmp_path / "o"
    r.save(out, plots=False)
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            other.save(out, plots=False, force=True)
        assert time.monotonic() - t0 < 15, "the wait was not stopped"
    finally:
        timer.cancel()
        os.close(fd)
    back = qb.open(out)
    assert np.array_equal(back.series, r.series)
    assert sorted(os.listdir(tmp_path)) == ["o"], os.listdir(tmp_path)


def test_open_waits_for_a_commit_saying_so_and_ctrl_c_stops_the_wait(tmp_path, monkeypatch):
    """qb.open of an output that another commit holds (here the test's lock) says so while it
    waits, and Ctrl-C stops the wait at once (KeyboardInterrupt). It said nothing until the lock
    was given back, and Ctrl-C was raised only then: a commit stopped with `kill -STOP` kept
    the session's qb.open, and its Ctrl-C, for ever."""
    import _thread

    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "o"
    qb.run(SHORT, backend="cpu", progress=False).save(out, plots=False)
    written = []
    monkeypatch.setattr(_progress, "_write", written.append)
    said = lambda: any("waiting for another commit" in t for t in written)  # noqa: E731
    fd = os.open(out, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held, guard = [True], threading.Lock()

    def give_back() -> None:
        with guard:
            if held[0]:
                os.close(fd)
                held[0] = False

    # (given back after 15 s in any case: the test then fails, not hangs)
    release = threading.Timer(15.0, give_back)
    release.start()
    deadline = time.monotonic() + 10

    def interrupt_once_said() -> None:
        while not said() and time.monotonic() < deadline:
            time.sleep(0.02)
        _thread.interrupt_main()

    interrupter = threading.Thread(target=interrupt_once_said)
    interrupter.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            qb.open(out)
            time.sleep(1)  # (where the interrupt comes only after the open returned)
        assert said(), f"the wait was not said while it went on: {written}"
        assert time.monotonic() - t0 < 12, "Ctrl-C did not stop the wait"
    finally:
        interrupter.join()
        release.cancel()
        give_back()
    assert qb.open(out).series is not None


def test_the_lines_before_an_error_are_relayed(monkeypatch, capsys):
    class Boom(_progress.Poll):
        def __call__(self, *args):
            raise ValueError("stopped")

    monkeypatch.setattr(qb, "progress_for", lambda on, what: (False, Boom()))
    with pytest.raises(ValueError, match="stopped"):
        qb.run(LONG, backend="cpu", adapter="nope", verify=0)
    assert capsys.readouterr().err.splitlines() == [PY_NOTE]


def test_capture_can_be_turned_off(capfd):
    try:
        qb.set_stderr_capture(False)
        qb.run(SHORT, backend="cpu", adapter="nope", progress=False)
        # written to fd 2 as the CLI writes it (capfd sees fd 2, capsys would not)
        assert capfd.readouterr().err.splitlines() == [NOTE]
    finally:
        qb.set_stderr_capture(True)
    assert qb._native.take_stderr() == []


def test_a_warning_made_an_error_never_hides_the_exception_of_the_call(monkeypatch, capsys):
    """With warnings as errors, a call that raises raises its own exception (ConfigError, a
    Ctrl-C), not the QbatWarning of a line relayed on its way out: that line is written as
    text instead."""
    # a WARNING said and not yet relayed (the extension called directly), then a bad config
    qb._native.run(qb.dict_to_toml(FOCK), backend="cpu", progress=False, ticker=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", qb.QbatWarning)
        with pytest.raises(qb.ConfigError):
            qb.run({"model": "no-such-model"}, backend="cpu", progress=False)
    assert any(line.startswith("WARNING: fock_tail") for line in capsys.readouterr().err.splitlines())

    # a Ctrl-C in the run, after a WARNING was said: the KeyboardInterrupt is raised
    class Interrupt(_progress.Poll):
        def __call__(self, *args):
            raise KeyboardInterrupt

    qb._native.run(qb.dict_to_toml(FOCK), backend="cpu", progress=False, ticker=None)
    monkeypatch.setattr(qb, "progress_for", lambda on, what: (False, Interrupt()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", qb.QbatWarning)
        with pytest.raises(KeyboardInterrupt):
            qb.run(LONG, backend="cpu", verify=0)
    assert any(line.startswith("WARNING: fock_tail") for line in capsys.readouterr().err.splitlines())
