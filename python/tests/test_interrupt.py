"""The GIL is released during a run; Ctrl-C stops the computation and raises KeyboardInterrupt
promptly; the progress ticker sees the fraction of members done grow to 1."""

from __future__ import annotations

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
