"""Validation on whole images: tiled prediction, then the metrics that fit the task.

* Membranes (ISBI 2012, ``style="membrane"``): adapted Rand error of the segments grown from
  ``P(interior) > t`` at the best threshold ``t`` in 0.1..0.9 (the mean over the images at each
  threshold, :func:`biounet.evaluation.summary.best_common_threshold`, as ``biounet evaluate``), and
  the pixel error; main metric ``adapted_rand_error`` (lower is better).  Beside it, the adapted Rand
  error of the cells of :func:`biounet.inference.cells.cells_from_membranes` at that threshold, at the
  best (seed distance, merge threshold) of a small grid (:data:`CELL_SEED_DISTANCES` x
  :data:`CELL_MERGE_THRESHOLDS`, the mean over the images), saved with the model for ``biounet predict``.
* Touching objects (``style="touching"``): instances from the probabilities (seeded watershed) at every
  seed threshold, smallest seed size and seed height (h-maxima split of the seeds, 0 = the paper's seeds) of a
  small grid, then at the best of them at a few foreground thresholds (where the outlines lie), scored as users
  score them: F1 and AP50 (the DSB
  ``TP / (TP + FP + FN)``) at IoU > 0.5 and the DSB mean AP over IoU 0.5..0.95, all from one table of
  object overlaps per image and setting; the setting with the best mean of the selection metric over the
  images is kept, and the IoU of the foreground beside them.  Main (selection) metric ``average_precision``
  unless ``TrainConfig.select_by`` names another.  The worst images by that metric
  (:mod:`biounet.training.validation_errors`)
  are kept as pictures of their errors (missed, false, merged, split: :mod:`biounet.metrics.errors`) for the
  report; membrane models keep theirs too, drawn on the cells ``biounet predict --output instances`` makes.
* Semantic classes: mean IoU and mean Dice over the classes; main metric ``mean_iou``.

``select_by`` (:func:`selectable_metrics`) replaces the main metric of a target: it picks the best
checkpoint, and for touching objects also the seed settings and the foreground threshold.

Metric keys are the canonical names of :mod:`biounet.metrics.names`; the trainer's history prefixes
them with ``val_``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig
from biounet.metrics import names

if TYPE_CHECKING:
    from biounet.report import ErrorPanel


@dataclass
class ValidationResult:
    """Mean metrics over the validation images, and the first image's prediction for the report.

    Attributes:
        metrics: ``{name: value}``; ``threshold`` is the best interior threshold (membranes) or seed
            threshold (touching objects, with ``min_size``, the smallest seed in pixels).
        main: name of the metric that chooses the best checkpoint.
        higher_is_better: its direction.
        probabilities: ``(K, *S)`` class probabilities of the first validation image.
        prediction: ``(*S)`` int instances (instance targets) or classes (semantic) of the first image.
        seconds: wall-clock time of the validation.
        per_image: the metrics of each image (at the chosen settings).
        worst: the worst images by the main metric as :class:`~biounet.report.ErrorPanel` pictures of their
            object errors (instance targets: touching objects, and the cells of membrane models).
    """

    metrics: dict[str, float]
    main: str
    higher_is_better: bool
    probabilities: np.ndarray | None = None
    prediction: np.ndarray | None = None
    seconds: float = 0.0
    per_image: list[dict[str, float]] = field(default_factory=list)
    worst: list[ErrorPanel] = field(default_factory=list)

    @property
    def value(self) -> float:
        return self.metrics[self.main]

    def better_than(self, other: float | None) -> bool:
        if other is None or not np.isfinite(other):
            return bool(np.isfinite(self.value))
        return self.value > other if self.higher_is_better else self.value < other


#: The metrics that can pick the best checkpoint of each kind of target (the first is the default).
MEMBRANE_METRICS: tuple[str, ...] = (names.ADAPTED_RAND_ERROR, names.CELLS_ADAPTED_RAND_ERROR, names.PIXEL_ERROR)
TOUCHING_METRICS: tuple[str, ...] = (names.AVERAGE_PRECISION, names.AVERAGE_PRECISION_50, names.F1,
                                     names.FOREGROUND_IOU)
SEMANTIC_METRICS: tuple[str, ...] = (names.MEAN_IOU, names.MEAN_DICE)

def selectable_metrics(target: TargetConfig) -> tuple[str, ...]:
    """The validation metrics of ``target`` that ``select_by`` may name; the first is the default."""
    if target.kind == "instances":
        return MEMBRANE_METRICS if target.style == "membrane" else TOUCHING_METRICS
    return SEMANTIC_METRICS


def main_metric(target: TargetConfig, select_by: str | None = None) -> tuple[str, bool]:
    """Name and direction (higher is better?) of the metric that picks the best checkpoint.

    ``select_by`` (``TrainConfig.select_by``) if given, else the first of :func:`selectable_metrics`.
    """
    choices = selectable_metrics(target)
    if select_by is not None and select_by not in choices:
        raise ValueError(f"select_by must be one of {', '.join(choices)} for this target, not {select_by!r}")
    name = select_by or choices[0]
    return name, names.HIGHER_IS_BETTER[name]


def predict_probabilities(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    precision: str,
    batch_size: int | None = None,
    num_threads: int | None = None,
    distance_channel: int | None = None,
) -> np.ndarray:
    """``(K, *S)`` float32 class probabilities of a normalised image ``(C, *S)`` with the tiled predictor (and
    the distance map after them, for a model with a ``distance_channel``).

    The predictor chooses the tile size from the available memory: for a valid-padded network the
    result does not depend on it, and tiles as small as the training tiles would be slow.
    """
    from biounet.inference.predictor import predict

    device = next(model.parameters()).device
    probabilities = predict(
        model,
        image,
        tile_size=None,
        batch_size=batch_size,
        tta=1,
        precision=precision,
        output="probabilities",
        device=device,
        pipeline={"normalization": {"method": "none"}, "target": {"distance_channel": distance_channel}},
        channel_axis="first",
        num_threads=num_threads,
        progress=False,
    )
    return np.asarray(probabilities, dtype=np.float32)


def validate(
    model: torch.nn.Module,
    samples: Sequence[Sample],
    target: TargetConfig,
    *,
    precision: str,
    batch_size: int | None = None,
    num_threads: int | None = None,
    select_by: str | None = None,
    spacing: Sequence[float] | None = None,
) -> ValidationResult:
    """Predict every validation image whole and score it (see the module docstring); ``select_by`` as in
    :func:`main_metric`; ``spacing``: ``data.spacing``, in which the membranes' cells are measured."""
    import time

    start = time.perf_counter()
    main, higher = main_metric(target, select_by)
    was_training = model.training
    model.eval()
    try:
        probabilities = [
            predict_probabilities(model, s.image, precision=precision, batch_size=batch_size, num_threads=num_threads,
                                  distance_channel=target.distance_channel)
            for s in samples
        ]
    finally:
        model.train(was_training)
    if target.kind == "instances" and target.style == "membrane":
        metrics, per_image, predictions = membrane_metrics(samples, probabilities, spacing)
    elif target.kind == "instances":
        metrics, per_image, predictions = instance_metrics(samples, probabilities, target, select_by=main)
    else:
        metrics, per_image, predictions = semantic_metrics(samples, probabilities, target.num_classes)
    worst = []
    if target.kind == "instances":
        from biounet.training.validation_errors import worst_images

        worst = worst_images(samples, probabilities, target, per_image, metrics, main, spacing=spacing)
    return ValidationResult(
        metrics=metrics,
        main=main,
        higher_is_better=higher,
        probabilities=probabilities[0] if probabilities else None,
        prediction=predictions[0] if predictions else None,
        seconds=time.perf_counter() - start,
        per_image=per_image,
        worst=worst,
    )


