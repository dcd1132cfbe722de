"""The loss of a network with a distance output: the class loss on the class channels plus a distance term.

A touching-objects network trained with ``TargetConfig.distance`` outputs ``K`` class logits and then one
distance logit (channel ``K``, ``TargetConfig.distance_channel``) whose sigmoid is the predicted normalised
distance of a pixel to its object's border (:func:`biounet.data.targets.distance_target`: 1 at an object's
centre, falling to its border, 0 on the background). :class:`ClassAndDistanceLoss` gives the ``K`` class
channels to the class loss unchanged (:class:`~biounet.losses.SegmentationLoss`: its softmax never sees the
distance logit, so the classes learn exactly as without a distance output) and adds
``distance_weight * distance_loss``.

:func:`distance_loss` is the binary cross-entropy of the distance logit against the soft target, the mean
over every pixel of the tiles, background included (its target 0 teaches "no object here", which keeps the
seeds' landscape flat between objects). Cross-entropy rather than a squared error because the target is a
value in [0, 1] read through a sigmoid, like a probability: its gradient ``sigmoid(z) - t`` does not vanish
where the sigmoid saturates, and a soft target makes it a regression (StarDist trains its object
probability, the same normalised distance, this way). For a soft target the loss does not reach 0: its
least value is the target's own entropy (about half a nat per object pixel of a disc), so the logged loss of a
distance run stays above the class loss even when the distance is learnt perfectly.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from biounet.losses.segmentation import SegmentationLoss


def distance_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of distance logits ``(B, *S)`` against soft targets ``(B, *S)`` in [0, 1].

    The mean over all ``B * prod(S)`` pixels, computed in float32 (also from bf16/fp16 logits); the sigmoid
    is inside (``binary_cross_entropy_with_logits``: stable for large logits). Returns a scalar float32 tensor.
    """
    if tuple(logits.shape) != tuple(target.shape):
        raise ValueError(f"the distance target has shape {tuple(target.shape)} but the logits {tuple(logits.shape)}")
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


class ClassAndDistanceLoss(nn.Module):
    """The class loss on channels ``0 .. distance_channel - 1`` plus ``distance_weight`` times
    :func:`distance_loss` of channel ``distance_channel`` (the last).

    Args:
        classes: the class loss (cross-entropy with the weight map, Dice, ...), given only the class logits.
        distance_channel: the distance logit's channel, equal to the number of classes; ``None``: no distance
            output, every channel is a class and the loss is ``classes`` alone.
        distance_weight: the distance term's weight (>= 0; 0 leaves the distance channel untrained).
    """

    def __init__(self, classes: SegmentationLoss, distance_channel: int | None = None,
                 distance_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= distance_weight < math.inf:
            raise ValueError(f"distance_weight must be a finite number >= 0, not {distance_weight}")
        if distance_channel is not None and distance_channel < 2:
            raise ValueError(f"distance_channel comes after at least 2 classes, not at {distance_channel}")
        self.classes = classes
        self.distance_channel = distance_channel
        self.distance_weight = float(distance_weight)

    def terms(self, logits: Tensor, target: Tensor, weight: Tensor | None = None,
              distance: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """``(class loss, distance loss)`` of ``logits`` ``(B, K [+ 1], *S)``; the distance loss is unweighted and
        ``None`` without a distance channel. ``target``, ``weight`` ``(B, *S)`` as for the class loss;
        ``distance`` ``(B, *S)`` float in [0, 1], required exactly when there is a distance channel."""
        if self.distance_channel is None:
            if distance is not None:
                raise ValueError("a distance target was given but the loss has no distance channel")
            return self.classes(logits, target, weight), None
        if logits.ndim < 3 or logits.shape[1] != self.distance_channel + 1:
            raise ValueError(f"logits of shape {tuple(logits.shape)}: expected {self.distance_channel} class "
                             "channels and the distance channel")
        if distance is None:
            raise ValueError("the distance channel needs a distance target")
        class_loss = self.classes(logits[:, : self.distance_channel], target, weight)
        return class_loss, distance_loss(logits[:, self.distance_channel], distance)

    def combine(self, class_loss: Tensor, distance: Tensor | None) -> Tensor:
        """``class_loss + distance_weight * distance`` (``class_loss`` alone without a distance term)."""
        return class_loss if distance is None else class_loss + self.distance_weight * distance

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None,
                distance: Tensor | None = None) -> Tensor:
        """Scalar float32 loss; arguments as for :meth:`terms`."""
        return self.combine(*self.terms(logits, target, weight, distance))

    def extra_repr(self) -> str:
        if self.distance_channel is None:
            return ""
        return f"distance_channel={self.distance_channel}, distance_weight={self.distance_weight}"
