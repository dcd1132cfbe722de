"""Helpers shared by the benchmark sections: timing with medians, peak RSS of a child process, peers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BIOUNET_SHARED_DATA", REPO.parent / "shared" / "data"))


def median_seconds(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_child(code: str, timeout: float = 1800) -> dict[str, Any]:
    """Run Python ``code`` in a fresh interpreter; it must print one JSON line last. Adds ``peak_rss_mib``.

    Peak RSS is the child's maximum resident set size (``ru_maxrss`` of the waited-for child), so each
    measurement starts from a clean process and is not inflated by earlier ones.
    """
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # ru_maxrss of RUSAGE_CHILDREN is the max over all children so far; the child reports its own too
    result.setdefault("peak_rss_mib", max(after, before) / 1024)
    return result


def import_torchvision_stub() -> None:
    """Let smp/timm import beside the CPU torch build (see ../shared/REFERENCE.md).

    PyPI's torchvision wheel links the CUDA torch; its C operators fail to register. Declaring the two
    schemas it looks up lets its pure-Python parts (the ResNet encoder smp uses) import. No torchvision
    operator is called by the benchmarked models.
    """
    import torch

    try:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import_torchvision_stub._lib = lib  # keep the library alive
    except RuntimeError:
        pass


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
