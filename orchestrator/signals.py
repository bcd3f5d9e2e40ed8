"""SIGTERM and SIGHUP take Ctrl-C's path in `ablate run`.

A batch system (Slurm, Kubernetes, `timeout`) stops a job with SIGTERM and a closed terminal sends
SIGHUP. Python's default for both ends the process at once: no block is cancelled, `status.json`
keeps saying "running" and Ray's own handler prints a stack dump. Inside `stop_signals_interrupt()`
they raise `Terminated` (a KeyboardInterrupt) in the main thread instead, so the driver cancels its
blocks, keeps every finished result, writes its status as cancelled, and the CLI exits 128 + signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, _frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_interrupt(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Within the block, the stop signals raise `Terminated` (main thread only; elsewhere a no-op).

    Install it after Ray has started: Ray's driver sets its own SIGTERM handler when it connects.
    The previous handlers come back on exit (a handler set from C reads as None: the default then).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
