"""The GIL is released during a run; Ctrl-C stops the computation and raises KeyboardInterrupt
promptly; SIGTERM and SIGHUP stop it the same way and then end the process by the signal; the
progress ticker sees the fraction of members done grow to 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import qbat_gpu as qb
from conftest import long_spin_pair

LONG = long_spin_pair(200.0, 4000)


def test_gil_is_released_during_a_run():
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=count)
    t.start()
    try:
        t0 = time.monotonic()
        qb.run(LONG.replace("4000", "200"), backend="cpu", verify=0, progress=False)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
    assert elapsed > 0.3  # long enough to tell
    assert len([x for x in ticks if x >= t0]) >= 0.5 * elapsed / 0.01 * 0.5


def test_ctrl_c_stops_the_run_and_raises_keyboard_interrupt_promptly(tmp_path):
    # The child reports how long KeyboardInterrupt took, and the CPU time the process used in
    # the 1.5 s after it: a computation left running would keep the cores busy.
    script = tmp_path / "long.py"
    script.write_text(textwrap.dedent(f"""
        import time, qbat_gpu as qb
        print("start", flush=True)
        t0 = time.monotonic()
        try:
            qb.run({LONG!r}, backend="cpu", verify=0, progress=False)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {{time.monotonic() - t0:.2f}}", flush=True)
            c0 = time.process_time()
            time.sleep(1.5)
            print(f"cpu {{time.process_time() - c0:.3f}}", flush=True)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "start"
        time.sleep(1.0)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out = p.stdout.readline().strip()
        waited = time.monotonic() - sent
        cpu = p.stdout.readline().strip()
    finally:
        p.kill()
        p.wait()
    assert out.startswith("interrupted"), out
    assert waited < 2.0, f"KeyboardInterrupt took {waited:.2f} s"
    assert cpu.startswith("cpu"), cpu
    busy = float(cpu.split()[1])
    assert busy < 0.3, f"the computation went on after KeyboardInterrupt: {busy:.2f} s of CPU in 1.5 s"


def test_the_ticker_sees_the_fraction_grow_to_one():
    from qbat_gpu import _native

    calls = []
    _native.run(LONG.replace("4000", "400").replace("200.0", "50.0"), backend="cpu", verify=0, ticker=lambda *a: calls.append(a))
    assert calls, "the ticker was never called"
    assert all(len(c) == 3 for c in calls)
    totals = {c[2] for c in calls if c[2] > 0}
    assert totals == {400}, totals
    done = [c[1] for c in calls]
    assert done == sorted(done), done
    assert done[-1] == 400  # the last call, when the run has ended, is at 100 %
    assert len(calls) >= 2 and any(0 < d < 400 for d in done), f"no intermediate progress: {calls}"


def test_the_progress_bar_draws_the_fraction():
    import io

    from qbat_gpu._progress import Ticker

    out = io.StringIO()
    t = Ticker("run", terminal=True, stream=out)
    t(0.5, 100, 400)
    assert t.fraction == 0.25
    t(1.0, 400, 400)
    text = out.getvalue()
    assert " 25% 100/400 members" in text and "100% 400/400 members, done in 1.0 s" in text, text
    assert "[=======>" in text
    t.close()


def test_an_exception_in_the_ticker_stops_the_run():
    from qbat_gpu import _native

    def boom(elapsed, done, total):
        if elapsed > 0.3:
            raise ValueError("ticker failed")

    t0 = time.monotonic()
    with pytest.raises(ValueError, match="ticker failed"):
        _native.run(LONG, backend="cpu", verify=0, ticker=boom)  # a minute or more if it ran on
    assert time.monotonic() - t0 < 5.0


