"""Ctrl-C and SIGTERM during a run: finish the step, save, and say how to continue.

:class:`StopRequests` is installed by :meth:`biounet.training.trainer.Trainer.run` for the run's duration
only (the previous handlers are put back afterwards, so a notebook or napari keeps its own), and only in
the main thread (Python delivers signals there; elsewhere nothing is installed). The first SIGINT or
SIGTERM (cluster schedulers send it before they kill a job) is recorded: the trainer finishes its
current step, writes a checkpoint and the models, and ends the run. A second signal raises
:class:`Interrupted` at once: every file is written atomically, so nothing is left half-written.
Before the first step (reading data, weight maps) there is nothing to save, and the first signal
raises :class:`Interrupted` at once too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

#: The signals that stop a run gracefully.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal before it could save (``signum``: which one)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """Which stop signal arrived (``signum``, ``None`` before any); ``deferred``: whether the first one may wait."""

    def __init__(self) -> None:
        self.signum: int | None = None
        #: while True (the training loop), the first signal is recorded; otherwise it raises Interrupted
        self.deferred = False

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or not self.deferred:
            self.signum = signum
            raise Interrupted(signum)
        self.signum = signum

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handle SIGINT and SIGTERM inside the block (main thread only); the previous handlers are restored."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous: dict[int, Any] = {}
        try:
            for signum in SIGNALS:
                previous[signum] = signal.signal(signum, self._handle)
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def exit_status(signum: int) -> int:
    """The shell's exit status for a run stopped by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


__all__ = ["SIGNALS", "Interrupted", "StopRequests", "exit_status"]
