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
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from common import median_seconds

from biounet.augmentation import AugmentationConfig, Augmenter, elastic_deform


def per_call_seconds(function: Callable[[], Any], calls: int) -> float:
    """Median wall time (s) of ``calls`` calls, after one warm-up call."""
    return median_seconds(function, repeats=calls, warmup=1)


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
    results.update(_share_of_training_step(quick))
    results["rows"] = _rows(results)
    return results


def _share_of_training_step(quick: bool) -> dict[str, Any]:
    """Seconds of one default-recipe training step (bf16 where supported) vs cutting its augmented tiles."""
    from biounet.model import UNet, sizes
    from biounet.runtime import cpu_has_bf16
    from biounet.training.config import TrainConfig
    from biounet.training.recipes import recipe

    config = TrainConfig.from_dict(recipe("default"))
    model = UNet(config.model)
    tile = sizes.valid_input_shape(config.model, config.spatial_tile() if not quick else (188, 188))
    out = sizes.output_shape(config.model, tile)
    image, label, weight = source_arrays()
    augmenter = Augmenter(config.augmentation, spatial_dims=2)
    rng = np.random.default_rng(2)
    bf16 = cpu_has_bf16()
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def cut() -> list:
        return [augmenter.sample(image, label, weight, rng.uniform(0, 512, 2), tile, out, rng)
                for _ in range(config.batch_size)]

    tiles = cut()
    x = torch.from_numpy(np.stack([t[0] for t in tiles])).to(memory_format=fmt)
    y = torch.from_numpy(np.stack([t[1] for t in tiles]))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        optimizer.step()

    calls = 2 if quick else 5
    return {"default_step_s": per_call_seconds(step, calls), "default_tiles_s": per_call_seconds(cut, calls),
            "default_tile": f"{tile[0]}x{tile[1]} x {config.batch_size}"}


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    monai = results.get("monai_rand2delastic_512_image_ms")
    rows = []
    for key, label in (("elastic_deform_512_image", "biounet elastic_deform, 512x512 image, bicubic"),
                       ("elastic_deform_512_image_spline", "biounet elastic_deform, 512x512 image, B-spline"),
                       ("elastic_deform_512_label", "biounet elastic_deform, 512x512 label map, nearest"),
                       ("monai_rand2delastic_512_image", "MONAI Rand2DElastic, 512x512 image, bicubic"),
                       ("sample_572_all_bicubic", "biounet tile 572->388 (image+label+weights), all augmentations"),
                       ("sample_572_plain_crop", "biounet training tile 572->388, mirrored crop only")):
        if f"{key}_ms" in results:
            row = {"operation": label, "ms": results[f"{key}_ms"], "images/s": results[f"{key}_per_s"]}
            if monai and key.startswith("elastic_deform_512_image"):
                row["speed vs MONAI"] = monai / results[f"{key}_ms"]
            rows.append(row)
    if "default_step_s" in results:
        rows.append({"operation": f"default recipe: tiles of one step ({results['default_tile']}) / the step",
                     "ms": results["default_tiles_s"] * 1000,
                     "images/s": f"{100 * results['default_tiles_s'] / results['default_step_s']:.1f} % of the step"})
    return rows


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