def test_ctrl_c_during_a_merge_stops_it_and_leaves_no_output(tmp_path):
    # The merge is held after its summary (the fault `slow-blocks`, a sleep there); Ctrl-C
    # then stops it at its next write: KeyboardInterrupt, no merged directory, no staging
    # directory beside it. (Once it ran to its end and only then raised.)
    from conftest import BLOCH
    shards = [str(qb.study(BLOCH, tmp_path / f"s{k}", shard=(k, 2), backend="cpu", progress=False, plots=False).dir) for k in range(2)]
    out = tmp_path / "merged"
    script = tmp_path / "merge.py"
    script.write_text(textwrap.dedent(f"""
        import time, qbat_gpu as qb
        print("start", flush=True)
        t0 = time.monotonic()
        try:
            qb.merge({shards!r}, {str(out)!r}, plots=False)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print(f"interrupted {{time.monotonic() - t0:.2f}}", flush=True)
    """))
    env = dict(os.environ, QBAT_INJECT_FAULT="slow-blocks=3000")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "start"
        # the merge has begun its output (its staging directory is there) when Ctrl-C comes
        deadline = time.monotonic() + 20.0
        while not any(x.name.startswith(".merged") for x in tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(x.name.startswith(".merged") for x in tmp_path.iterdir()), list(tmp_path.iterdir())
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        said = p.stdout.readline().strip()
    finally:
        p.kill()
        p.wait()
    assert said.startswith("interrupted"), said
    assert not out.exists(), "the merge was committed after Ctrl-C"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["merge.py", "s0", "s1"], list(tmp_path.iterdir())


def test_a_failing_ticker_stops_its_run_only_not_another_threads_merge(tmp_path, monkeypatch):
    # Ctrl-C stops every output the process writes; an exception from one run's ticker stops
    # that run alone (it once cancelled a merge on another thread as if Ctrl-C was pressed).
    from conftest import BLOCH
    from qbat_gpu import _native
    shards = [str(qb.study(BLOCH, tmp_path / f"s{k}", shard=(k, 2), backend="cpu", progress=False, plots=False).dir) for k in range(2)]
    monkeypatch.setenv("QBAT_INJECT_FAULT", "slow-blocks=2000")
    res = {}

    def merge():
        try:
            qb.merge(shards, tmp_path / "merged", plots=False)
            res["merge"] = "ok"
        except BaseException as e:  # noqa: BLE001 - reported below
            res["merge"] = repr(e)

    t = threading.Thread(target=merge)
    t.start()
    time.sleep(0.5)
    calls = []

    def boom(*a):
        calls.append(a)
        if len(calls) > 2:
            raise ValueError("ticker failed")

    with pytest.raises(ValueError, match="ticker failed"):
        _native.run(LONG, backend="cpu", verify=0, ticker=boom)
    t.join()
    assert res["merge"] == "ok", res["merge"]
    assert (tmp_path / "merged" / "stats.csv").is_file()


# ----- SIGTERM and SIGHUP: the call is cancelled as Ctrl-C cancels it, then the process ends
# by the signal (a batch system's time limit, `scancel`, `timeout`, as the CLI ends)

# A study of 16 blocks of 4 members, about 70 ms a block on the CPU engine.
STREAMED = long_spin_pair(800.0, 64)
STUDY = dict(backend="cpu", verify=0, progress=False, plots=False, series=False, block_members=4)

# (the child starts with the signals' default actions, whatever the test process was started with)
DEFAULTS = "import signal\nfor s in (signal.SIGTERM, signal.SIGHUP):\n    signal.signal(s, signal.SIG_DFL)\n"


def _done(staging):
    return json.loads((staging / "checkpoint.json").read_text())["progress"]["done"]


def _wait_for(what, deadline_s=20.0):
    deadline = time.monotonic() + deadline_s
    while not what() and time.monotonic() < deadline:
        time.sleep(0.02)
    return what()


def test_sigterm_checkpoints_the_study_and_ends_the_process_by_the_signal(tmp_path):
    # Only the first block is checkpointed as it goes (the fault `checkpoint-once`): the blocks
    # finished since are in the checkpoint only if the cancel wrote them, as Ctrl-C's does
    # (SIGTERM's default action lost them). The process then ends by SIGTERM, and the resumed
    # run equals an uninterrupted one.
    out = tmp_path / "o"
    staging = tmp_path / ".o.partial"
    script = tmp_path / "study.py"
    script.write_text(DEFAULTS + textwrap.dedent(f"""
        import qbat_gpu as qb
        print("start", flush=True)
        qb.study({STREAMED!r}, {str(out)!r}, **{STUDY!r})
        print("finished", flush=True)
    """))
    env = dict(os.environ, QBAT_INJECT_FAULT="checkpoint-once")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "start"
        assert _wait_for(lambda: (staging / "checkpoint.json").is_file()), "the study never wrote its first checkpoint"
        time.sleep(0.3)  # a few more blocks
        p.send_signal(signal.SIGTERM)
        said, err = p.communicate(timeout=20)
    finally:
        p.kill()
        p.wait()
    assert "finished" not in said, "the study ended before SIGTERM: make it longer"
    assert p.returncode == -signal.SIGTERM, (p.returncode, err)
    assert "the checkpointed blocks are kept" in err, err
    done = _done(staging)
    assert len(done) >= 2, f"the blocks finished after the first checkpoint were lost: {done}"
    assert not out.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == [".o.partial", "study.py"], list(tmp_path.iterdir())

    resumed = qb.study(STREAMED, out, resume=True, **STUDY)
    assert resumed.info["blocks"]["resumed"] == len(done)
    whole = qb.study(STREAMED, tmp_path / "whole", **STUDY)
    for name in ("stats.csv", "summary.csv"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o", "study.py", "whole"], list(tmp_path.iterdir())


def _merge_child(tmp_path, fault_ms):
    """A child merging two shards, held after its summary (the fault `slow-blocks`), once its
    staging directory is there; the shards and the listing of tmp_path before it."""
    from conftest import BLOCH
    shards = [str(qb.study(BLOCH, tmp_path / f"s{k}", shard=(k, 2), backend="cpu", progress=False, plots=False).dir) for k in range(2)]
    script = tmp_path / "merge.py"
    script.write_text(DEFAULTS + textwrap.dedent(f"""
        import qbat_gpu as qb
        print("start", flush=True)
        qb.merge({shards!r}, {str(tmp_path / "merged")!r}, plots=False)
        print("finished", flush=True)
    """))
    env = dict(os.environ, QBAT_INJECT_FAULT=f"slow-blocks={fault_ms}")
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdout.readline().strip() == "start"
    if not _wait_for(lambda: any(x.name.startswith(".merged.partial") and (x / "summary.csv").exists() for x in tmp_path.iterdir())):
        p.kill()
        raise AssertionError(f"the merge never began its output: {list(tmp_path.iterdir())}")
    return p


def test_sighup_stops_a_merge_leaves_nothing_and_ends_by_the_signal(tmp_path):
    p = _merge_child(tmp_path, 1000)
    try:
        p.send_signal(signal.SIGHUP)
        said, err = p.communicate(timeout=20)
    finally:
        p.kill()
        p.wait()
    assert "finished" not in said
    assert p.returncode == -signal.SIGHUP, (p.returncode, err)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["merge.py", "s0", "s1"], list(tmp_path.iterdir())


def test_a_second_sigterm_ends_at_once_and_still_leaves_nothing(tmp_path):
    # The merge is held 20 s: the first SIGTERM stops it at its next write, after that; the
    # second ends the process at once, its staging directory removed first.
    p = _merge_child(tmp_path, 20000)
    try:
        p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        sent = time.monotonic()
        p.send_signal(signal.SIGTERM)
        said, err = p.communicate(timeout=20)
        waited = time.monotonic() - sent
    finally:
        p.kill()
        p.wait()
    assert p.returncode == -signal.SIGTERM, (p.returncode, err)
    assert waited < 5.0, f"the second SIGTERM took {waited:.2f} s"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["merge.py", "s0", "s1"], list(tmp_path.iterdir())


def test_a_users_sigterm_handler_is_kept_and_an_ignored_sighup_stays_ignored(tmp_path):
    # The handler is called, and the run goes on to its end (it is the user's to stop it); an
    # ignored SIGHUP (nohup) does nothing. Both are the dispositions after the call.
    script = tmp_path / "own.py"
    script.write_text(textwrap.dedent(f"""
        import os, signal, threading, time, qbat_gpu as qb
        calls = []
        def mine(signum, frame):
            calls.append(signum)
        signal.signal(signal.SIGTERM, mine)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        def send():
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGHUP)
        threading.Thread(target=send).start()
        t0 = time.monotonic()
        r = qb.run({long_spin_pair(500.0, 96)!r}, backend="cpu", verify=0, progress=False)
        print(len(r), f"{{time.monotonic() - t0:.2f}}", calls, signal.getsignal(signal.SIGTERM) is mine,
              signal.getsignal(signal.SIGHUP) == signal.SIG_IGN, flush=True)
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    members, elapsed, *rest = p.stdout.strip().split(maxsplit=2)
    assert float(elapsed) > 0.5, f"the run ended before the signals came ({elapsed} s): make it longer"
    assert (members, rest) == ("96", [f"[{int(signal.SIGTERM)}] True True"]), p.stdout


def test_the_dispositions_are_restored_after_every_call():
    from qbat_gpu._signals import ending_by
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.signal(sig, signal.SIG_DFL)
        try:
            with ending_by():
                assert signal.getsignal(sig) != signal.SIG_DFL  # the package's, during a call
            for boom in (KeyboardInterrupt, ValueError):
                with pytest.raises(boom):
                    with ending_by():
                        raise boom()
                assert signal.getsignal(sig) == signal.SIG_DFL
            # (a call on another thread leaves them: Python takes handlers on the main thread only)
            seen = []

            def on_a_thread():
                with ending_by():
                    seen.append(signal.getsignal(sig))

            t = threading.Thread(target=on_a_thread)
            t.start()
            t.join()
            assert seen == [signal.SIG_DFL]
            qb.run(long_spin_pair(1.0, 4), backend="cpu", verify=0, progress=False)
            with pytest.raises(qb.ConfigError):
                qb.run(long_spin_pair(1.0, 4), backend="tpu", progress=False)
            assert signal.getsignal(sig) == signal.SIG_DFL
        finally:
            signal.signal(sig, previous)


def test_a_handler_set_outside_python_is_kept(tmp_path):
    # faulthandler sets its handler with sigaction, so `signal.getsignal` still says SIG_DFL:
    # the package asks the kernel. The stacks are dumped at each SIGTERM, during the call and
    # after it, and the run goes on to its end.
    dump = tmp_path / "stacks.txt"
    script = tmp_path / "fh.py"
    script.write_text(DEFAULTS + textwrap.dedent(f"""
        import faulthandler, os, signal, subprocess, time, qbat_gpu as qb
        out = open({str(dump)!r}, "w")
        faulthandler.register(signal.SIGTERM, file=out, chain=False)
        # (sent by another process: faulthandler walks every Python thread's frames, and a
        # sending thread of this process that ends meanwhile is freed under its walk, CPython's
        # own race, which crashed about one run in ten)
        sender = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -TERM {{os.getpid()}}"])
        t0 = time.monotonic()
        r = qb.run({long_spin_pair(500.0, 96)!r}, backend="cpu", verify=0, progress=False)
        elapsed = time.monotonic() - t0
        sender.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print(len(r), f"{{elapsed:.2f}}", flush=True)
    """))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stderr)
    members, elapsed = p.stdout.split()
    assert float(elapsed) > 0.5, f"the run ended before the signal came ({elapsed} s): make it longer"
    assert members == "96"
    assert dump.read_text().count("most recent call first") >= 2, dump.read_text()


def test_a_pending_handlers_exception_leaves_no_handler_of_the_packages(monkeypatch):
    # `signal.signal` runs a pending handler first, and its exception (a Ctrl-C, a user's
    # alarm) comes out of it before it changes anything: on entry, the handlers installed so far
    # are taken back; on exit, every one is still restored and the exception is raised.
    from qbat_gpu import _signals
    from qbat_gpu._signals import ending_by
    real = signal.signal
    previous = {s: real(s, signal.SIG_DFL) for s in _signals.SIGNALS}
    try:
        for fail_at in range(1, 2 * len(_signals.SIGNALS) + 1):
            calls = []

            def flaky(sig, handler):
                calls.append(sig)
                if len(calls) == fail_at:
                    raise KeyboardInterrupt()
                return real(sig, handler)

            monkeypatch.setattr(signal, "signal", flaky)
            with pytest.raises(KeyboardInterrupt):
                with ending_by():
                    pass
            monkeypatch.setattr(signal, "signal", real)
            for s in _signals.SIGNALS:
                assert signal.getsignal(s) == signal.SIG_DFL, (fail_at, s, signal.getsignal(s))
    finally:
        for s, h in previous.items():
            real(s, h)
