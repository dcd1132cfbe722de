"""The one spelling of every metric name: JSON/CSV keys of ``biounet evaluate``, validation metrics,
training history (``val_`` + name), the stored validation of a model, and :data:`biounet.metrics.METRICS`.

Names are spelt out in full (``adapted_rand_error``, not ``rand_err``) so that a key read anywhere says
what it is; :data:`COLUMN_TITLES` holds the only abbreviations, the column headers of the printed table.
This module imports nothing, so every layer (metrics, training, evaluation, benchmarks) can use it.
"""

from __future__ import annotations

# Scores of a segmentation (ISBI 2012 / SNEMI3D); lower is better.
ADAPTED_RAND_ERROR = "adapted_rand_error"  # 1 - Rand F-score of grown segments, GT label 0 ignored
ADAPTED_RAND_ERROR_RAW = "adapted_rand_error_raw"  # the same of the components as thresholded (not grown)
CELLS_ADAPTED_RAND_ERROR = "cells_adapted_rand_error"  # the same of inference.cells (watershed + agglomeration)
VARIATION_OF_INFORMATION = "variation_of_information"  # bits
WARPING_ERROR = "warping_error"  # fraction of pixels still wrong after topology-preserving warping
PIXEL_ERROR = "pixel_error"  # 1 - pixel accuracy

# Scores of objects and classes; higher is better.
AVERAGE_PRECISION = "average_precision"  # DSB 2018: mean over IoU 0.5..0.95 of TP / (TP + FP + FN)
AVERAGE_PRECISION_50 = "average_precision_50"  # TP / (TP + FP + FN) at IoU > 0.5 alone ("AP50" of the DSB score)
F1 = "f1"  # of the object matches at IoU > 0.5
PANOPTIC_QUALITY = "panoptic_quality"
DICE = "dice"  # of the foreground class (per class in tables: dice_<c>)
IOU = "iou"  # of the foreground class (per class in tables: iou_<c>)
FOREGROUND_IOU = "foreground_iou"  # validation of touching objects: IoU of the foreground the instances cover
MEAN_IOU = "mean_iou"  # validation of semantic classes: mean over the classes
MEAN_DICE = "mean_dice"

#: Every score above and whether higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    ADAPTED_RAND_ERROR: False,
    ADAPTED_RAND_ERROR_RAW: False,
    CELLS_ADAPTED_RAND_ERROR: False,
    VARIATION_OF_INFORMATION: False,
    WARPING_ERROR: False,
    PIXEL_ERROR: False,
    AVERAGE_PRECISION: True,
    AVERAGE_PRECISION_50: True,
    F1: True,
    PANOPTIC_QUALITY: True,
    DICE: True,
    IOU: True,
    FOREGROUND_IOU: True,
    MEAN_IOU: True,
    MEAN_DICE: True,
}

#: Short column headers of the ``biounet evaluate`` table; other names are their own header.
COLUMN_TITLES: dict[str, str] = {
    ADAPTED_RAND_ERROR: "rand_err",
    CELLS_ADAPTED_RAND_ERROR: "cells_rand_err",
    VARIATION_OF_INFORMATION: "VI",
    WARPING_ERROR: "warp_err",
    PIXEL_ERROR: "pixel_err",
    AVERAGE_PRECISION: "AP_dsb",
    AVERAGE_PRECISION_50: "AP50",
    PANOPTIC_QUALITY: "PQ",
}


def column_title(name: str) -> str:
    """The table header of a metric (its short title, else the name itself)."""
    return COLUMN_TITLES.get(name, name)


def class_key(name: str, class_index: int) -> str:
    """The key of a per-class score: ``dice_2`` is the Dice of class 2 (``biounet evaluate --task semantic``)."""
    return f"{name}_{int(class_index)}"


def threshold_key(name: str) -> str:
    """The key of the threshold at which a swept metric is reported (``adapted_rand_error_threshold``)."""
    return f"{name}_threshold"


__all__ = [
    "ADAPTED_RAND_ERROR",
    "ADAPTED_RAND_ERROR_RAW",
    "AVERAGE_PRECISION",
    "AVERAGE_PRECISION_50",
    "CELLS_ADAPTED_RAND_ERROR",
    "COLUMN_TITLES",
    "DICE",
    "F1",
    "FOREGROUND_IOU",
    "HIGHER_IS_BETTER",
    "IOU",
    "MEAN_DICE",
    "MEAN_IOU",
    "PANOPTIC_QUALITY",
    "PIXEL_ERROR",
    "VARIATION_OF_INFORMATION",
    "WARPING_ERROR",
    "class_key",
    "column_title",
    "threshold_key",
]
