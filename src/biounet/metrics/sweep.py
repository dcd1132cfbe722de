"""The ISBI 2012 protocol for probability maps: threshold at several levels, keep the best score.

For every threshold the probability map is turned into the inputs each metric needs once (binary
map, raw components, grown segments), then each requested metric is scored.  The ground truth is
a label image with 0 = boundary / background: cell ids for the Rand error and VI (label 0 ignored),
object ids for the object metrics, and ``gt != 0`` as the binary map for pixel and warping error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from biounet.metrics import names
from biounet.metrics._checks import check_same_shape
from biounet.metrics.matching import average_precision_dsb, match_instances, panoptic_quality
from biounet.metrics.overlap import dice_per_class, iou_per_class
from biounet.metrics.pixel import pixel_error
from biounet.metrics.rand import adapted_rand_error, variation_of_information
from biounet.metrics.segmentation import grow_segments, label_components
from biounet.metrics.warping import warping_error

DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 10))
"""0.1, 0.2, ..., 0.9: the thresholds of the ISBI 2012 evaluation."""

MetricInput = Literal["binary", "components", "grown"]


@dataclass(frozen=True)
class MetricSpec:
    """How to score one metric: which thresholded input it takes, and which direction is better.

    ``score(gt, candidate)`` returns a result object; ``value(result)`` the number to optimise.
    """

    input: MetricInput
    score: Callable[[np.ndarray, np.ndarray], Any]
    value: Callable[[Any], float]
    higher_is_better: bool


def _binary_gt(gt: np.ndarray) -> np.ndarray:
    return gt != 0


METRICS: dict[str, MetricSpec] = {
    names.ADAPTED_RAND_ERROR: MetricSpec("grown", adapted_rand_error, lambda r: r.error, False),
    names.ADAPTED_RAND_ERROR_RAW: MetricSpec("components", adapted_rand_error, lambda r: r.error, False),
    names.VARIATION_OF_INFORMATION: MetricSpec("grown", variation_of_information, lambda r: r.total, False),
    names.PIXEL_ERROR: MetricSpec("binary", lambda gt, b: pixel_error(_binary_gt(gt), b), float, False),
    names.WARPING_ERROR: MetricSpec(
        "binary", lambda gt, b: warping_error(_binary_gt(gt), b), lambda r: r.error, False
    ),
    names.DICE: MetricSpec("binary", lambda gt, b: dice_per_class(_binary_gt(gt), b, [1])[1], float, True),
    names.IOU: MetricSpec("binary", lambda gt, b: iou_per_class(_binary_gt(gt), b, [1])[1], float, True),
    names.AVERAGE_PRECISION: MetricSpec("components", average_precision_dsb, lambda r: r.value, True),
    names.AVERAGE_PRECISION_50: MetricSpec("components", match_instances, lambda r: r.dsb_precision, True),
    names.F1: MetricSpec("components", match_instances, lambda r: r.f1, True),
    names.PANOPTIC_QUALITY: MetricSpec("components", panoptic_quality, lambda r: r.pq, True),
}
"""Metric names accepted by :func:`sweep_thresholds` / :func:`sweep_metrics` (the canonical names of
:mod:`biounet.metrics.names`).

