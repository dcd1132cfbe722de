"""Data-parallel training (PyTorch DistributedDataParallel): ranks, tiles, loss, stop and norm.

A run started by ``torchrun --nproc-per-node N -m biounet train ...`` (or ``biounet train --nproc N``)
has ``N`` ranks (processes); torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) says which one this process is
(:class:`DistributedContext`). Without those variables a run is one process, as before.

What makes ``N`` ranks at batch ``b`` train exactly like one process at batch ``N * b`` (to float
rounding; dropout aside, see below):

- **Tiles** (:class:`ShardedSampler`). Tile ``i`` of the global batch of step ``k`` is drawn (centre,
  augmentation, everything) from its own generator, seeded by ``(seed, k)`` and spawn key ``i``; rank
  ``r`` draws tiles ``r*b .. (r+1)*b - 1``. Each rank thus draws different tiles from its own seeded
  streams, and the ranks together draw the tiles one process at the global batch draws, by construction
  (also one process uses this rule, so the equality is a property, not a test-only mode). The tiles
  depend on ``(seed, step, index)`` only: a resumed run needs no saved sampler state on any rank.
- **Loss** (:class:`GlobalBatchLoss`). DDP averages the ranks' gradients. The pixel-mean losses (the
  eq.-1/eq.-2 weighted cross-entropy, ``wce`` and ``ce``: the sum of ``w(x) * -log p`` over the counted
  pixels, divided by their number) are normalised over the global batch: each rank's loss is scaled by
  ``N * pixels_rank / pixels_global`` (counts all-reduced), so the average of the gradients is the
  gradient of the global batch's loss, also when ranks count different numbers of pixels. The batch-level
  Dice and clDice terms do not split over ranks: they are the mean of the ranks' batch values. The distance
  term of a distance output (:class:`~biounet.losses.ClassAndDistanceLoss`: a mean over every pixel of the
  tiles) is a pixel mean too and is scaled the same way by its own counts, whatever the class loss is.
- **Normalisation**. Batch norm per rank is not batch norm over the global batch. On CUDA the network's
  batch norm becomes ``SyncBatchNorm`` (statistics over the global batch); on CPU (gloo) there is no
  synchronised batch norm, so a ``norm = "batch"`` network (the default recipe's) uses group norm
  instead (:func:`adapt_config`, recorded in ``config.json`` and the model). Group norm and no norm
  (the paper's recipe) are per-sample and need nothing.
- **Randomness in the forward** (dropout). Each rank's torch generator is re-seeded every step from
  ``(seed, step, rank)`` (:func:`seed_step`), so it is derivable on resume without saving every rank's
  state; the masks differ from one process's (a test of equality turns dropout off).
- **Stop** (:func:`agree`). Every step the ranks all-reduce (max) a small tensor: rank 0's elapsed time
  and its time-budget decision, and any rank's stop signal. All ranks use rank 0's clock for the
  learning-rate schedule and stop at the same step; clocks never disagree.
- **Files**. Rank 0 alone writes (run directory, checkpoints, report, ``train.log``, the weight-map cache,
  which the other ranks read after it: :func:`main_first`) and validates; the other ranks log errors only and
  show no progress bar. All ranks read the checkpoint on ``--resume``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from biounet.data.dataset import Batch, TileSampler
from biounet.losses import ClassAndDistanceLoss, SegmentationLoss
from biounet.training.config import ConfigError, TrainConfig

log = logging.getLogger("biounet.train")

#: How long a rank waits for the others in one collective (rank 0 validates while the others wait).
GROUP_TIMEOUT = timedelta(hours=2)

#: Losses that are a mean over pixels, so they split exactly over ranks (see the module docstring).
PIXEL_MEAN_LOSSES = ("wce", "ce")


@dataclass(frozen=True)
class DistributedContext:
    """Which process of a data-parallel run this is.

    Attributes:
        rank: this process's index among all, 0 .. world_size - 1 (rank 0 writes and validates).
        world_size: processes in the run (1: no data parallelism).
        local_rank: index among the processes on this machine (the CUDA device it uses).
        local_world_size: processes on this machine (they share its CPU cores).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        """More than one process: gradients are averaged, one rank writes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DistributedContext:
        """The context torchrun describes in ``env`` (``os.environ``); one process without ``WORLD_SIZE``."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return cls()
        try:
            world = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
            local_world = int(env.get("LOCAL_WORLD_SIZE", str(world)))
        except ValueError as error:
            raise ConfigError(f"torchrun's environment is not whole numbers: {error}") from error
        if not (world >= 1 and 0 <= rank < world and 0 <= local < local_world <= world):
            raise ConfigError(f"torchrun's environment is inconsistent: RANK {rank}, WORLD_SIZE {world}, "
                              f"LOCAL_RANK {local}, LOCAL_WORLD_SIZE {local_world}")
        return cls(rank, world, local, local_world)


