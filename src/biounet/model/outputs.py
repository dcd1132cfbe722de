"""How to read a U-Net's output channels: softmax class logits, then an optional distance channel.

The network returns logits ``(B, K + R, *S)``: ``K`` class logits whose softmax gives the class probabilities,
and for touching objects trained with a distance output (:attr:`biounet.data.targets.TargetConfig.distance`)
one more channel, at ``distance_channel = K``, whose sigmoid is the normalised distance to the object border
(0..1).  Inference averages and writes these *probabilities* (:func:`output_probabilities`); training takes the
same split in its loss.
"""

from __future__ import annotations

import torch


def output_probabilities(logits: torch.Tensor, distance_channel: int | None = None) -> torch.Tensor:
    """Probabilities ``(B, K[+1], *S)`` of logits ``(B, K[+1], *S)``: softmax over the class channels (all of them
    without a ``distance_channel``), the sigmoid of the distance channel and any after it."""
    if distance_channel is None:
        return torch.softmax(logits, dim=1)
    classes, rest = logits[:, :distance_channel], logits[:, distance_channel:]
    return torch.cat([torch.softmax(classes, dim=1), torch.sigmoid(rest)], dim=1)


__all__ = ["output_probabilities"]
