"""One optimiser step: the forward pass and loss of a batch, then backward, clipping, update and average.

Split in two so the trainer can look at the loss (NaN, infinite) before a bad gradient reaches the weights.
In a data-parallel run ``parts.network`` is DistributedDataParallel around ``parts.model``: its backward
averages the ranks' gradients, and ``parts.criterion`` has scaled each rank's loss so that the average is
the gradient of the global batch (:mod:`biounet.training.distributed`).
"""

from __future__ import annotations

import torch

from biounet import runtime
from biounet.data.dataset import Batch
from biounet.errors import BiounetError
from biounet.training.setup import RunSetup


class TrainingDivergedError(BiounetError, RuntimeError):
    """The loss (or a weight) became NaN or infinite; the last good checkpoint is kept."""


def forward_loss(parts: RunSetup, batch: Batch) -> torch.Tensor:
    """The loss of ``batch`` (images ``(b, C, *tile)``) on ``parts.device``; its global value is
    ``parts.criterion.value``. The loss is computed outside autocast (in float32: the class loss and the
    distance term of a distance output, whose target ``batch.distances`` comes along when the run has one)."""
    device, fmt = parts.device, parts.memory_format
    images = torch.from_numpy(batch.images).to(device).contiguous(memory_format=fmt)
    labels = torch.from_numpy(batch.labels).to(device)
    weights = torch.from_numpy(batch.weights).to(device) if batch.weights is not None else None
    distances = torch.from_numpy(batch.distances).to(device) if batch.distances is not None else None
    with runtime.autocast(parts.precision, device):
        logits = parts.network(images)
    return parts.criterion(logits, labels, weights, distances)


def backward_step(parts: RunSetup, loss: torch.Tensor, grad_clip: float | None) -> None:
    """Backward (gradients averaged over ranks), optional clipping of the gradient norm, update, average."""
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    if grad_clip:
        parts.scaler.unscale_(parts.optimizer)
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), grad_clip)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    if parts.average is not None:
        parts.average.update_parameters(parts.model)


def non_finite_weight(model: torch.nn.Module) -> str | None:
    """The name of the first parameter or buffer of ``model`` with a NaN or infinite value, else ``None``."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


__all__ = ["TrainingDivergedError", "backward_step", "forward_loss", "non_finite_weight"]
