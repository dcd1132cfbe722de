"""What this machine can do: devices, reduced precision, threads.

On CPUs with AVX-512 BF16 (or AMX), bfloat16 autocast with channels_last memory format is about 3x
faster than float32 for the U-Net's convolutions (oneDNN); elsewhere it is slower, so ``"auto"``
picks it only where the instruction set is there.  On CUDA, ``"auto"`` picks float16 autocast
(bfloat16 where the GPU supports it).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Literal

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
