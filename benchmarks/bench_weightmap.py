"""Benchmark: the paper's border weights (eq. 2), one distance transform per colour vs one per cell.

``run(quick)`` returns the measured numbers: seconds of :func:`biounet.losses.border_weights` (fast) and
:func:`biounet.losses.border_weights_bruteforce` on a synthetic image of touching discs and on the real
DSB 2018 image with the most nuclei, the number of distance transforms each needs, and the largest
difference between the two (the documented bound is ``1e-6 * w0 = 1e-5``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from biounet.io.images import read_image
from biounet.losses import border_cutoff, border_weights, border_weights_bruteforce, cell_colouring

SHARED_DATA = Path(
    os.environ.get("BIOUNET_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def touching_discs(shape: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """Instance map of up to ``count`` random discs (radius 8-16 px) packed with 1-2 px gaps."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    instances = np.zeros(shape, dtype=np.int32)
    centres = np.empty((0, 2))
    radii = np.empty(0)
    for _ in range(count * 200):
        if len(radii) == count:
            break
        centre, radius = rng.uniform((0, 0), shape), rng.uniform(8.0, 16.0)
        clearance = np.sqrt(((centres - centre) ** 2).sum(axis=1)) - radii - radius
        if clearance.size and clearance.min() < rng.uniform(1.0, 2.0):
            continue
        centres = np.vstack([centres, centre])
        radii = np.append(radii, radius)
        instances[((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2) & (instances == 0)] = len(radii)
    return instances


def dsb_instances(data: Path = SHARED_DATA) -> tuple[str, np.ndarray] | None:
    """The DSB 2018 fluorescence image with the most nuclei as an instance map, or None without the data."""
    folder = data / "dsb2018_nuclei_fluo256" / "stage1_train"
    if not folder.is_dir():
        return None
    sample = max(folder.iterdir(), key=lambda d: len(list((d / "masks").glob("*.png"))))
    masks = sorted((sample / "masks").glob("*.png"))
    instances = np.zeros(np.squeeze(read_image(masks[0])).shape, dtype=np.int32)
    for i, mask in enumerate(masks, start=1):
        instances[np.squeeze(read_image(mask)) > 0] = i
    return sample.name, instances


def best_time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Smallest wall time (s) of ``repeats`` calls and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def compare(instances: np.ndarray, repeats: int) -> dict[str, float]:
    """Fast vs brute-force border weights on one instance map (w0 = 10, sigma = 5 px)."""
    fast_s, fast = best_time(lambda: border_weights(instances), repeats)
    brute_s, exact = best_time(lambda: border_weights_bruteforce(instances), 1)
    colours = cell_colouring(instances, border_cutoff(5.0))
    return {
        "cells": int(np.count_nonzero(colours >= 0)),
        "distance_transforms_fast": int(colours.max() + 1),
        "fast_s": fast_s,
        "bruteforce_s": brute_s,
        "speedup": brute_s / fast_s,
        "max_abs_difference": float(np.abs(fast - exact).max()),
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure; ``quick`` uses a 256x256 synthetic image and fewer repeats."""
    repeats = 2 if quick else 5
    shape, count = ((256, 256), 50) if quick else ((512, 512), 160)
    synthetic = touching_discs(shape, count)
    results: dict[str, Any] = {}
    for key, value in compare(synthetic, repeats).items():
        results[f"discs_{shape[0]}x{shape[1]}_{key}"] = value
    real = dsb_instances()
    if real is None:
        results["dsb_skipped"] = f"no data at {SHARED_DATA}"
    else:
        name, instances = real
        results["dsb_image"] = name
        for key, value in compare(instances, repeats).items():
            results[f"dsb_{key}"] = value
    rows = []
    for prefix, label in ((f"discs_{shape[0]}x{shape[1]}", f"synthetic touching discs {shape[0]}x{shape[1]}"),
                          ("dsb", f"DSB 2018 image {results.get('dsb_image', '')[:12]}")):
        if f"{prefix}_fast_s" in results:
            rows.append({"image": label, "cells": results[f"{prefix}_cells"],
                         "distance transforms (biounet)": results[f"{prefix}_distance_transforms_fast"],
                         "biounet s": results[f"{prefix}_fast_s"], "per-cell EDT s": results[f"{prefix}_bruteforce_s"],
                         "speed-up": results[f"{prefix}_speedup"],
                         "max abs difference": results[f"{prefix}_max_abs_difference"]})
    results["rows"] = rows
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
