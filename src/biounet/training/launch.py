"""``biounet train --nproc N``: run the same command under torchrun with ``N`` processes on this machine.

:func:`torchrun_command` spells ``python -m torch.distributed.run --nproc-per-node N --master-addr 127.0.0.1
--master-port PORT -m biounet train ARGS`` (a free loopback port; the workers' training is
:mod:`biounet.training.distributed`); :func:`run_torchrun` runs it and returns its exit status.

Signals: torchrun runs in its own session, so a Ctrl-C in the terminal reaches it once, through this
process, which forwards SIGINT and SIGTERM (a scheduler's warning) to torchrun; torchrun passes them to
the workers, which finish the step, write a checkpoint and exit (130 / 143). torchrun waits
:data:`SHUTDOWN_SECONDS` for that before it kills them. The exit status is torchrun's, or 128 + the signal
that was forwarded when torchrun reports a failure after it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

#: How long torchrun lets the workers save after a stop signal before it kills them (seconds).
SHUTDOWN_SECONDS = 600


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the rendezvous of a one-machine run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def torchrun_command(nproc: int, train_args: Sequence[str], port: int | None = None) -> list[str]:
    """The torchrun command line that trains with ``nproc`` processes on this machine (``train_args``: the
    arguments of ``biounet train`` without ``--nproc``)."""
    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, not {nproc}")
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(port or free_port()),
        "--shutdown-timeout", str(SHUTDOWN_SECONDS), "-m", "biounet", "train", *train_args,
    ]


def run_torchrun(command: Sequence[str]) -> int:
    """Run ``command`` (from :func:`torchrun_command`), forwarding SIGINT and SIGTERM; returns its exit status."""
    process = subprocess.Popen(list(command), start_new_session=True)
    forwarded: list[int] = []

    def forward(signum: int, frame: object) -> None:
        forwarded.append(signum)
        process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if status < 0:  # torchrun itself died of a signal
        return 128 - status
    if status != 0 and forwarded:
        return 128 + forwarded[0]
    return status


__all__ = ["SHUTDOWN_SECONDS", "free_port", "run_torchrun", "torchrun_command"]
