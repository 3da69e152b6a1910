"""Progress display: an elapsed-time line, redrawn while a run goes, on stderr in a terminal and
in the cell's output in Jupyter. (The library's own bars cover some engines only, and not
Jupyter, where stderr is not a terminal.)"""

from __future__ import annotations

import sys
import time
from typing import Optional


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


class Ticker:
    """Called with the elapsed seconds about every 100 ms while a run goes; redraws every 0.5 s."""

    def __init__(self, what: str, terminal: bool = False):
        self.what = what
        self.terminal = terminal
        self.handle = None
        self.last = -1.0
        self.t0 = time.monotonic()

    def _text(self, elapsed: float, done: bool = False) -> str:
        return f"qbat-gpu: {self.what} {'done in' if done else 'running,'} {elapsed:.1f} s"

    def __call__(self, elapsed: float) -> None:
        if elapsed - self.last < 0.5:
            return
        self.last = elapsed
        if self.terminal:
            sys.stderr.write("\r" + self._text(elapsed))
            sys.stderr.flush()
            return
        try:
            from IPython.display import display

            if self.handle is None:
                self.handle = display({"text/plain": self._text(elapsed)}, raw=True, display_id=True)
            else:
                self.handle.update({"text/plain": self._text(elapsed)}, raw=True)
        except Exception:
            pass

    def close(self) -> None:
        if self.terminal:
            if self.last >= 0:
                sys.stderr.write("\r" + " " * (len(self._text(self.last)) + 8) + "\r")
                sys.stderr.flush()
            return
        if self.handle is not None:
            try:
                self.handle.update({"text/plain": self._text(time.monotonic() - self.t0, done=True)}, raw=True)
            except Exception:
                pass


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