def membrane_metrics(
    samples: Sequence[Sample], probabilities: list[np.ndarray], spacing: Sequence[float] | None = None
) -> tuple[dict[str, float], list[dict[str, float]], list[np.ndarray]]:
    """Membranes: (mean metrics, per-image metrics, [segments of the first image]) from ``(2, *S)`` probabilities.

    ``spacing`` (``data.spacing``) measures the cells' seed distances and boundaries (:func:`cell_metrics`).

    The threshold is chosen once for all images (lowest mean Rand error, the ``biounet evaluate --task
    isbi`` mean); the pixel error is reported at its own best common threshold, as there.
    """
    from biounet.evaluation.summary import best_common_threshold
    from biounet.metrics import DEFAULT_THRESHOLDS, segments_from_probability, sweep_metrics

    rand, pixel = names.ADAPTED_RAND_ERROR, names.PIXEL_ERROR
    sweeps = [
        sweep_metrics(p[1], s.target.instances, (rand, pixel), DEFAULT_THRESHOLDS)
        for s, p in zip(samples, probabilities)
    ]
    chosen = best_common_threshold([sw[rand].values for sw in sweeps], higher_is_better=False)
    pixel_best = best_common_threshold([sw[pixel].values for sw in sweeps], higher_is_better=False)
    best = chosen.index
    threshold = float(DEFAULT_THRESHOLDS[best])
    metrics = {rand: chosen.value, pixel: pixel_best.value, "threshold": threshold}
    per_image = [{rand: sw[rand].values[best], pixel: sw[pixel].values[best]} for sw in sweeps]
    if samples:
        cells_error, cells_per_image, settings = cell_metrics(samples, probabilities, spacing=spacing)
        metrics.update({names.CELLS_ADAPTED_RAND_ERROR: cells_error, **settings})
        for row, value in zip(per_image, cells_per_image):
            row[names.CELLS_ADAPTED_RAND_ERROR] = value
    predictions = [segments_from_probability(probabilities[0][1], threshold)] if probabilities else []
    return metrics, per_image, predictions


