"""Benchmark: speed of cutting augmented training tiles and of the paper's elastic deformation.

``run(quick)`` returns tiles (images) per second and milliseconds per tile for

- :meth:`biounet.augmentation.Augmenter.sample` of a 572x572 input / 388x388 output tile (the paper's
  sizes) with image, label and weight map: all augmentations (elastic + rotation + flips + intensity)
  with the default bicubic and with the cubic B-spline image interpolation, and the plain mirrored crop;
- :func:`biounet.augmentation.elastic_deform` of a 512x512 image (cubic) and label map (nearest);
- MONAI's ``Rand2DElastic`` on the same 512x512 image when MONAI is importable (skipped otherwise).

Numbers are for the current torch thread count (reported), on one process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from biounet.augmentation import AugmentationConfig, Augmenter, elastic_deform


def per_call_seconds(function: Callable[[], Any], calls: int) -> float:
    """Median wall time (s) of ``calls`` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def record(results: dict[str, Any], name: str, seconds: float) -> None:
    results[f"{name}_ms"] = seconds * 1000.0
    results[f"{name}_per_s"] = 1.0 / seconds


def source_arrays(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random image ``(1, Y, X)``, a 2-class label map and a weight map, all ``size`` x ``size``."""
    rng = np.random.default_rng(seed)
    image = rng.random((1, size, size)).astype(np.float32)
    label = (image[0] > 0.5).astype(np.int64)
    weight = 1.0 + 10.0 * rng.random((size, size)).astype(np.float32)
    return image, label, weight


def run(quick: bool) -> dict[str, Any]:
    """Measure; ``quick`` uses fewer repetitions."""
    calls = 5 if quick else 30
    image, label, weight = source_arrays()
    rng = np.random.default_rng(1)
    results: dict[str, Any] = {"torch_threads": torch.get_num_threads()}

    variants = {
        "sample_572_all_bicubic": (AugmentationConfig(intensity_prob=1.0, blur_prob=1.0), True),
        "sample_572_all_spline": (
            AugmentationConfig(intensity_prob=1.0, blur_prob=1.0, image_interpolation="spline"),
            True,
        ),
        "sample_572_paper_default": (AugmentationConfig(), True),
        "sample_572_plain_crop": (AugmentationConfig(), False),
    }
    for name, (config, augment) in variants.items():
        augmenter = Augmenter(config, spatial_dims=2)

        def cut(augmenter: Augmenter = augmenter, augment: bool = augment) -> None:
            centre = rng.uniform(0, 512, size=2)
            augmenter.sample(image, label, weight, centre, (572, 572), (388, 388), rng, augment=augment)

        record(results, name, per_call_seconds(cut, calls))

    record(results, "elastic_deform_512_image", per_call_seconds(lambda: elastic_deform(image[0], rng), calls))
    record(
        results,
        "elastic_deform_512_image_spline",
        per_call_seconds(lambda: elastic_deform(image[0], rng, cubic="spline"), calls),
    )
    record(results, "elastic_deform_512_label", per_call_seconds(lambda: elastic_deform(label, rng, order=0), calls))
    results.update(_monai(image, calls))
    return results


def _monai(image: np.ndarray, calls: int) -> dict[str, Any]:
    """MONAI Rand2DElastic (3x3 control grid, rotation, bicubic, reflection) on ``image`` ``(1, 512, 512)``."""
    try:
        from monai.transforms import Rand2DElastic
    except ImportError:
        return {"monai_rand2delastic": "skipped: monai is not installed"}
    transform = Rand2DElastic(
        spacing=(256, 256),
        magnitude_range=(10.0, 10.0),  # normal(0, 1) control-point offsets times this: std 10 px
        prob=1.0,
        rotate_range=(math.pi,),
        mode="bicubic",
        padding_mode="reflection",
    )
    transform.set_random_state(seed=0)
    tensor = torch.from_numpy(image)
    results: dict[str, Any] = {}
    record(results, "monai_rand2delastic_512_image", per_call_seconds(lambda: transform(tensor), calls))
    return results


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
