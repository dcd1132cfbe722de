"""Test-time augmentation: average the network over flips and 90-degree rotations of each tile batch.

``tta=1`` is the plain network; ``tta=4`` the four flips of the last two axes (identity, flip y, flip
x, both = 180 degrees); ``tta=8`` the whole dihedral group of the square (4 rotations, each with and
without a flip).  In 3D the transforms act in-plane (on y and x).  Each output is transformed back
before averaging, so the average is aligned with the input.  Rotations swap y and x, which a network
whose y and x axes differ (pooling factors or kernels) cannot take: ``tta=8`` is refused for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from biounet.model.config import UNetConfig
from biounet.model.outputs import output_probabilities

TTA_CHOICES = (1, 4, 8)


@dataclass(frozen=True)
class Transform:
    """Flip ``flip_axes`` (negative axis numbers), then rotate by ``quarter_turns`` x 90 degrees in (y, x)."""

    quarter_turns: int = 0
    flip_axes: tuple[int, ...] = ()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform a batch ``(B, C, *S)``."""
        if self.flip_axes:
            x = torch.flip(x, self.flip_axes)
        if self.quarter_turns:
            x = torch.rot90(x, self.quarter_turns, dims=(-2, -1))
        return x

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """Undo :meth:`apply` on a network output ``(B, K, *S_out)``."""
        if self.quarter_turns:
            y = torch.rot90(y, -self.quarter_turns, dims=(-2, -1))
        if self.flip_axes:
            y = torch.flip(y, self.flip_axes)
        return y


def tta_transforms(tta: int, config: UNetConfig) -> list[Transform]:
    """The ``tta`` transforms (1, 4 or 8) for a network with ``config``."""
    if tta == 1:
        return [Transform()]
    if tta == 4:
        return [Transform(0, axes) for axes in ((), (-1,), (-2,), (-2, -1))]
    if tta == 8:
        if not in_plane_isotropic(config):
            raise ValueError("tta=8 rotates y and x, but this network treats them differently; use tta=4 (flips)")
        return [Transform(turns, axes) for turns in range(4) for axes in ((), (-1,))]
    raise ValueError(f"tta must be one of {TTA_CHOICES}, not {tta!r}")


def in_plane_isotropic(config: UNetConfig) -> bool:
    """True when the last two axes have the same pooling factors and kernel sizes at every level."""
    return all(level[-1] == level[-2] for level in config.pool_factors) and all(
        kernel[-1] == kernel[-2] for kernel in config.kernel_sizes
    )


def averaged_outputs(
    forward: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    transforms: list[Transform],
    *,
    logits: bool,
    probabilities: bool,
    distance_channel: int | None = None,
) -> dict[str, torch.Tensor]:
    """Run ``forward`` on every transformed ``batch`` ``(B, C, *S)`` and average the inverted outputs.

    Returns float32 tensors ``(B, K, *S_out)``: ``"logits"`` (the mean of the logits) and/or
    ``"probabilities"`` (the mean of the per-transform softmax, which is what TTA should average; a
    ``distance_channel``'s sigmoid, :func:`~biounet.model.outputs.output_probabilities`).  The instances of
    touching objects are made once from these averaged maps (one watershed, not one per transform).
    """
    sums: dict[str, torch.Tensor] = {}
    for transform in transforms:
        out = transform.invert(forward(transform.apply(batch))).float()
        parts = {}
        if logits:
            parts["logits"] = out
        if probabilities:
            parts["probabilities"] = output_probabilities(out, distance_channel)
        for name, value in parts.items():
            sums[name] = value if name not in sums else sums[name] + value
    n = len(transforms)
    return {name: value / n if n > 1 else value for name, value in sums.items()}
