"""Segmentation losses: the paper's weighted cross-entropy (eq. 1), soft Dice and their sum.

All losses take raw logits ``(B, C, *S)`` (softmax inside, over C >= 2 classes) and an integer target
``(B, *S)``; pixels equal to ``ignore_index`` contribute nothing. They compute in float32 even when the
logits come from a bf16/fp16 autocast region.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The names accepted by :func:`build_loss`.
LOSS_NAMES = ("wce", "ce", "dice", "dice_ce")


def weighted_cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -1
) -> Tensor:
    """The paper's energy (eq. 1): pixel-weighted negative log-likelihood of the softmax.

    ``loss = sum_x w(x) * -log p_{l(x)}(x) / N`` with ``N`` the number of non-ignored pixels, i.e. the
    mean over pixels of the weighted NLL (not divided by the sum of weights, so the border weights of eq. 2
    really increase the gradient at borders; with ``w = 1`` it equals ``F.cross_entropy``).

    Args:
        logits: ``(B, C, *S)`` raw scores.
        target: ``(B, *S)`` integer classes in ``[0, C)`` or ``ignore_index``.
        weight: ``(B, *S)`` per-pixel weights (e.g. :func:`biounet.losses.unet_weight_map`), or None for 1.
        ignore_index: target value of pixels to ignore.

    Returns:
        Scalar float32 tensor (0 when every pixel is ignored).
    """
    _check_shapes(logits, target, weight)
    nll = F.cross_entropy(logits.float(), target.long(), reduction="none", ignore_index=ignore_index)
    if weight is not None:
        nll = nll * weight.float()
    count = (target != ignore_index).sum().clamp_min(1)
    return nll.sum() / count


def soft_dice_loss(
    logits: Tensor,
    target: Tensor,
    ignore_index: int = -1,
    include_background: bool = False,
    smooth: float = 1e-5,
) -> Tensor:
    """``1 - mean over classes of (2 |P n T| + smooth) / (|P| + |T| + smooth)`` with softmax probabilities P.

    The sums run over the whole batch and all pixels ("batch Dice"), which is stable for small tiles
    where a class can be absent from one sample. Ignored pixels are left out.

    Args:
        logits: ``(B, C, *S)`` raw scores, ``C >= 2``.
        target: ``(B, *S)`` integer classes in ``[0, C)`` or ``ignore_index``.
        ignore_index: target value of pixels to ignore.
        include_background: whether class 0 counts in the mean.
        smooth: added to numerator and denominator (a class absent from prediction and target scores 1).

    Returns:
        Scalar float32 tensor in [0, 1].
    """
    _check_shapes(logits, target, None)
    classes = logits.shape[1]
    if classes < 2:
        raise ValueError(f"soft_dice_loss needs logits with at least 2 classes, got {classes}")
    probabilities = torch.softmax(logits.float(), dim=1)
    valid = target != ignore_index
    one_hot = F.one_hot(torch.where(valid, target, 0).long(), classes).movedim(-1, 1).float()
    mask = valid.unsqueeze(1).float()
    probabilities = probabilities * mask
    one_hot = one_hot * mask
    dims = (0, *range(2, logits.ndim))
    intersection = (probabilities * one_hot).sum(dims)
    total = probabilities.sum(dims) + one_hot.sum(dims)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    if not include_background:
        dice = dice[1:]
    return 1.0 - dice.mean()


class SegmentationLoss(nn.Module):
    """A segmentation loss chosen by name.

    - ``"wce"``: :func:`weighted_cross_entropy` with the weight map passed to :meth:`forward` (the paper).
    - ``"ce"``: plain cross-entropy (any weight map is ignored).
    - ``"dice"``: :func:`soft_dice_loss` (any weight map is ignored).
    - ``"dice_ce"``: ``dice_weight * dice + ce_weight * weighted cross-entropy`` (weight map used if given).
    """

    def __init__(
        self,
        name: str = "wce",
        *,
        ignore_index: int = -1,
        include_background: bool = False,
        smooth: float = 1e-5,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if name not in LOSS_NAMES:
            raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
        self.name = name
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.smooth = smooth
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight

    @property
    def uses_weight_map(self) -> bool:
        """Whether :meth:`forward` uses a weight map (so the caller needs to compute one)."""
        return self.name in ("wce", "dice_ce")

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """Scalar loss of ``logits`` ``(B, C, *S)`` for ``target`` ``(B, *S)`` and optional ``weight`` ``(B, *S)``."""
        if not self.uses_weight_map:
            weight = None
        if self.name in ("wce", "ce"):
            return weighted_cross_entropy(logits, target, weight, self.ignore_index)
        dice = soft_dice_loss(logits, target, self.ignore_index, self.include_background, self.smooth)
        if self.name == "dice":
            return dice
        cross_entropy = weighted_cross_entropy(logits, target, weight, self.ignore_index)
        return self.dice_weight * dice + self.ce_weight * cross_entropy

    def extra_repr(self) -> str:
        return f"name={self.name!r}, ignore_index={self.ignore_index}"


def build_loss(name: str, **kwargs: float | int | bool) -> SegmentationLoss:
    """The loss called ``name`` (one of :data:`LOSS_NAMES`); ``kwargs`` go to :class:`SegmentationLoss`."""
    return SegmentationLoss(name, **kwargs)


def _check_shapes(logits: Tensor, target: Tensor, weight: Tensor | None) -> None:
    if logits.ndim < 3:
        raise ValueError(f"logits must have shape (B, C, *S), not {tuple(logits.shape)}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target has shape {tuple(target.shape)} but the logits need {expected}")
    if weight is not None and tuple(weight.shape) != expected:
        raise ValueError(f"weight has shape {tuple(weight.shape)} but the logits need {expected}")
