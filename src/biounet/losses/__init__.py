"""Losses and the paper's loss weights.

- :func:`weighted_cross_entropy` (eq. 1), :func:`soft_dice_loss`, :class:`SegmentationLoss`,
  :func:`build_loss` (``"wce"``, ``"ce"``, ``"dice"``, ``"dice_ce"``), :func:`cldice_loss` and
  :func:`soft_skeleton` (clDice, a topology term for thin structures such as membranes).
- :class:`ClassAndDistanceLoss`: the class loss on the class channels plus :func:`distance_loss` (binary
  cross-entropy) of a distance output's channel (touching objects with ``TargetConfig.distance``).
- :func:`unet_weight_map` (eq. 2) = :func:`class_balance_weights` + :func:`border_weights`, computed
  with a few distance transforms per image (not one per cell); :class:`WeightMapCache` keeps one per image.
"""

from __future__ import annotations

from biounet.losses.distance import ClassAndDistanceLoss, distance_loss
from biounet.losses.segmentation import (
    LOSS_NAMES,
    SegmentationLoss,
    build_loss,
    cldice_loss,
    soft_dice_loss,
    soft_skeleton,
    weighted_cross_entropy,
)
from biounet.losses.weight_map import (
    WeightMapCache,
    border_cutoff,
    border_weights,
    border_weights_bruteforce,
    cell_colouring,
    class_balance_weights,
    unet_weight_map,
)

__all__ = [
    "LOSS_NAMES",
    "ClassAndDistanceLoss",
    "SegmentationLoss",
    "WeightMapCache",
    "border_cutoff",
    "border_weights",
    "border_weights_bruteforce",
    "build_loss",
    "cell_colouring",
    "cldice_loss",
    "class_balance_weights",
    "distance_loss",
    "soft_dice_loss",
    "soft_skeleton",
    "unet_weight_map",
    "weighted_cross_entropy",
]