def threads_per_rank(context: DistributedContext, requested: int | None) -> int | None:
    """PyTorch threads of this rank: ``requested``, else the machine's cores shared by its local ranks."""
    if requested is not None or not context.enabled:
        return requested
    return max(1, (os.cpu_count() or 1) // context.local_world_size)


def rank_device(context: DistributedContext, device: torch.device) -> torch.device:
    """``device`` for this rank: CUDA rank ``r`` on a machine uses GPU ``local_rank``."""
    if context.enabled and device.type == "cuda":
        return torch.device("cuda", context.local_rank)
    return device


def adapt_config(config: TrainConfig, context: DistributedContext, device: torch.device) -> None:
    """Record ``world_size`` and the global batch in ``config``; batch norm becomes group norm on CPU ranks."""
    if config.world_size != context.world_size and config.world_size > 1:
        log.warning(f"the run was made with {config.world_size} processes and continues with "
                    f"{context.world_size}: the global batch is now {config.batch_size * context.world_size}")
    config.world_size = context.world_size
    config.global_batch_size = config.batch_size * context.world_size
    if context.enabled and config.model.norm == "batch" and device.type != "cuda":
        log.info("batch norm cannot be synchronised across CPU processes: using group norm "
                 f"({config.model.group_norm_groups} groups) for this data-parallel run")
        config.model = config.model.replace(norm="group")


@contextlib.contextmanager
def process_group(context: DistributedContext, device: torch.device) -> Iterator[None]:
    """The process group of a data-parallel run inside the block (NCCL on CUDA, gloo on CPU); nothing for one
    process or when the caller has set one up already."""
    if not context.enabled or dist.is_initialized():
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(rank_device(context, device))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=GROUP_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def quiet_unless_main(context: DistributedContext) -> Iterator[None]:
    """Ranks other than 0 log errors only inside the block (the ``biounet`` logger's level is restored)."""
    logger = logging.getLogger("biounet")
    before = logger.level
    if not context.is_main:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def main_first(context: DistributedContext) -> Iterator[None]:
    """Rank 0 runs the block first, the others after it (a barrier): rank 0 writes a cache the others read."""
    if context.enabled and not context.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if context.enabled and context.is_main:
            dist.barrier()


def wrap_model(model: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """The module the steps run: ``model`` for one process, else DDP around it (SyncBatchNorm on CUDA)."""
    if not context.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def seed_step(context: DistributedContext, seed: int, step: int) -> None:
    """Seed torch's generator (dropout) for ``step`` on this rank from ``(seed, step, rank)``; ranks > 1 only."""
    if context.enabled:
        state = np.random.SeedSequence([int(seed), int(step), context.rank]).generate_state(1, np.uint64)
        torch.manual_seed(int(state[0]) & (2**63 - 1))


def agree(context: DistributedContext, device: torch.device, elapsed: float, out_of_time: bool,
          signum: int | None) -> tuple[float, str | None]:
    """``(elapsed seconds, stop reason)`` all ranks use for the next step: rank 0's clock and time decision,
    any rank's signal. The reason is ``None`` (go on), ``"time"`` or the signal's name."""
    import signal

    if context.enabled:
        main = context.is_main
        values = torch.tensor([float(signum or 0), float(out_of_time and main), elapsed if main else 0.0],
                              dtype=torch.float64, device=device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        signum = int(values[0].item()) or None
        out_of_time, elapsed = bool(values[1].item()), float(values[2].item())
    if signum:
        return elapsed, signal.Signals(signum).name
    return elapsed, "time" if out_of_time else None


class ShardedSampler:
    """This rank's share of the global batch, each tile from its own generator (see the module docstring).

    Args:
        sampler: cuts the augmented tiles.
        rank, world_size: this rank's slice of the global batch (``rank * size .. (rank + 1) * size - 1``).
    """

    def __init__(self, sampler: TileSampler, rank: int = 0, world_size: int = 1) -> None:
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size

    def batch(self, size: int, rng: np.random.Generator) -> Batch:
        """``size`` tiles of the step whose generator is ``rng`` (only its seed is used: ``(seed, step)``)."""
        parent = rng.bit_generator.seed_seq
        first = self.rank * size
        tiles = []
        for index in range(first, first + size):
            sequence = np.random.SeedSequence(parent.entropy, spawn_key=(*parent.spawn_key, index))
            tiles.append(self.sampler.tile(np.random.default_rng(sequence)))
        return Batch.stack(tiles)


class GlobalBatchLoss(nn.Module):
    """The loss of this rank's share, scaled so that DDP's gradient average is the global batch's gradient.

    ``value`` is the global batch's loss of the last call (the same on every rank: it is what the history
    logs and what the NaN check looks at). For one process it is the plain loss. ``loss`` is a class loss, or
    a :class:`~biounet.losses.ClassAndDistanceLoss` for a network with a distance output (``self.loss`` is
    always the latter).
    """

    def __init__(self, loss: SegmentationLoss | ClassAndDistanceLoss, context: DistributedContext) -> None:
        super().__init__()
        self.loss = loss if isinstance(loss, ClassAndDistanceLoss) else ClassAndDistanceLoss(loss)
        self.context = context
        self.value = math.nan

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None,
                distance: Tensor | None = None) -> Tensor:
        """Scalar loss of ``logits`` ``(b, C, *S)`` for ``target``, ``weight`` and ``distance`` ``(b, *S)``
        (:meth:`ClassAndDistanceLoss.terms <biounet.losses.ClassAndDistanceLoss.terms>`)."""
        class_loss, distance_term = self.loss.terms(logits, target, weight, distance)
        if not self.context.enabled:
            local = self.loss.combine(class_loss, distance_term)
            self.value = float(local.detach())
            return local
        classes, world = self.loss.classes, self.context.world_size
        pixels = (target != classes.ignore_index).sum().to(torch.float64)
        counted = torch.tensor(float(target.numel()), dtype=torch.float64, device=pixels.device)  # distance term
        part = class_loss.detach().to(torch.float64)
        spread = distance_term.detach().to(torch.float64) if distance_term is not None else torch.zeros_like(part)
        stats = torch.stack([part * pixels, pixels, part, spread * counted, counted])
        dist.all_reduce(stats)
        if classes.name in PIXEL_MEAN_LOSSES and not classes.cldice_weight:
            total = stats[1].clamp_min(1.0)
            value = float(stats[0] / total)
            class_loss = class_loss * (pixels * world / total).to(class_loss.dtype)
        else:
            value = float(stats[2]) / world
        if distance_term is not None:
            value += self.loss.distance_weight * float(stats[3] / stats[4])
            distance_term = distance_term * (counted * world / stats[4]).to(distance_term.dtype)
        self.value = value
        return self.loss.combine(class_loss, distance_term)


__all__ = [
    "DistributedContext", "GlobalBatchLoss", "ShardedSampler", "adapt_config", "agree", "main_first", "process_group",
    "quiet_unless_main", "rank_device", "seed_step", "threads_per_rank", "wrap_model",
]