#: The grid of cell settings that validation tries for membranes (one setting for the whole set is kept):
#: interior thresholds on ``P(interior)`` for the seeds (the cells' own: a watershed that merges afterwards
#: wants confident seeds, higher than the threshold protocol's best, which must close every gap itself),
#: seed distances (in-plane pixels from the membrane) and merge thresholds (mean membrane probability on a shared
#: boundary). 8 watersheds per image and validation; the merges are cheap.
CELL_INTERIOR_THRESHOLDS: tuple[float, ...] = (0.7, 0.8, 0.9, 0.95)
CELL_SEED_DISTANCES: tuple[float, ...] = (1.0, 3.0)
CELL_MERGE_THRESHOLDS: tuple[float, ...] = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def cell_metrics(
    samples: Sequence[Sample],
    probabilities: list[np.ndarray],
    *,
    interior_thresholds: Sequence[float] = CELL_INTERIOR_THRESHOLDS,
    seed_distances: Sequence[float] = CELL_SEED_DISTANCES,
    merge_thresholds: Sequence[float] = CELL_MERGE_THRESHOLDS,
    spacing: Sequence[float] | None = None,
) -> tuple[float, list[float], dict[str, float]]:
    """Membranes: the adapted Rand error of the cells (:mod:`biounet.inference.cells`), the best of the grid.

    Returns (the mean error over the images at the best setting, the per-image errors there, the setting as
    ``{"cells_interior_threshold", "cells_seed_distance", "cells_merge_threshold"}``); one setting for the
    whole set, as the threshold protocol keeps one threshold.

    ``spacing``: ``data.spacing`` (``(Y, X)`` or ``(Z, Y, X)``, any unit). biounet normalises spacings so the
    in-plane pixel is 1 (:func:`biounet.model.anisotropy.relative_spacing`), so the seed distances stay in
    in-plane pixels whatever the unit; a 3D volume's distances across z count the section spacing (about 11
    pixels a section for ``(50, 4.6, 4.6)``), a 2D section of a stack uses the in-plane values.
    """
    from biounet.inference.cells import cells_over_grid
    from biounet.metrics import adapted_rand_error
    from biounet.metrics.sweep import best_index
    from biounet.model.anisotropy import relative_spacing

    grid = [(float(t), float(d), float(m)) for t in interior_thresholds for d in seed_distances
            for m in merge_thresholds]
    errors = np.zeros((len(samples), len(grid)))
    for i, (sample, probs) in enumerate(zip(samples, probabilities)):
        sampling = relative_spacing(spacing, probs[1].ndim)
        for t in interior_thresholds:
            for settings, cells in cells_over_grid(probs[1], t, seed_distances, merge_thresholds, spacing=sampling):
                j = grid.index((settings.interior_threshold, settings.seed_distance, settings.merge_threshold))
                errors[i, j] = adapted_rand_error(sample.target.instances, cells).error
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image without cells is NaN: left out
        mean = np.nanmean(errors, axis=0)
    best = best_index(mean, higher_is_better=False)
    interior_threshold, seed_distance, merge_threshold = grid[best]
    settings = {"cells_interior_threshold": interior_threshold, "cells_seed_distance": seed_distance,
                "cells_merge_threshold": merge_threshold}
    return float(mean[best]), [float(e) for e in errors[:, best]], settings


