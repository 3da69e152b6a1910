"""Progress display: a bar of members done, with the elapsed time and an estimate of the time
left, redrawn while a run goes: on stderr in a terminal (a ``\\r`` line), and in the cell's
output in Jupyter (an HTML ``<progress>`` bar through ``IPython.display``). The fraction comes
from the library's run control (``engine::Control``), which the engines advance per member,
slice of members, GPU chunk or study block. (The library's own indicatif bars are not used
from Python: they draw only in a terminal, and not in Jupyter, where stderr is not one.)

Also the library's notes and warnings, which it writes to stderr: the extension queues them
(fd 2 is the Jupyter server's console, not the cell), and `relay` re-emits them in Python,
while a run goes and after every call that can say something."""

from __future__ import annotations

import html
import os
import sys
import threading
import time
import warnings
from typing import Any, Callable, Optional, TextIO, TypeVar

from . import _native
from ._native import QbatWarning

_T = TypeVar("_T")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_WARNING = "WARNING: "

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

    def clear(self) -> None:
        """Erase the terminal's bar line before other text is written (redrawn at the next call)."""
        if self.terminal and self.last >= 0:
            out = self.stream or sys.stderr
            out.write("\r" + " " * self.width + "\r")
            out.flush()
            self.last = -1.0

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


class Poll:
    """The ticker a native run calls about every 100 ms and once at its end: relays what the run
    said on stderr so far, then draws the progress bar (if there is one)."""

    def __init__(self, bar: Optional[Ticker] = None):
        self.bar = bar
        # a warning that a filter made an error, raised by `finish`: raised here it would
        # cancel the run (a study left uncommitted) for what was only said about it
        self.failed: Optional[Exception] = None

    def __call__(self, elapsed: float, done: int = 0, total: int = 0) -> None:
        try:
            relay(self.bar)
        except Exception as e:
            self.failed = e if self.failed is None else self.failed
        if self.bar is not None:
            self.bar(elapsed, done, total)


def progress_for(progress: bool, what: str):
    """(rust_progress, ticker): the ticker relays stderr, and draws a bar in Jupyter and in a
    terminal."""
    if not progress:
        return False, Poll()
    if _in_notebook():
        return False, Poll(Ticker(what))
    if _stderr_is_terminal():
        return False, Poll(Ticker(what, terminal=True))
    return False, Poll()


def finish(ticker: Optional[Poll], failing: bool = False) -> None:
    """After a run: close its bar, then relay what it said last. `failing`: the run raised, and
    its exception is the one to see; a warning that a filter makes an error is then written as
    text rather than raised in its place."""
    if ticker is not None and ticker.bar is not None:
        ticker.bar.close()
    relay(strict=not failing)
    if not failing and ticker is not None and ticker.failed is not None:
        raise ticker.failed


def _write(text: str) -> None:
    # (a missing or closed sys.stderr drops the text, as the library drops a failed write)
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def _warn(text: str) -> None:
    # attributed to the first caller outside the package (the user's line), whatever the depth
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        level, frame = level + 1, frame.f_back
    warnings.warn(text, QbatWarning, stacklevel=level)


def relay(bar: Optional[Ticker] = None, strict: bool = True) -> None:
    """Re-emit what the library said on stderr since the last relay: each ``WARNING: `` line as
    a `QbatWarning` (its text without the prefix), the others (notes) on ``sys.stderr``. A
    warning that a filter makes an error is raised once every line is out (`strict`), or
    written as its line (not `strict`: while another exception is on its way)."""
    lines = _native.take_stderr()
    if not lines:
        return
    if bar is not None:
        bar.clear()
    failed = None
    for k, line in enumerate(lines):
        try:
            if not line.startswith(_WARNING):
                _write(line + "\n")
                continue
            try:
                _warn(line[len(_WARNING):])
            except Exception as e:
                if not strict:
                    _write(line + "\n")
                failed = e if failed is None else failed
        except BaseException:
            # (a KeyboardInterrupt here: the lines taken from the queue are not lost)
            _write("".join(rest + "\n" for rest in lines[k + 1:]))
            raise
    if failed is not None and strict:
        raise failed


def relayed(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """A call into the extension, then what it said on stderr relayed (also when it raised,
    whose exception is then the one raised)."""
    try:
        out = call(*args, **kwargs)
    except BaseException:
        relay(strict=False)
        raise
    relay()
    return out


def relayed_while(call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`relayed` for a call that may take a while and says things as it goes (a save, a merge,
    a copy: "waiting for another commit" while another process writes the same directory): it
    runs on a thread of its own (the extension releases the GIL) while this one relays what it
    says every 100 ms, as a run's poll does. Ctrl-C meanwhile (or any exception a signal
    handler raises) stops the outputs this process is writing at their next write (a wait for
    another commit's lock at once) and is raised once the call has returned: its output is
    then whole, where the commit had begun, or not written at all."""
    box: dict = {}
    # (an Event, not Thread.join: a join that Ctrl-C interrupts may mark a running thread as
    # stopped, in CPython 3.11 and 3.12)
    done = threading.Event()

    def work() -> None:
        try:
            box["out"] = call(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - raised again below, in the caller's thread
            box["err"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="qbat-gpu-call", daemon=True).start()
    poll = Poll()
    interrupted: Optional[BaseException] = None
    while not done.is_set():
        try:
            if not done.wait(0.1):
                poll(0.0)
        except BaseException as e:  # noqa: BLE001 - Ctrl-C, or a signal handler's SystemExit
            interrupted = interrupted or e
            # (the call stops at its next write, or its wait for another commit's lock)
            _native.cancel_writes()
    # (the caller's own exception: the call's is the KeyboardInterrupt of its cancelling)
    failed = interrupted or box.get("err")
    finish(poll, failing=failed is not None)
    if failed is not None:
        raise failed
    return box["out"]
