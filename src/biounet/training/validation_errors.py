"""The worst validation images as pictures of their object errors, for the training report.

After validation chose its settings, the ``count`` worst images by the selection metric get their instances
made again at those settings (touching objects: the seeded watershed; membranes: the cells of ``biounet
predict --output instances``), classified by :func:`biounet.metrics.errors.instance_errors` (missed, false,
merged, split) and handed to the report as :class:`biounet.report.ErrorPanel`: a few watersheds per
validation, beside the grid's many.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig
from biounet.metrics import names

if TYPE_CHECKING:
    from biounet.report import ErrorPanel

#: How many of the worst validation images the report shows with their errors drawn.
WORST_IMAGES = 3


def worst_images(
    samples: Sequence[Sample],
    probabilities: list[np.ndarray],
    target: TargetConfig,
    per_image: list[dict[str, float]],
    metrics: dict[str, float],
    main: str,
    count: int = WORST_IMAGES,
    spacing: Sequence[float] | None = None,
) -> list[ErrorPanel]:
    """The ``count`` worst images by ``main`` as :class:`~biounet.report.ErrorPanel` pictures of their errors.

    Their instances are made again at the chosen settings (``count`` watersheds, beside the grid's many;
    membranes: the cells of ``biounet predict --output instances``) and classified by
    :func:`~biounet.metrics.errors.instance_errors` (missed, false, merged, split). ``spacing``: the data's
    (``data.spacing``), for the membranes' cells.
    """
    from biounet.metrics.errors import instance_errors
    from biounet.report import ErrorPanel

    higher = names.HIGHER_IS_BETTER[main]
    values = np.array([row.get(main, np.nan) for row in per_image], dtype=float)
    order = np.argsort(np.where(np.isnan(values), np.inf, -values if not higher else values), kind="stable")
    panels = []
    for index in order[: min(count, len(samples))]:
        sample = samples[int(index)]
        instances = instances_at_settings(probabilities[index], target, metrics, spacing)
        errors = instance_errors(sample.target.instances, instances)
        counts = ", ".join(f"{n} {k}" for k, n in errors.counts().items())
        panels.append(ErrorPanel(
            name=f"{sample.name}: {main} {values[index]:.3f} ({counts})", image=sample.image[0],
            ground_truth=sample.target.instances, prediction=instances, missed=errors.missed.tolist(),
            false=errors.false.tolist(), merged=errors.merged.tolist(), split=errors.split.tolist(),
            merged_gt=errors.merged_gt.tolist(), split_pred=errors.split_pred.tolist(),
        ))  # fmt: skip
    return panels


def instances_at_settings(
    probabilities: np.ndarray, target: TargetConfig, metrics: dict[str, float], spacing: Sequence[float] | None = None
) -> np.ndarray:
    """``(*S)`` instances of ``(K, *S)`` probabilities at the settings validation chose (in ``metrics``);
    membranes' cells measured in ``spacing`` (``data.spacing``, normalised to the in-plane pixel)."""
    if target.style == "membrane":
        from biounet.inference.cells import cells_from_membranes
        from biounet.model.anisotropy import relative_spacing
        from biounet.pipeline import CellSettings

        keys = ("interior_threshold", "seed_distance", "merge_threshold")
        chosen = {k: float(metrics[f"cells_{k}"]) for k in keys if f"cells_{k}" in metrics}
        interior = probabilities[target.interior_class]
        return cells_from_membranes(interior, CellSettings(**chosen), relative_spacing(spacing, interior.ndim))
    from biounet.inference.instances import instances_from_probabilities
    from biounet.pipeline import DEFAULT_FOREGROUND_THRESHOLD

    return instances_from_probabilities(probabilities, target.interior_class, target.foreground_classes,
                                        metrics["threshold"], int(metrics["min_size"]),
                                        float(metrics.get("seed_height", 0.0)), target.distance_channel,
                                        float(metrics.get("foreground_threshold", DEFAULT_FOREGROUND_THRESHOLD)))


__all__ = ["WORST_IMAGES", "instances_at_settings", "worst_images"]