#: Entries of :attr:`ValidationResult.metrics` that are post-processing settings chosen by validation,
#: not scores; the trainer saves the best checkpoint's in the model's pipeline target (the ``cells_``
#: ones as its :class:`~biounet.pipeline.CellSettings`).
SETTING_KEYS: tuple[str, ...] = (
    "threshold", "min_size", "seed_height", "foreground_threshold",
    "cells_interior_threshold", "cells_seed_distance", "cells_merge_threshold",
)

#: Seed thresholds on ``P(interior)``, smallest seeds (pixels) and seed heights (the h-maxima that split seeds,
#: 0 = the paper's seeds; :func:`~biounet.inference.instances.instances_from_interior`) that validation tries for
#: touching objects: 4 x 3 x 3 = 36 instance maps per image.
SEED_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
SEED_MIN_SIZES: tuple[int, ...] = (8, 16, 32)
SEED_HEIGHTS: tuple[float, ...] = (0.0, 0.15, 0.3)
#: Foreground thresholds on the summed probability of the foreground classes that validation tries for touching
#: objects at the best seed setting (3 instance maps more per image): they place the outlines, which the DSB mean
#: AP scores up to IoU 0.95.
FOREGROUND_THRESHOLDS: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7)


def instance_metrics(
    samples: Sequence[Sample],
    probabilities: list[np.ndarray],
    target: TargetConfig,
    *,
    thresholds: Sequence[float] = SEED_THRESHOLDS,
    min_sizes: Sequence[int] = SEED_MIN_SIZES,
    seed_heights: Sequence[float] = SEED_HEIGHTS,
    foreground_thresholds: Sequence[float] = FOREGROUND_THRESHOLDS,
    select_by: str = names.AVERAGE_PRECISION,
) -> tuple[dict[str, float], list[dict[str, float]], list[np.ndarray]]:
    """Touching objects: F1, AP50 and DSB mean AP of the instances from the probabilities, and the foreground IoU.

    The instances (the watershed of :func:`~biounet.inference.instances.instances_from_interior`, on the distance
    output too when the target has one) are made at every seed threshold, smallest seed size and seed height of
    the grid over the default foreground (summed foreground probability > 0.5), then at the best of these seed
    settings over the foreground at each of ``foreground_thresholds``; each is scored by
    :func:`~biounet.metrics.matching.object_scores`.  The setting with the best mean of ``select_by`` over the
    images is reported as ``threshold``, ``min_size``, ``seed_height`` and ``foreground_threshold`` (one setting
    for the whole set, like the membrane threshold; the trainer saves the best checkpoint's in the model, and
    ``biounet predict`` uses it).  The seeds are chosen first because they decide which objects exist, the
    foreground threshold then only moves their outlines; one setting at a time costs 3 instance maps more per
    image where the full product would cost 4 times the seed grid.  Ties keep the foreground threshold nearest
    0.5.  The foreground IoU is that of the chosen foreground; when it is ``select_by``, the setting is chosen by
    the mean AP.
    """
    from biounet.inference.instances import foreground_mask, instances_from_interior
    from biounet.metrics import iou_per_class
    from biounet.metrics.matching import object_scores
    from biounet.pipeline import DEFAULT_FOREGROUND_THRESHOLD

    grid = [(float(t), int(m), float(h)) for t in thresholds for m in min_sizes for h in seed_heights]
    if not grid or not foreground_thresholds:
        raise ValueError("instance_metrics needs at least one seed threshold, min_size, seed height and "
                         "foreground threshold")
    chooser = names.AVERAGE_PRECISION if select_by == names.FOREGROUND_IOU else select_by
    column = OBJECT_METRICS.index(chooser)

    candidates = sorted((float(f) for f in foreground_thresholds), key=lambda f: abs(f - DEFAULT_FOREGROUND_THRESHOLD))
    levels = {DEFAULT_FOREGROUND_THRESHOLD, *candidates}
    masks = [{f: foreground_mask(probs, target.foreground_classes, f) for f in levels}
             for probs in probabilities]  # each image's foreground at each threshold, made once

    def instances(i: int, seeds: tuple[float, int, float], foreground: float) -> np.ndarray:
        threshold, min_size, seed_height = seeds
        probs = probabilities[i]
        distance = probs[target.distance_channel] if target.distance_channel is not None else None
        return instances_from_interior(probs[target.interior_class], masks[i][foreground], threshold=threshold,
                                       min_size=min_size, seed_height=seed_height, distance=distance)

    def scores_at(settings: Sequence[tuple[tuple[float, int, float], float]]) -> np.ndarray:
        """``(images, settings, metrics)``: the object scores of every image at every (seeds, foreground)."""
        return np.array([[object_scores(sample.target.instances, instances(i, seeds, foreground))
                          for seeds, foreground in settings] for i, sample in enumerate(samples)])

    def best(scores: np.ndarray) -> int:
        return int(np.nanargmax(np.nanmean(scores[:, :, column], axis=0))) if len(samples) else 0

    seeds = grid[best(scores_at([(g, DEFAULT_FOREGROUND_THRESHOLD) for g in grid]))]
    scores = scores_at([(seeds, f) for f in candidates])
    chosen = best(scores)
    foreground = candidates[chosen]
    foreground_iou = [float(iou_per_class(sample.target.instances > 0, masks[i][foreground], [1])[1])
                      for i, sample in enumerate(samples)]
    per_image = [{**{m: float(scores[i, chosen, k]) for k, m in enumerate(OBJECT_METRICS)},
                  names.FOREGROUND_IOU: foreground_iou[i]} for i in range(len(samples))]
    metrics = {key: float(np.nanmean([row[key] for row in per_image])) for key in (*OBJECT_METRICS,
                                                                                   names.FOREGROUND_IOU)}
    metrics.update(threshold=seeds[0], min_size=seeds[1], seed_height=seeds[2], foreground_threshold=foreground)
    predictions = [instances(0, seeds, foreground)] if probabilities else []
    return metrics, per_image, predictions


