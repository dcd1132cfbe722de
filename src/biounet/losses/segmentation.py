"""Segmentation losses: the paper's weighted cross-entropy (eq. 1), soft Dice, their sum, and clDice.

All losses take raw logits ``(B, C, *S)`` (softmax inside, over C >= 2 classes) and an integer target
``(B, *S)``; pixels equal to ``ignore_index`` contribute nothing. They compute in float32 even when the
logits come from a bf16/fp16 autocast region.

clDice (Shit et al., "clDice - a novel topology-preserving loss function for tubular structure
segmentation", CVPR 2021) scores thin structures by their *skeletons*: the fraction of the true
skeleton covered by the prediction (a gap in a predicted membrane leaves part of the true skeleton
uncovered) and the fraction of the predicted skeleton inside the truth (a spurious membrane). Those are
the errors that merge and split cells, which pixel-wise losses weigh by their few pixels only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The names accepted by :func:`build_loss`.
LOSS_NAMES = ("wce", "ce", "dice", "dice_ce")


def _neighbours(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``x`` shifted by one pixel either way along ``dim``, the edge pixel repeated (so it never wins)."""
    n = x.shape[dim]
    if n == 1:
        return x, x
    before = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    after = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    return before, after


def soft_erode(x: Tensor) -> Tensor:
    """Grey-value erosion of ``(B, C, *S)`` maps by a cross (the pixel and its face neighbours).

    The minimum over shifted copies, taken in one reduction (whose gradient goes to one neighbour,
    not split between ties): several times faster on CPU than min-pooling and its backward pass.
    """
    candidates = [x]
    for dim in range(2, x.ndim):
        candidates += _neighbours(x, dim)
    return torch.stack(candidates).min(dim=0).values


def soft_dilate(x: Tensor) -> Tensor:
    """Grey-value dilation of ``(B, C, *S)`` maps by a 3x3 (3x3x3) square: a maximum along each axis."""
    for dim in range(2, x.ndim):
        x = torch.stack([x, *_neighbours(x, dim)]).max(dim=0).values
    return x


def soft_skeleton(x: Tensor, iterations: int) -> Tensor:
    """Differentiable skeleton of ``(B, C, *S)`` maps in [0, 1] (clDice, Shit et al. 2021, Alg. 1).

    Iterated erosions peel the structure one pixel a step; what an opening removes at each step is
    the skeleton there. ``iterations`` must reach half the thickest structure (in pixels); on binary
    maps the result is a binary skeleton. The opening of the ``k``-th erosion is the dilation of the
    ``k+1``-th, so each erosion is computed once.
    """
    eroded = [x]
    for _ in range(iterations + 1):
        eroded.append(soft_erode(eroded[-1]))
    skeleton = F.relu(eroded[0] - soft_dilate(eroded[1]))
    for k in range(1, iterations + 1):
        delta = F.relu(eroded[k] - soft_dilate(eroded[k + 1]))
        skeleton = skeleton + F.relu(delta - skeleton * delta)
    return skeleton


def cldice_loss(
    logits: Tensor, target: Tensor, structure_class: int, iterations: int = 5, ignore_index: int = -1,
    smooth: float = 1.0,
) -> Tensor:
    """``1 - clDice`` of class ``structure_class`` (e.g. the membranes), from raw logits.

    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` with ``Tsens = |S(T) P| / |S(T)|`` (the true skeleton
    covered by the predicted probability P: gaps lower it) and ``Tprec = |S(P) T| / |S(P)|`` (the
    predicted skeleton inside the truth T: spurious structures lower it), sums over the whole batch.

    Args:
        logits: ``(B, C, *S)`` raw scores (2D or 3D).
        target: ``(B, *S)`` integer classes or ``ignore_index``.
        structure_class: the class of the thin structure.
        iterations: soft-skeleton iterations (about half the structure's largest thickness in pixels).
        ignore_index: target value of pixels to ignore.
        smooth: added to numerators and denominators.

    Returns:
        Scalar float32 tensor in [0, 1].
    """
    _check_shapes(logits, target, None)
    probability = torch.softmax(logits.float(), dim=1)[:, structure_class : structure_class + 1]
    valid = (target != ignore_index).unsqueeze(1).float()
    truth = (target == structure_class).unsqueeze(1).float()
    probability = probability * valid
    skeleton_pred = soft_skeleton(probability, iterations) * valid
    with torch.no_grad():
        skeleton_true = soft_skeleton(truth, iterations) * valid
    precision = ((skeleton_pred * truth).sum() + smooth) / (skeleton_pred.sum() + smooth)
    sensitivity = ((skeleton_true * probability).sum() + smooth) / (skeleton_true.sum() + smooth)
    return 1.0 - 2.0 * precision * sensitivity / (precision + sensitivity)


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

    ``cldice_weight > 0`` adds ``cldice_weight * (1 - clDice)`` of class ``cldice_class`` to any of them
    (:func:`cldice_loss`).
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
        cldice_weight: float = 0.0,
        cldice_class: int = 1,
        cldice_iterations: int = 5,
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
        self.cldice_weight = cldice_weight
        self.cldice_class = cldice_class
        self.cldice_iterations = cldice_iterations

    @property
    def uses_weight_map(self) -> bool:
        """Whether :meth:`forward` uses a weight map (so the caller needs to compute one)."""
        return self.name in ("wce", "dice_ce")

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        """Scalar loss of ``logits`` ``(B, C, *S)`` for ``target`` ``(B, *S)`` and optional ``weight`` ``(B, *S)``."""
        loss = self._pixel_loss(logits, target, weight if self.uses_weight_map else None)
        if self.cldice_weight > 0:
            loss = loss + self.cldice_weight * cldice_loss(
                logits, target, self.cldice_class, self.cldice_iterations, self.ignore_index
            )
        return loss

    def _pixel_loss(self, logits: Tensor, target: Tensor, weight: Tensor | None) -> Tensor:
        if self.name in ("wce", "ce"):
            return weighted_cross_entropy(logits, target, weight, self.ignore_index)
        dice = soft_dice_loss(logits, target, self.ignore_index, self.include_background, self.smooth)
        if self.name == "dice":
            return dice
        cross_entropy = weighted_cross_entropy(logits, target, weight, self.ignore_index)
        return self.dice_weight * dice + self.ce_weight * cross_entropy

    def extra_repr(self) -> str:
        cldice = f", cldice_weight={self.cldice_weight}, cldice_class={self.cldice_class}" if self.cldice_weight else ""
        return f"name={self.name!r}, ignore_index={self.ignore_index}{cldice}"


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