``adapted_rand_error`` / ``variation_of_information`` use grown segments, ``adapted_rand_error_raw``
the components as thresholded (boundary pixels form one segment with id 0); ``dice`` / ``iou`` are of
the foreground class; ``average_precision`` (DSB 2018), ``average_precision_50`` (its ``TP / (TP + FP +
FN)`` at IoU > 0.5), ``f1`` (IoU > 0.5) and ``panoptic_quality`` use the components.
"""


@dataclass(frozen=True)
class SweepResult:
    """One metric over a threshold sweep.

    Attributes:
        metric: the metric's name (a key of :data:`METRICS`).
        best_threshold: the threshold with the best value (the first one on ties).
        best_value: the metric's value there.
        thresholds: ``(T,)`` the thresholds tried.
        values: ``(T,)`` the metric at each threshold.
        higher_is_better: the direction of "best".
        details: the full result object per threshold (e.g. :class:`RandScores`).
    """

    metric: str
    best_threshold: float
    best_value: float
    thresholds: tuple[float, ...]
    values: tuple[float, ...]
    higher_is_better: bool
    details: tuple[Any, ...] = field(repr=False, compare=False)

    @property
    def best_detail(self) -> Any:
        """The full result object at the best threshold."""
        return self.details[self.thresholds.index(self.best_threshold)]


def best_index(values: Sequence[float], higher_is_better: bool) -> int:
    """Index of the best finite value (the first on ties; 0 if none is finite)."""
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    if not finite.any():
        return 0
    filled = np.where(finite, array, -np.inf if higher_is_better else np.inf)
    return int(np.argmax(filled) if higher_is_better else np.argmin(filled))


def score_metrics(
    gt: np.ndarray,
    binary: np.ndarray,
    metrics: Sequence[str],
    *,
    components: np.ndarray | None = None,
    connectivity: int = 1,
) -> dict[str, Any]:
    """Score metrics of one binary prediction (no sweep); returns ``{metric: result object}``.

    Args:
        gt: integer ground-truth labels, 0 = boundary/background.
        binary: the predicted foreground, same shape.
        metrics: names from :data:`METRICS`.
        components: the predicted segments before growing; by default the connected components of
            ``binary`` (pass an instance label map here to score it as given).
        connectivity: of the components (1 = 4-connected in 2D) when they are computed here.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    needs = {METRICS[name].input for name in metrics}
    inputs: dict[str, np.ndarray] = {"binary": binary}
    if needs & {"components", "grown"}:
        inputs["components"] = label_components(binary, connectivity) if components is None else components
    if "grown" in needs:
        inputs["grown"] = grow_segments(inputs["components"])
    return {name: METRICS[name].score(gt, inputs[METRICS[name].input]) for name in metrics}


def sweep_metrics(
    prob: np.ndarray,
    gt: np.ndarray,
    metrics: Sequence[str] = (names.ADAPTED_RAND_ERROR, names.PIXEL_ERROR),
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    connectivity: int = 1,
) -> dict[str, SweepResult]:
    """Score several metrics at every threshold, thresholding and labelling only once per threshold.

    Args:
        prob: ``(Y, X)`` or ``(Z, Y, X)`` foreground probability (ISBI: cell interior), in [0, 1].
        gt: integer ground-truth labels of the same shape, 0 = boundary/background (see module doc).
        metrics: names from :data:`METRICS`.
        thresholds: foreground is ``prob > threshold``.
        connectivity: of the components (1 = 4-connected in 2D).

    Returns:
        ``{metric: SweepResult}`` in the order asked.

    Raises:
        DataError: different shapes or non-integer ground truth.
        ValueError: an unknown metric name or no thresholds.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {sorted(METRICS)}")
    if len(thresholds) == 0:
        raise ValueError("at least one threshold is needed")
    check_same_shape(gt, prob)
    details: dict[str, list[Any]] = {name: [] for name in metrics}
    for threshold in thresholds:
        binary = np.asarray(prob) > threshold
        for name, result in score_metrics(gt, binary, metrics, connectivity=connectivity).items():
            details[name].append(result)
    results = {}
    for name in metrics:
        spec = METRICS[name]
        values = tuple(float(spec.value(d)) for d in details[name])
        best = best_index(values, spec.higher_is_better)
        results[name] = SweepResult(
            metric=name,
            best_threshold=float(thresholds[best]),
            best_value=values[best],
            thresholds=tuple(float(t) for t in thresholds),
            values=values,
            higher_is_better=spec.higher_is_better,
            details=tuple(details[name]),
        )
    return results


def sweep_thresholds(
    prob: np.ndarray,
    gt: np.ndarray,
    metric: str = names.ADAPTED_RAND_ERROR,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> SweepResult:
    """Best value of one metric over a threshold sweep (the ISBI 2012 protocol).

    Example: ``sweep_thresholds(interior_prob, cells, "adapted_rand_error").best_value`` is the grown Rand
    error at the best of the thresholds 0.1..0.9, with ``cells`` the ground-truth cell ids (0 =
    membrane, ignored).  See :func:`sweep_metrics` for the arguments.
    """
    return sweep_metrics(prob, gt, (metric,), thresholds)[metric]