#: The object scores of touching objects, in the order of :func:`biounet.metrics.matching.object_scores`.
OBJECT_METRICS: tuple[str, ...] = (names.F1, names.AVERAGE_PRECISION_50, names.AVERAGE_PRECISION)


def semantic_metrics(
    samples: Sequence[Sample], probabilities: list[np.ndarray], num_classes: int
) -> tuple[dict[str, float], list[dict[str, float]], list[np.ndarray]]:
    """Semantic classes: mean IoU and mean Dice over the classes of the arg-max labels."""
    from biounet.metrics import dice_per_class, iou_per_class

    per_image: list[dict[str, Any]] = []
    predictions = []
    classes = list(range(num_classes))
    for sample, probs in zip(samples, probabilities):
        predicted = probs.argmax(axis=0).astype(np.uint8)
        iou = iou_per_class(sample.target.classes, predicted, classes)
        dice = dice_per_class(sample.target.classes, predicted, classes)
        per_image.append({names.MEAN_IOU: float(np.nanmean(list(iou.values()))),
                          names.MEAN_DICE: float(np.nanmean(list(dice.values())))})
        predictions.append(predicted)
    metrics = {key: float(np.nanmean([row[key] for row in per_image])) for key in (names.MEAN_IOU, names.MEAN_DICE)}
    return metrics, per_image, predictions[:1]
