"""What each evaluation task scores, and how a prediction array is read.

Import-light (no NumPy at import time) so that ``biounet --help`` can list the choices quickly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from biounet.metrics import names

if TYPE_CHECKING:
    import numpy as np

TASKS = ("isbi", "instances", "semantic")
PRED_KINDS = ("auto", "probability", "labels", "binary")

#: The metrics of each task (keys of :data:`biounet.metrics.METRICS`), in table order.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "isbi": (names.ADAPTED_RAND_ERROR, names.VARIATION_OF_INFORMATION, names.WARPING_ERROR, names.PIXEL_ERROR),
    "instances": (names.AVERAGE_PRECISION, names.AVERAGE_PRECISION_50, names.F1, names.PANOPTIC_QUALITY),
    "semantic": (names.PIXEL_ERROR, names.DICE, names.IOU),
}

#: The metric that chooses a task's threshold.  None: every metric at its own best threshold, the ISBI
#: 2012 protocol; the object and class tasks report all metrics at one threshold so that they agree.
TASK_SELECTOR: dict[str, str | None] = {"isbi": None, "instances": names.AVERAGE_PRECISION, "semantic": names.DICE}


def higher_is_better(metric: str) -> bool:
    """Direction of a metric; per-class names (``dice_1``, ``iou_0``) follow their family."""
    family = metric.rsplit("_", 1)[0] if metric.rsplit("_", 1)[-1].isdigit() else metric
    return names.HIGHER_IS_BETTER[family]


def parse_thresholds(values: list[str] | None) -> tuple[float, ...]:
    """``["0.1:0.9:0.1"]`` or ``["0.3", "0.5"]`` -> thresholds; None -> the ISBI default 0.1..0.9."""
    from biounet.errors import DataError
    from biounet.metrics import DEFAULT_THRESHOLDS

    if not values:
        return DEFAULT_THRESHOLDS
    try:
        if len(values) == 1 and ":" in values[0]:
            start, stop, step = (float(v) for v in values[0].split(":"))
            if step <= 0:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            thresholds = tuple(round(start + i * step, 10) for i in range(count))
        else:
            thresholds = tuple(float(v) for v in values)
    except ValueError:
        raise DataError(f"--thresholds {' '.join(values)}: give numbers or START:STOP:STEP with STEP > 0") from None
    if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
        raise DataError(f"--thresholds {' '.join(values)}: thresholds must lie in [0, 1)")
    return thresholds


def is_binary(array: np.ndarray) -> bool:
    """True when the array holds at most two values, one of them 0 (a mask such as {0, 255})."""
    foreground = array[array != 0]
    return foreground.size == 0 or bool((foreground == foreground.flat[0]).all())


def prediction_kind(array: np.ndarray, task: str, requested: str, path: Path) -> str:
    """How to read a prediction: ``probability``, ``labels`` or ``binary``.

    ``requested`` is ``--pred-kind`` (``auto``: floats are probabilities, two values a binary mask,
    8-bit a probability scaled 0..255 for ``isbi``, other integers labels).
    """
    from biounet.errors import DataError

    if array.dtype.kind == "f":
        if requested in ("labels", "binary") and not is_binary(array):
            raise DataError(
                f"{path}: float values where integer {'instance ids' if requested == 'labels' else 'mask values'} "
                "are needed (save label maps as an integer type)"
            )
        if requested in ("labels", "binary"):
            return "binary"
        return "probability"
    if array.dtype.kind not in "uib":
        raise DataError(f"{path}: unsupported pixel type {array.dtype}")
    if requested != "auto":
        return requested
    if is_binary(array):
        return "binary"
    if task == "isbi" and array.dtype.kind == "u" and array.dtype.itemsize == 1:
        return "probability"
    return "labels"


__all__ = [
    "PRED_KINDS",
    "TASKS",
    "TASK_METRICS",
    "TASK_SELECTOR",
    "higher_is_better",
    "is_binary",
    "parse_thresholds",
    "prediction_kind",
]
