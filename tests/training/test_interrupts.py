"""Signal handling of a run: installed only inside it, in the main thread; the first signal waits, a second does not."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from biounet.training.interrupts import Interrupted, StopRequests, exit_status


def test_handlers_are_installed_only_inside_the_block_and_restored():
    def previous(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, previous)
    try:
        stops = StopRequests()
        with stops.installed():
            assert signal.getsignal(signal.SIGTERM) == stops._handle
            stops.deferred = True
            os.kill(os.getpid(), signal.SIGTERM)  # recorded: the run finishes its step and saves
            assert stops.name == "SIGTERM"
            with pytest.raises(Interrupted) as second:  # a second one (e.g. while saving) stops at once
                os.kill(os.getpid(), signal.SIGINT)
            assert second.value.signum == signal.SIGINT and exit_status(second.value.signum) == 130
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_signal_before_the_first_step_stops_at_once_and_no_handler_outside_the_main_thread():
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a shell's background job
    stops = StopRequests()
    with stops.installed(), pytest.raises(Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    seen = []
    thread = threading.Thread(target=lambda: seen.append(StopRequests().installed().__enter__() is not None))
    thread.start()
    thread.join()
    assert seen == [True] and signal.getsignal(signal.SIGINT) is before
    assert exit_status(signal.SIGTERM) == 143
