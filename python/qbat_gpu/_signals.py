"""SIGTERM and SIGHUP during a call that runs work (a batch system's time limit, ``scancel``,
``timeout``, a closed terminal) end the process as they end the CLI, after the call has cleaned
up as Ctrl-C has it clean up.

Python leaves both signals at their default action, which ends the process at once: a study
lost the blocks finished since its last checkpoint, and a merge or a save left its staging
directory (``.OUT.partial-PID-N``) for good. While a call runs on the main thread, `ending_by`
installs a handler for each of them that is still at its default action. The handler raises
`Terminated` in that thread, which cancels the call by the path Ctrl-C takes (the engines stop
at their next cancellation point, a study writes its pending blocks into its checkpoint, an
output not committed is removed); once the call has unwound, the handlers are restored and the
process ends by the signal with its default action (``-15`` in subprocess terms, 143 in a
shell), the outputs still uncommitted on other threads removed first, as the CLI does. A
second signal while the call stops ends the process at once.

A signal with a handler of the user's (set in Python, or outside it: ``faulthandler.register``'s),
or ignored (``nohup``: SIGHUP), is left as it is, and so
is a call on another thread (where Python cannot install a handler)."""

from __future__ import annotations

import signal
import threading
from typing import Any, Dict, Optional

from . import _native

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(SystemExit):
    """SIGTERM or SIGHUP during a call: raised in the call's thread to cancel it. The process
    then ends by the signal; where it ever reaches the caller instead, it exits Python with the
    status a shell gives that signal (128 + its number)."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def end(signum: int) -> None:
    """End the process by `signum` with its default action (the outputs still uncommitted on
    any thread removed first; `end_by_signal` sets the default action itself, where Python's
    `signal.signal` could first run a pending handler that raises); raises `Terminated` where
    the signal does not end the process."""
    _native.end_by_signal(signum)
    raise Terminated(signum)


class ending_by:  # noqa: N801 - used as a function: `with ending_by():`
    """Around a call that runs work: see the module's doc."""

    def __init__(self) -> None:
        self._previous: Dict[int, Any] = {}
        self._received: Optional[int] = None
        self._active = False

    def __enter__(self) -> "ending_by":
        if threading.current_thread() is threading.main_thread():
            try:
                for sig in SIGNALS:
                    # (at its default action as the kernel holds it: `signal.getsignal` says
                    # SIG_DFL of a handler set outside Python, faulthandler's)
                    if not _native.signal_at_default(sig):
                        continue
                    try:
                        signal.signal(sig, self._handler)
                    except (ValueError, OSError):  # (not the main interpreter)
                        continue
                    self._previous[sig] = signal.SIG_DFL
            except BaseException:
                # (a pending handler's exception, which `signal.signal` raises before it
                # changes anything: the handlers installed so far are taken back)
                self._restore()
                raise
        self._active = True
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if self._active and self._received is None:
            self._received = signum
            # every output this process writes stops, as on Ctrl-C (also where this is raised
            # from the progress display's code rather than from the wait's own check)
            _native.cancel_writes()
            raise Terminated(signum)
        # a second signal while the first's call stops, or one that came as the call ended
        end(signum)

    def _restore(self) -> Optional[BaseException]:
        """Each handler put back as it was; the first exception a pending handler raised
        meanwhile (which comes before its restore: it is tried again), if any."""
        raised: Optional[BaseException] = None
        for sig, previous in list(self._previous.items()):
            for _ in range(4):
                try:
                    signal.signal(sig, previous)
                    break
                except (ValueError, OSError):
                    break
                except BaseException as e:  # noqa: BLE001 - a pending Ctrl-C, a user's handler's
                    raised = raised or e
            del self._previous[sig]
        return raised

    def __exit__(self, *exc: Any) -> None:
        self._active = False
        # (restoring a handler runs one pending first: a signal just come ends the process here)
        raised = self._restore()
        if self._received is not None:
            end(self._received)
        if raised is not None:
            raise raised
