"""Clean stops on Ctrl-C / SIGTERM: finish the current step, keep the file, save a checkpoint.

A KeyboardInterrupt raised inside a numba kernel surfaces as a chain of ``SystemError``s and can
leave arrays half-updated. :func:`graceful_stop` instead turns the first SIGINT/SIGTERM into a flag;
:class:`StopObserver` checks it after every mechanics step (outside any kernel) and raises
:class:`~tme_sim.errors.RunInterrupted`. A second Ctrl-C interrupts at once, as usual.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tme_sim.errors import RunInterrupted
from tme_sim.io.observers import Observer

if TYPE_CHECKING:
    from tme_sim.model import TMEModel


class StopFlag:
    """Set by the signal handler, read by :class:`StopObserver`."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self.signal_name is not None


class StopObserver(Observer):
    """Raises :class:`RunInterrupted` at the first step boundary after ``flag`` was set."""

    def __init__(self, flag: StopFlag) -> None:
        super().__init__(0.0)
        self.flag = flag

    def on_step(self, model: TMEModel) -> None:
        if self.flag:
            exc = RunInterrupted(f"stopped by {self.flag.signal_name} at t = {model.time:g} min")
            exc.signal_name = self.flag.signal_name
            raise exc


@contextlib.contextmanager
def graceful_stop(message: str = "stopping after this step (Ctrl-C again to abort now)") -> Iterator[StopFlag]:
    """Within the block, SIGINT/SIGTERM set the yielded flag instead of raising (main thread only)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {}

    def handler(signum: int, frame: object) -> None:
        if flag:  # a second signal: stop now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        flag.signal_name = signal.Signals(signum).name
        print(f"\n{flag.signal_name}: {message}", file=sys.stderr, flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    try:
        yield flag
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)
