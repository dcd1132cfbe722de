"""A moving average of the weights (``optim.ema``), validated and saved instead of the trained weights.

The average is steadier from one checkpoint to the next than the weights themselves, which matters when
the best model is chosen by validation every few hundred steps.
"""

from __future__ import annotations

import torch


def build_weight_average(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """An exponential moving average of ``model``'s parameters and buffers (batch-norm statistics).

    After ``n`` updates the average moves towards the weights by ``1 - min(decay, (1 + n) / (10 + n))``,
    so the random initial weights are forgotten quickly in short runs. Integer buffers are copied.
    """

    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        n = float(updates)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, weight)
        else:
            for mean, value in zip(averaged, current):
                mean.copy_(value)

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


__all__ = ["build_weight_average"]
