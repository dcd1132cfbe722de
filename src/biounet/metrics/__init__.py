"""Segmentation metrics of the field: ISBI 2012 (Rand, warping, pixel error), SNEMI3D, DSB 2018, Dice/IoU.

All functions take NumPy arrays of equal shape, 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` (the warping error
is 2D, applied slice by slice to stacks), and return small frozen dataclasses or floats.

Typical validation use::

    from biounet.metrics import adapted_rand_error, match_instances, segments_from_probability

    segments = segments_from_probability(interior_prob, threshold=0.5)  # every pixel gets an id
    rand = adapted_rand_error(gt_cells, segments)                        # gt 0 = membrane, ignored
    rand.error, rand.split, rand.merge
    match = match_instances(gt_instances, pred_instances, iou_threshold=0.5)
    match.f1, match.precision, match.recall
"""

from biounet.metrics.contingency import Contingency, contingency_table
from biounet.metrics.matching import (
    DSB_IOU_THRESHOLDS,
    AveragePrecision,
    InstanceOverlaps,
    MatchResult,
    PanopticQuality,
    average_precision_dsb,
    instance_overlaps,
    match_instances,
    panoptic_quality,
)
from biounet.metrics.overlap import dice_per_class, iou_per_class
from biounet.metrics.pixel import pixel_error
from biounet.metrics.rand import (
    RandScores,
    RandVI,
    VIScores,
    adapted_rand_error,
    rand_and_vi,
    variation_of_information,
)
from biounet.metrics.segmentation import (
    cells_from_isbi_label,
    grow_segments,
    label_components,
    segments_from_probability,
)
from biounet.metrics.sweep import (
    DEFAULT_THRESHOLDS,
    METRICS,
    SweepResult,
    score_metrics,
    sweep_metrics,
    sweep_thresholds,
)
from biounet.metrics.warping import WarpingResult, simple_point_table, warp_binary, warping_error

__all__ = [
    "DEFAULT_THRESHOLDS",
    "DSB_IOU_THRESHOLDS",
    "METRICS",
    "AveragePrecision",
    "Contingency",
    "InstanceOverlaps",
    "MatchResult",
    "PanopticQuality",
    "RandScores",
    "RandVI",
    "SweepResult",
    "VIScores",
    "WarpingResult",
    "adapted_rand_error",
    "average_precision_dsb",
    "cells_from_isbi_label",
    "contingency_table",
    "dice_per_class",
    "grow_segments",
    "instance_overlaps",
    "iou_per_class",
    "label_components",
    "match_instances",
    "panoptic_quality",
    "pixel_error",
    "rand_and_vi",
    "score_metrics",
    "segments_from_probability",
    "simple_point_table",
    "sweep_metrics",
    "sweep_thresholds",
    "variation_of_information",
    "warp_binary",
    "warping_error",
]
