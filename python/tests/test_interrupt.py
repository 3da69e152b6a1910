"""The GIL is released during a run, and Ctrl-C raises KeyboardInterrupt promptly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time

import qbat_gpu as qb

LONG = """
model = "spin-pair"
[initial]
random = "haar"
[time]
dt = 0.001
t_end = 200.0
samples = 11
[ensemble]
size = 4000
"""


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


def test_ctrl_c_raises_keyboard_interrupt_promptly(tmp_path):
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
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "start"
    time.sleep(1.0)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out = p.stdout.readline().strip()
    waited = time.monotonic() - sent
    p.kill()
    p.wait()
    assert out.startswith("interrupted"), out
    assert waited < 2.0, f"KeyboardInterrupt took {waited:.2f} s"
