"""Benchmark: ISBI 2012 evaluation of 30 slices of 512x512 with a 9-threshold sweep.

The 22 real ISBI training labels (cycled to 30 slices) are turned into noisy interior-probability
maps (the label blurred, plus spatially correlated noise, so some membranes open and some cells
break).  Each slice is evaluated like the challenge: cells = components of the label, thresholds
0.1..0.9, grown-segment adapted Rand error and pixel error at every threshold.  The timed part is
the evaluation (labelling the ground truth included), not making the probability maps.  The budget
is 10 s for the 30 slices on 2 cores.  The warping error is timed separately on a few slices.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from common import SHARED_DATA
from scipy import ndimage as ndi

from biounet.io.images import read_image
from biounet.metrics import DEFAULT_THRESHOLDS, cells_from_isbi_label, sweep_metrics, warping_error
from biounet.metrics.sweep import best_index

N_SLICES = 30
BUDGET_SECONDS = 10.0


def isbi_labels() -> list[np.ndarray]:
    folder = SHARED_DATA / "isbi2012_em" / "train" / "label"
    paths = sorted(folder.glob("*.png"), key=lambda p: int(p.stem))
    if not paths:
        raise FileNotFoundError(f"no ISBI labels in {folder}")
    return [read_image(p) for p in paths]


def noisy_probability(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(Y, X)`` float32 interior probability: blurred label + correlated noise, clipped to [0, 1]."""
    noise = ndi.gaussian_filter(rng.normal(size=label.shape), 3.0)
    noise /= noise.std()
    prob = ndi.gaussian_filter((label > 0).astype(np.float32), 1.5) + 0.25 * noise
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def run(quick: bool) -> dict[str, Any]:
    """Time the 30-slice sweep (``quick``: 6 slices, 3 thresholds) and return the numbers."""
    labels = isbi_labels()
    n_slices = 6 if quick else N_SLICES
    thresholds = (0.3, 0.5, 0.7) if quick else DEFAULT_THRESHOLDS
    rng = np.random.default_rng(0)
    slices = [labels[i % len(labels)] for i in range(n_slices)]
    probs = [noisy_probability(label, rng) for label in slices]

    start = time.perf_counter()
    sweeps = []
    for label, prob in zip(slices, probs):
        cells = cells_from_isbi_label(label)
        sweeps.append(sweep_metrics(prob, cells, ("adapted_rand_error", "pixel_error"), thresholds))
    seconds = time.perf_counter() - start

    rand_curve = np.mean([s["adapted_rand_error"].values for s in sweeps], axis=0)
    pixel_curve = np.mean([s["pixel_error"].values for s in sweeps], axis=0)
    rand_best, pixel_best = best_index(rand_curve, False), best_index(pixel_curve, False)

    warp_slices = 2 if quick else 5
    start = time.perf_counter()
    for label, prob in zip(slices[:warp_slices], probs[:warp_slices]):
        for t in thresholds:
            warping_error(label > 0, prob > t)
    warp_ms = (time.perf_counter() - start) / (warp_slices * len(thresholds)) * 1000

    result: dict[str, Any] = {
        "n_slices": n_slices,
        "n_thresholds": len(thresholds),
        "sweep_seconds": seconds,
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": bool(seconds < BUDGET_SECONDS) if not quick else None,
        "ms_per_slice_and_threshold": seconds / (n_slices * len(thresholds)) * 1000,
        "mean_rand_error_best_threshold": float(rand_curve[rand_best]),
        "rand_best_threshold": float(thresholds[rand_best]),
        "mean_pixel_error_best_threshold": float(pixel_curve[pixel_best]),
        "pixel_best_threshold": float(thresholds[pixel_best]),
        "warping_ms_per_slice_and_threshold": warp_ms,
    }
    result["rows"] = [
        {
            "what": f"{n_slices} slices x {len(thresholds)} thresholds: grown Rand + pixel error",
            "seconds": seconds,
            "budget_s": BUDGET_SECONDS,
            "ms_per_slice_threshold": result["ms_per_slice_and_threshold"],
            "mean_rand_error": result["mean_rand_error_best_threshold"],
            "at_threshold": result["rand_best_threshold"],
        },
        {
            "what": f"warping error, {warp_slices} slices x {len(thresholds)} thresholds",
            "seconds": warp_ms * warp_slices * len(thresholds) / 1000,
            "budget_s": "",
            "ms_per_slice_threshold": warp_ms,
            "mean_rand_error": "",
            "at_threshold": "",
        },
    ]
    return result


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
