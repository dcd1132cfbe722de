"""Everything a run is built from before its first step: :class:`RunSetup` and :func:`build_run`.

The order of :func:`build_run` is part of reproducibility: the global generators of ``torch`` and
``random`` are seeded with ``config.seed`` after the data and weight maps are ready and just before the
network is created, so the same seed gives the same initial weights, dropout and augmentation.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biounet import runtime
from biounet.augmentation import Augmenter
from biounet.data.dataset import TileSampler
from biounet.data.readers import Sample, TrainingData
from biounet.losses import ClassAndDistanceLoss, build_loss
from biounet.model import UNet, UNetConfig, sizes
from biounet.model.anisotropy import anisotropic_layout, is_anisotropic, is_plain_layout
from biounet.training.averaging import build_weight_average
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.data import load_training_data
from biounet.training.distances import attach_distance_maps
from biounet.training.distributed import (
    DistributedContext,
    GlobalBatchLoss,
    ShardedSampler,
    adapt_config,
    main_first,
    rank_device,
    wrap_model,
)
from biounet.training.feasibility import check_training_fits
from biounet.training.weights import attach_weight_maps

log = logging.getLogger("biounet.train")


@dataclass
class RunSetup:
    """The parts of a run, built once by :func:`build_run`.

    Attributes:
        device, precision: where and how it trains (``"fp32"``, ``"bf16"``, ``"fp16"``).
        train_data, val_samples: the training images (with their weight and distance maps) and the validation images.
        model_config: the network, with channels from the data; its ``num_classes`` is the target's output
            channels (``TargetConfig.num_outputs``: the classes, then the distance channel if there is one).
        input_shape, output_shape: the tile in and out, pixels per spatial axis.
        total_steps: the steps the run makes at most (``None``: until the time budget is spent).
        model: the trained network; ``average``: the moving average of its weights (``optim.ema``) or ``None``.
        network: what the steps run: ``model``, or DistributedDataParallel around it in a data-parallel run.
        memory_format: the tensors' memory format (channels_last on the fast paths).
        optimizer, scaler: the optimiser and the fp16 loss scaler (disabled otherwise).
        criterion: the loss (the class loss, plus the distance term of a distance output), normalised over the
            global batch (``criterion.value``: its last global value).
        sampler: draws this rank's augmented training tiles (:class:`~biounet.training.distributed.ShardedSampler`).
        context: which process of a data-parallel run this is.
    """

    device: torch.device
    precision: str
    train_data: TrainingData
    val_samples: list[Sample]
    model_config: UNetConfig
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    total_steps: int | None
    model: torch.nn.Module
    average: torch.optim.swa_utils.AveragedModel | None
    memory_format: torch.memory_format
    optimizer: torch.optim.Optimizer
    criterion: GlobalBatchLoss
    scaler: torch.amp.GradScaler
    sampler: ShardedSampler
    network: torch.nn.Module
    context: DistributedContext


def prepare_config(config: TrainConfig, context: DistributedContext, device: torch.device) -> None:
    """The run's own changes to ``config``, made before ``config.json`` is written and the run is described.

    The data-parallel settings (:func:`~biounet.training.distributed.adapt_config`) and the network's layout
    for anisotropic data (:func:`adapt_layout`), so the saved configuration and model record what trained
    and ``--resume`` reads it back unchanged.
    """
    adapt_layout(config)
    adapt_config(config, context, device)


def adapt_layout(config: TrainConfig) -> bool:
    """Give a 3D network for anisotropic ``data.spacing`` the pooling and kernels of that spacing; True if changed.

    Only the default isotropic layout (pooling by 2, 3-voxel kernels everywhere) is replaced, by
    :func:`biounet.model.anisotropy.anisotropic_layout` (nnU-Net's rule); an explicit layout is kept, and so
    is the plain layout of a 2D network, of isotropic data or of data without a spacing. :func:`build_run`
    logs the layout (:func:`layout_line`). Raises ConfigError for a 3D network with a 2-value spacing.
    """
    model, spacing = config.model, config.data.spacing
    if model.spatial_dims == 3 and spacing is not None and len(spacing) != 3:
        raise ConfigError(f"data.spacing {spacing} needs 3 values (Z, Y, X) for a 3D model")
    if model.spatial_dims != 3 or not is_anisotropic(spacing) or not is_plain_layout(model):
        return False
    pools, kernels = anisotropic_layout(spacing, model.depth)
    config.model = model.replace(pool_factors=pools, kernel_sizes=kernels)
    return True


def layout_line(config: TrainConfig) -> str | None:
    """One line on the network's layout when it is the one ``data.spacing`` calls for and not the plain one."""
    model, spacing = config.model, config.data.spacing
    if model.spatial_dims != 3 or not is_anisotropic(spacing) or is_plain_layout(model):
        return None
    pools, kernels = anisotropic_layout(spacing, model.depth)
    if (model.pool_factors, model.kernel_sizes) != (pools, kernels):
        return None  # an explicit layout: the plan line shows it
    return (f"data.spacing {_spacing(config)} is anisotropic ({max(spacing) / min(spacing):.1f}x): "
            f"the network pools {' '.join(map(_axes, pools))} and convolves {' '.join(map(_axes, kernels))} (an axis "
            "more than 2x coarser than the finest is neither pooled nor convolved across, as nnU-Net does)")


def _axes(values: tuple[int, ...]) -> str:
    return "x".join(map(str, values))


def _spacing(config: TrainConfig) -> str:
    return "x".join(f"{v:g}" for v in config.data.spacing or ())


def build_run(config: TrainConfig, run_dir: Path, context: DistributedContext | None = None) -> RunSetup:
    """Read the data, compute the weight (and distance) maps, seed, and build network, optimiser, loss and
    tile sampler.

    In a data-parallel run (``context``) rank 0 computes the weight maps and keeps them in ``run_dir/cache``
    first, then the other ranks read them (without ``data.cache_weights`` they compute their own), and every
    rank builds the same network from the same seed.
    """
    context = context or DistributedContext()
    device = rank_device(context, runtime.resolve_device(config.device))
    adapt_layout(config)  # done already by the trainer (prepare_config); here for other callers
    if line := layout_line(config):
        log.info(line)
    precision = runtime.resolve_precision(config.precision, device)
    check_training_fits(config, config.model, device, precision)  # before reading the data
    train_data, val_samples = load_training_data(config)
    target = config.data.target
    model_config = config.model.replace(in_channels=train_data.in_channels, num_classes=target.num_outputs)
    check_training_fits(config, model_config, device, precision)  # with the data's channels and classes
    input_shape = tile_shape(config, model_config, train_data)
    output_shape = sizes.output_shape(model_config, input_shape)
    attach_maps(config, train_data.samples, run_dir, context)
    total = total_steps(config, train_data, output_shape)
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    memory_format = runtime.memory_format(precision, device, model_config.spatial_dims)
    model = UNet(model_config).to(device).to(memory_format=memory_format)
    optimizer = build_optimizer(config, model)
    average = build_weight_average(model, config.optim.ema) if config.optim.ema else None
    criterion = GlobalBatchLoss(
        ClassAndDistanceLoss(build_criterion(config), target.distance_channel, config.loss.distance_weight), context
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    tiles = TileSampler(
        train_data.samples,
        model_config,
        input_shape,
        Augmenter(config.augmentation, model_config.spatial_dims),
        foreground_prob=config.data.foreground_prob,
        focus_classes=target.focus_classes,
        use_weights=config.loss.uses_weight_map,
        use_distances=target.distance,
    )
    return RunSetup(
        device=device, precision=precision, train_data=train_data, val_samples=val_samples,
        model_config=model_config, input_shape=input_shape, output_shape=output_shape, total_steps=total,
        model=model, average=average, memory_format=memory_format, optimizer=optimizer, criterion=criterion,
        scaler=scaler, sampler=ShardedSampler(tiles, context.rank, context.world_size),
        network=wrap_model(model, context, device), context=context,
    )


def attach_maps(config: TrainConfig, samples: list[Sample], run_dir: Path, context: DistributedContext) -> None:
    """The training images' eq.-2 weight maps (when the loss uses them) and distance targets (a distance
    output), each computed once and logged with the time it took."""
    if config.loss.uses_weight_map:
        started = time.perf_counter()
        with main_first(context):
            attach_weight_maps(samples, config, run_dir / "cache" if config.data.cache_weights else None)
        spacing = f", spacing {_spacing(config)}" if config.data.spacing else ""
        log.info(f"weight maps (eq. 2, w0={config.loss.w0}, sigma={config.loss.sigma} in-plane pixels{spacing}) "
                 f"ready in {time.perf_counter() - started:.1f} s")
    if config.data.target.distance:
        started = time.perf_counter()
        attach_distance_maps(samples, config)
        spacing = f" in spacing {_spacing(config)}" if config.data.spacing else ""
        log.info(f"distance targets (each object's distance to its border{spacing}, over its largest) ready in "
                 f"{time.perf_counter() - started:.1f} s")


def plan_line(config: TrainConfig, parts: RunSetup) -> str:
    """The run in one line: network, tile, batch, optimiser, loss, device, steps and budget."""
    net = parts.model_config
    return (
        f"model: {net.spatial_dims}D U-Net, depth {net.depth}, base {net.base_channels}, {net.padding} padding, "
        f"norm {net.norm}, {sum(p.numel() for p in parts.model.parameters()):,} parameters"
        + ("" if is_plain_layout(net) else f" (pools {' '.join(map(_axes, net.pool_factors))}, kernels "
           f"{' '.join(map(_axes, net.kernel_sizes))})")
        + "; tile "
        f"{'x'.join(map(str, parts.input_shape))} -> {'x'.join(map(str, parts.output_shape))}, batch "
        f"{_batch(config)}; {config.optim.name} lr {config.optim.lr:g} ({config.optim.schedule}); loss "
        f"{config.loss.name}{_distance_term(config)}; {parts.device.type} {parts.precision}; steps "
        f"{parts.total_steps or 'until time'}"
        + (f", budget {config.max_minutes:g} min" if config.max_minutes else "")
    )


def _distance_term(config: TrainConfig) -> str:
    return f" + {config.loss.distance_weight:g} x distance BCE" if config.data.target.distance else ""


def _batch(config: TrainConfig) -> str:
    if config.world_size == 1:
        return str(config.batch_size)
    return f"{config.batch_size} x {config.world_size} processes = {config.batch_size * config.world_size}"


def tile_shape(
    config: TrainConfig, model_config: UNetConfig, train_data: TrainingData | None = None
) -> tuple[int, ...]:
    """``config.tile_shape`` per axis, raised to the next size the network takes (valid padding).

    One value for a 3D model with a 3-value ``data.spacing``: Z about as deep as Y and X in physical size,
    at most the thinnest training volume of ``train_data`` (:meth:`TrainConfig.spatial_tile`).
    """
    volumes = [s.spatial_shape[0] for s in train_data.samples] if train_data and model_config.spatial_dims == 3 else []
    wanted = config.spatial_tile(min(volumes) if volumes else None)
    if len(config.tile_shape) == 1 and wanted != tuple(config.tile_shape) * len(wanted):
        log.info(f"tile {config.tile_shape[0]} for spacing {_spacing(config)}: {_axes(wanted)} (Z about as deep "
                 f"as Y and X, a multiple of the z pooling, at most the {min(volumes, default='?')} sections of the "
                 "thinnest training volume)")
    if sizes.is_valid_input_shape(model_config, wanted):
        return wanted
    shape = sizes.valid_input_shape(model_config, wanted)
    log.info(f"tile {'x'.join(map(str, wanted))} is not valid for this network: using {'x'.join(map(str, shape))}")
    return shape


def total_steps(config: TrainConfig, train_data: TrainingData, output_shape: tuple[int, ...]) -> int | None:
    """``config.steps``, or the steps of ``config.epochs`` passes of output tiles over the training pixels."""
    if config.epochs is not None:
        pixels = sum(math.prod(s.spatial_shape) for s in train_data.samples)
        per_step = config.batch_size * config.world_size * math.prod(output_shape)
        return max(1, math.ceil(config.epochs * pixels / per_step))
    return config.steps


def build_criterion(config: TrainConfig) -> torch.nn.Module:
    """The loss of ``config.loss`` (:class:`biounet.losses.SegmentationLoss`), clDice class from the target."""
    loss = config.loss
    options: dict[str, Any] = {"dice_weight": loss.dice_weight} if loss.name == "dice_ce" else {}
    if loss.cldice > 0:
        target = config.data.target
        structure = loss.cldice_class if loss.cldice_class is not None else target.structure_class
        if not 0 <= structure < target.num_classes:
            raise ConfigError(f"loss.cldice_class must be a class 0..{target.num_classes - 1}, not {structure}")
        options.update(cldice_weight=loss.cldice, cldice_class=structure, cldice_iterations=loss.cldice_iterations)
    return build_loss(loss.name, **options)


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD (with ``optim.momentum``) or AdamW (``optim.momentum`` as beta1) at the peak learning rate."""
    optim = config.optim
    if optim.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum,
                               weight_decay=optim.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(optim.momentum, 0.999),
                             weight_decay=optim.weight_decay)


__all__ = [
    "RunSetup", "adapt_layout", "attach_maps", "build_criterion", "build_optimizer", "build_run", "layout_line",
    "plan_line", "prepare_config", "tile_shape", "total_steps",
]
