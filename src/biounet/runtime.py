"""What this machine can do (devices, reduced precision, threads) and the process-wide state a run touches.

PyTorch's thread count, the global random generators and the ``biounet`` loggers belong to the whole
process; a training run started inside a napari session or a notebook must leave them as it found them.
:func:`torch_threads`, :func:`preserved_rng_state`, :func:`logging_to` and :func:`console_logging` change
them for the length of a ``with`` block and restore them afterwards.

On CPUs with AVX-512 BF16 (or AMX), bfloat16 autocast with channels_last memory format is about 3x
faster than float32 for the U-Net's convolutions (oneDNN); elsewhere it is slower, so ``"auto"``
picks it only where the instruction set is there.  On CUDA, ``"auto"`` picks float16 autocast
(bfloat16 where the GPU supports it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import random
import sys
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True where the CPU executes bfloat16 dot products natively (AVX-512 BF16 or AMX-BF16).

    Read from ``/proc/cpuinfo`` (Linux); ``BIOUNET_CPU_BF16=0/1`` overrides the detection.
    """
    forced = os.environ.get("BIOUNET_CPU_BF16")
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` -> :func:`default_device`; anything else as given."""
    if device is None or device == "auto":
        return default_device()
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into a concrete precision for ``device``; check the others.

    Returns one of ``"fp32"``, ``"bf16"``, ``"fp16"``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("fp16 autocast is for CUDA; on CPU use bf16 or fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for a resolved precision (``fp32`` gives a no-op context)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(precision: str, device: torch.device, spatial_dims: int) -> torch.memory_format:
    """channels_last(_3d) for the fast CPU path, contiguous otherwise."""
    if device.type == "cpu" and precision == "bf16":
        return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    if device.type == "cuda":
        return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    return torch.contiguous_format


def available_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA free memory, or the system's available RAM (psutil)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily set PyTorch's intra-op threads (``None`` keeps the current setting)."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(num_threads)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def preserved_rng_state() -> Iterator[None]:
    """Restore the global generators of ``random``, ``numpy.random`` and ``torch`` (CPU, and CUDA where it was
    initialised) on exit, so that seeding inside the block does not change the caller's random streams."""
    python, numpy_state, cpu = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def logging_to(
    handler: logging.Handler, level: int = logging.INFO, *, name: str = "biounet", exact: bool = False,
    propagate: bool | None = None,
) -> Iterator[logging.Handler]:
    """Send logger ``name``'s records to ``handler`` inside the block; restore the logger on exit.

    The logger's level is lowered to ``level`` where it would drop those records (``exact``: set to
    ``level``, also upwards, e.g. WARNING for ``--quiet``); ``propagate`` is set when given. On exit the
    handler is removed and closed and the level and propagation are as before.
    """
    logger = logging.getLogger(name)
    level_before, propagate_before = logger.level, logger.propagate
    logger.addHandler(handler)
    if exact or logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    if propagate is not None:
        logger.propagate = propagate
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(level_before)
        logger.propagate = propagate_before


def console_logging(quiet: bool = False, fmt: str = "biounet: %(message)s") -> contextlib.AbstractContextManager:
    """biounet's messages on stderr (INFO, or WARNING when ``quiet``), not passed on to the root logger:
    the one logging set-up of the command line and the demo (see :func:`logging_to`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    level = logging.WARNING if quiet else logging.INFO
    handler.setLevel(level)  # the handler's own level: a train.log handler lowers the logger's level to INFO
    return logging_to(handler, level, exact=True, propagate=False)
