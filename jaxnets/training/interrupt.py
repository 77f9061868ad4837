"""Ctrl-C and SIGTERM during training: stop after the current chunk of steps, not inside it.

`train()` runs its chunks inside `stop_requests()`: the first SIGINT or SIGTERM only records
that a stop was asked for; the loop checks between chunks, `train()` saves a checkpoint of the
last completed chunk (when it has a checkpoint path) and raises `Interrupted`, which is a
KeyboardInterrupt, so code that catches Ctrl-C still does. A second SIGINT stops at once
(a plain KeyboardInterrupt, nothing saved). Stopping between chunks keeps the parameters,
optimiser state and history consistent, so the checkpoint resumes exactly; a chunk is at most
a couple of seconds once compiled (`loop.CHUNK_SECONDS`).

Handlers can only be installed in the main thread; elsewhere `stop_requests` changes nothing,
and a signal the process ignores (SIG_IGN) stays ignored.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

__all__ = ["Interrupted", "stop_requests", "exit_status"]

_HANDLED = (signal.SIGINT, signal.SIGTERM)


def exit_status(signum: int) -> int:
    """The shell's status for a process ended by `signum`: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """Training was stopped by a signal. signum: SIGINT or SIGTERM; step, total: the updates
    applied and asked for; checkpoint: the stem saved at `step` (None: nothing saved)."""

    def __init__(self, signum, step=None, total=None, checkpoint=None, message=None):
        self.signum, self.step, self.total, self.checkpoint = int(signum), step, total, checkpoint
        if message is None:
            where = f" at step {step} of {total}" if step is not None else ""
            saved = (f"; checkpoint saved: continue with --resume {checkpoint}" if checkpoint is not None
                     else "; nothing was saved")
            message = f"interrupted by {signal.Signals(self.signum).name}{where}{saved}"
        super().__init__(message)


class _Requests:
    def __init__(self):
        self.signum = None

    def __call__(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_requests():
    """Within the block, the first SIGINT/SIGTERM sets `.signum` of the yielded object (which
    is also a callable `requested() -> bool`) instead of raising; a second SIGINT raises
    KeyboardInterrupt. The previous handlers come back afterwards."""
    requests = _Requests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return

    def handle(signum, frame):
        if requests.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if requests.signum is None:
            requests.signum = signum

    # A signal the process ignores stays ignored (a shell starts background jobs with SIGINT
    # ignored, so a Ctrl-C meant for the shell does not stop them).
    previous = {s: signal.getsignal(s) for s in _HANDLED if signal.getsignal(s) is not signal.SIG_IGN}
    for s in previous:
        signal.signal(s, handle)
    try:
        yield requests
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
