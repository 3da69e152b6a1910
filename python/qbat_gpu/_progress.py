"""Progress display: a bar of members done, with the elapsed time and an estimate of the time
left, redrawn while a run goes: on stderr in a terminal (a ``\\r`` line), and in the cell's
output in Jupyter (an HTML ``<progress>`` bar through ``IPython.display``). The fraction comes
from the library's run control (``engine::Control``), which the engines advance per member,
slice of members, GPU chunk or study block. (The library's own indicatif bars are not used
from Python: they draw only in a terminal, and not in Jupyter, where stderr is not one.)"""

from __future__ import annotations

import html
import sys
import time
from typing import Optional, TextIO

WIDTH = 30


def _in_notebook() -> bool:
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and ip.__class__.__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except Exception:
        return False


def _duration(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}:{s:02d}"
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def bar_text(what: str, elapsed: float, done: int, total: int, finished: bool = False) -> str:
    """One line: ``qbat-gpu run [=====>    ]  42% 1680/4000 members, 3.1 s, ~4.2 s left``."""
    if total <= 0:
        return f"qbat-gpu: {what} {'done in' if finished else 'starting,'} {_duration(elapsed)}"
    frac = min(1.0, done / total)
    full = int(frac * WIDTH)
    bar = "=" * full + (">" if full < WIDTH else "") + " " * max(0, WIDTH - full - 1)
    tail = f"{_duration(elapsed)}"
    if done >= total:
        tail = f"done in {tail}"
    elif finished:
        tail = f"stopped after {tail}"
    elif done > 0:
        tail += f", ~{_duration(elapsed * (total - done) / done)} left"
    return f"qbat-gpu {what} [{bar}] {100 * frac:3.0f}% {done}/{total} members, {tail}"


class Ticker:
    """Called with (elapsed seconds, members done, members total) about every 100 ms while a
    run goes, and once when it ends; redraws at most every 0.2 s (and at 100 %)."""

    def __init__(self, what: str, terminal: bool = False, stream: Optional[TextIO] = None):
        self.what = what
        self.terminal = terminal
        self.stream = stream
        self.handle = None
        self.last = -1.0
        self.width = 0
        self.state = (0.0, 0, 0)
        self.t0 = time.monotonic()

    @property
    def fraction(self) -> float:
        """Members done / members total of the last call (0 before the total is known)."""
        _, done, total = self.state
        return min(1.0, done / total) if total > 0 else 0.0

    def __call__(self, elapsed: float, done: int = 0, total: int = 0) -> None:
        complete = total > 0 and done >= total
        self.state = (elapsed, done, total)
        if elapsed - self.last < 0.2 and not complete:
            return
        self.last = elapsed
        self._draw(bar_text(self.what, elapsed, done, total), done, total)

    def _draw(self, text: str, done: int, total: int) -> None:
        if self.terminal:
            out = self.stream or sys.stderr
            out.write("\r" + text.ljust(self.width))
            out.flush()
            self.width = len(text)
            return
        try:
            from IPython.display import display

            bundle = {"text/plain": text, "text/html": self._html(text, done, total)}
            if self.handle is None:
                self.handle = display(bundle, raw=True, display_id=True)
            else:
                self.handle.update(bundle, raw=True)
        except Exception:
            pass

    @staticmethod
    def _html(text: str, done: int, total: int) -> str:
        bar = f'<progress value="{done}" max="{max(total, 1)}" style="width: 20em"></progress> ' if total > 0 else ""
        return f"<div>{bar}<code>{html.escape(text)}</code></div>"

    def close(self) -> None:
        if self.terminal:
            if self.last >= 0:
                out = self.stream or sys.stderr
                out.write("\r" + " " * self.width + "\r")
                out.flush()
            return
        if self.handle is not None:
            elapsed, done, total = self.state
            self._draw(bar_text(self.what, max(elapsed, time.monotonic() - self.t0), done, total, finished=True), done, total)


def progress_for(progress: bool, what: str):
    """(rust_progress, ticker): the ticker in Jupyter and in a terminal, else nothing."""
    if not progress:
        return False, None
    if _in_notebook():
        return False, Ticker(what)
    if _stderr_is_terminal():
        return False, Ticker(what, terminal=True)
    return False, None


def finish(ticker: Optional[Ticker]) -> None:
    if ticker is not None:
        ticker.close()
