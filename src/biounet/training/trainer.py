"""The training loop: data, model, optimiser, validation, checkpoints, resume, history and report.

:func:`train` runs a :class:`~biounet.training.config.TrainConfig` into a run directory::

    RUN_DIR/model.safetensors, model.json   the best model so far (by the validation metric), with the
                                            pipeline that ``biounet predict RUN_DIR`` needs
    RUN_DIR/last.safetensors, last.json     the model of the last checkpoint
                                            (both: the moving average of the weights when the run keeps
                                            one, ``optim.ema``, as the default recipe does)
    RUN_DIR/config.json                     the full configuration (+ config.source.* as given)
    RUN_DIR/state/                          everything to resume exactly (see biounet.training.state)
    RUN_DIR/history.csv, history.json       loss, learning rate, rate and validation metrics per step
    RUN_DIR/training_curve.png              the same as a figure
    RUN_DIR/report/                         HTML report: validation overlays, metrics, timings
    RUN_DIR/cache/                          the weight maps (eq. 2) of the training images, as .npy
    RUN_DIR/train.log                       the log

Exact resume: the tiles of step ``k`` come from ``numpy.random.default_rng([seed, k])``, and the
state holds the model, the optimiser, the torch/python RNG states, the step and the history, so a
run killed at any moment and resumed ends with the same weights as an unbroken run (in fp32 with a
fixed number of threads; reduced precision and thread scheduling may differ in the last bits).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.augmentation import Augmenter
from biounet.data.dataset import BatchProducer, TileSampler
from biounet.data.readers import Sample, TrainingData, read_dsb, read_folder_pairs
from biounet.errors import BiounetError, DataError
from biounet.io.atomic import write_json_atomic, write_text_atomic
from biounet.losses import build_loss
from biounet.model import UNet, sizes
from biounet.pipeline import Pipeline
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.description import describe_run
from biounet.training.history import History
from biounet.training.state import TrainingState, has_state, load_state, save_state
from biounet.training.validation import SETTING_KEYS, ValidationResult, main_metric, validate

log = logging.getLogger("biounet.train")

#: Redraw the training curve at least this often (seconds) at checkpoints between validations.
PLOT_SECONDS = 300.0


class TrainingDivergedError(BiounetError, RuntimeError):
    """The loss (or a weight) became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    steps: int
    stopped_by: str
    best: dict[str, Any] | None
    history: History


# ------------------------------------------------------------------------------------------------ data


def resolve_data_paths(config: TrainConfig) -> None:
    """Fill in preset folders: ``--preset isbi2012 --images ROOT`` finds ``ROOT/train/image`` and ``.../label``."""
    data = config.data
    if data.images is None:
        raise ConfigError("no training images: give --images (and --masks), --dsb, or data.images in the config")
    images = Path(data.images)
    if data.layout == "folders" and data.masks is None:
        for base in (images / "train", images):
            if (base / "image").is_dir() and (base / "label").is_dir():
                data.images, data.masks = str(base / "image"), str(base / "label")
                break
        else:
            raise ConfigError(f"{images}: no mask folder given (--masks DIR)")
    for name in ("images", "masks", "val_images", "val_masks"):  # absolute: --resume works from anywhere
        value = getattr(data, name)
        if value is not None:
            setattr(data, name, str(Path(value).resolve()))


def validation_count(total: int, fraction: float) -> int:
    """How many of ``total`` (>= 2) images ``--val-split fraction`` takes for validation: at least one, and
    at least one left to train on."""
    return min(total - 1, max(1, round(total * fraction)))


def load_training_data(config: TrainConfig) -> tuple[TrainingData, list[Sample]]:
    """Read the training images and split off the validation images; returns (training data, validation)."""
    resolve_data_paths(config)
    data = config.data
    dims = config.model.spatial_dims
    if data.layout == "dsb":
        if dims != 2:
            raise ConfigError("the DSB layout is 2D; use model.spatial_dims = 2")
        train = read_dsb(data.images, data.target, normalization=data.normalization)
    else:
        train = read_folder_pairs(data.images, data.masks, data.target, normalization=data.normalization,
                                  spatial_dims=dims)
    for note in train.notes:
        log.info(note)
    if data.val_images:
        if data.layout == "dsb":
            val_data = read_dsb(data.val_images, data.target, normalization=data.normalization)
        else:
            if not data.val_masks:
                raise ConfigError("--val-images needs --val-masks")
            val_data = read_folder_pairs(data.val_images, data.val_masks, data.target,
                                         normalization=data.normalization, spatial_dims=dims)
        if val_data.in_channels != train.in_channels:
            raise DataError(f"{data.val_images}: validation images have {val_data.in_channels} channel(s), "
                            f"the training images {train.in_channels}")
        val = val_data.samples
    elif data.val_names:
        wanted = set(data.val_names)
        val = [s for s in train.samples if s.name in wanted or s.name.split("[z=")[0] in wanted]
        found = {s.name for s in val} | {s.name.split("[z=")[0] for s in val}
        missing = sorted(wanted - found)
        if missing:
            raise DataError(f"{data.images}: no image named {missing[0]!r} for validation")
        train.samples = [s for s in train.samples if s not in val]
    elif data.val_split > 0 and len(train.samples) >= 2:
        count = validation_count(len(train.samples), data.val_split)
        val = train.samples[-count:]
        train.samples = train.samples[:-count]
    else:
        val = []
        log.info("no validation images: the last checkpoint is also the best")
    if not train.samples:
        raise DataError(f"{data.images}: no training images left after taking the validation images")
    if val:
        log.info(f"{len(train.samples)} training image(s), {len(val)} validation image(s): "
                 + ", ".join(s.name for s in val[:8]) + (" ..." if len(val) > 8 else ""))
    return train, val


def weight_instances(sample: Sample, config: TrainConfig) -> np.ndarray:
    """The cells whose gaps the eq.-2 border term weights: interiors (touching), cells (membrane), components."""
    from scipy import ndimage as ndi

    target = config.data.target
    if target.kind == "instances" and target.style == "touching":
        return np.where(sample.target.classes == 1, sample.target.instances, 0)
    if sample.target.instances is not None:
        return sample.target.instances
    labels, _ = ndi.label(sample.target.classes > 0)
    return labels


def compute_weight_map(sample: Sample, config: TrainConfig) -> np.ndarray:
    """``(*S)`` float32 eq.-2 weights: class balance (or 1) plus ``w0 exp(-(d1 + d2)^2 / 2 sigma^2)``."""
    from biounet.losses import border_weights, class_balance_weights

    loss, num_classes = config.loss, config.data.target.num_classes
    classes = sample.target.classes
    if loss.class_balance:
        weights = class_balance_weights(classes, num_classes)[classes]
    else:
        weights = np.ones(classes.shape, dtype=np.float32)
    return (weights + border_weights(weight_instances(sample, config), loss.w0, loss.sigma)).astype(np.float32)


def attach_weight_maps(samples: list[Sample], config: TrainConfig, cache_dir: Path | None) -> None:
    """Compute each training image's weight map once (memory), reusing ``cache_dir/*.npy`` when present."""
    loss = config.loss
    for sample in samples:
        if sample.weight is not None:
            continue
        key = hashlib.sha1()
        for array in (sample.target.classes, sample.target.instances):
            if array is not None:
                key.update(np.ascontiguousarray(array).tobytes())
        key.update(repr((loss.w0, loss.sigma, loss.class_balance, config.data.target.to_dict())).encode())
        path = cache_dir / f"weights-{key.hexdigest()[:20]}.npy" if cache_dir else None
        if path is not None and path.is_file():
            try:
                weight = np.load(path, allow_pickle=False)
                if weight.shape == sample.target.classes.shape:
                    sample.weight = weight
                    continue
            except (OSError, ValueError):
                pass
        sample.weight = compute_weight_map(sample, config)
        if path is not None:
            from biounet.io.atomic import atomic_path

            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, sample.weight, allow_pickle=False)


# -------------------------------------------------------------------------------------------- schedule


def lr_factor(config: TrainConfig, step: int, progress: float, total_steps: int | None = None) -> float:
    """Multiplier of the peak learning rate at ``step`` (warm-up) and ``progress`` in [0, 1] (decay).

    The warm-up lasts ``optim.warmup_steps``, at most a fifth of ``total_steps`` (short runs).
    """
    optim = config.optim
    warmup = optim.warmup_steps if total_steps is None else min(optim.warmup_steps, total_steps // 5)
    warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    t = min(max(progress, 0.0), 1.0)
    low = optim.min_lr_ratio
    if optim.schedule == "cosine":
        decay = low + (1.0 - low) * 0.5 * (1.0 + math.cos(math.pi * t))
    elif optim.schedule == "poly":
        decay = low + (1.0 - low) * (1.0 - t) ** optim.poly_power
    else:
        decay = 1.0
    return warm * decay


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
    optim = config.optim
    if optim.name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=optim.lr, momentum=optim.momentum,
                               weight_decay=optim.weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=(optim.momentum, 0.999),
                             weight_decay=optim.weight_decay)


# --------------------------------------------------------------------------------------------- trainer


class Trainer:
    """One training run into ``run_dir`` (see the module docstring); :meth:`run` does everything.

    Args:
        config: the full configuration.
        run_dir: output folder.
        resume: continue from ``run_dir/state`` (the configuration's data paths are used again).
        progress: show a tqdm progress bar on stderr.
        source_config: the configuration file the run came from (copied beside config.json).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        progress: bool = True,
        source_config: str | Path | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.source_config = Path(source_config) if source_config else None

    # ------------------------------------------------------------------------------------- setup

    def _setup(self) -> None:
        from biounet import runtime

        config = self.config
        self.device = runtime.resolve_device(config.device)
        self.precision = runtime.resolve_precision(config.precision, self.device)
        if config.num_threads:
            torch.set_num_threads(int(config.num_threads))
        self.train_data, self.val_samples = load_training_data(config)
        target = config.data.target
        self.model_config = config.model.replace(in_channels=self.train_data.in_channels,
                                                 num_classes=target.num_classes)
        self.input_shape = self._tile_shape()
        self.output_shape = sizes.output_shape(self.model_config, self.input_shape)
        if config.loss.uses_weight_map:
            started = time.perf_counter()
            cache = self.run_dir / "cache" if config.data.cache_weights else None
            attach_weight_maps(self.train_data.samples, config, cache)
            log.info(f"weight maps (eq. 2, w0={config.loss.w0}, sigma={config.loss.sigma}) ready in "
                     f"{time.perf_counter() - started:.1f} s")
        self.total_steps = self._total_steps()
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = UNet(self.model_config).to(self.device)
        self.memory_format = runtime.memory_format(self.precision, self.device, self.model_config.spatial_dims)
        self.model = self.model.to(memory_format=self.memory_format)
        self.optimizer = build_optimizer(config, self.model)
        self.average = build_weight_average(self.model, config.optim.ema) if config.optim.ema else None
        self.criterion = build_criterion(config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.sampler = TileSampler(
            self.train_data.samples,
            self.model_config,
            self.input_shape,
            Augmenter(config.augmentation, self.model_config.spatial_dims),
            foreground_prob=config.data.foreground_prob,
            focus_classes=target.focus_classes,
            use_weights=config.loss.uses_weight_map,
        )
        name, higher = main_metric(target) if self.val_samples else ("loss", False)
        self.history = History(main_metric=name if self.val_samples else None, higher_is_better=higher)
        self.best: dict[str, Any] | None = None
        self.step = 0
        self.checkpointed_step = -1
        self.plotted_at = time.perf_counter()
        self.elapsed_before = 0.0
        self.loss_sum, self.loss_count = 0.0, 0
        self.last_validation: ValidationResult | None = None

    def _tile_shape(self) -> tuple[int, ...]:
        wanted = self.config.spatial_tile()
        if sizes.is_valid_input_shape(self.model_config, wanted):
            return wanted
        shape = sizes.valid_input_shape(self.model_config, wanted)
        log.info(f"tile {'x'.join(map(str, wanted))} is not valid for this network: using "
                 f"{'x'.join(map(str, shape))}")
        return shape

    def _total_steps(self) -> int | None:
        config = self.config
        if config.epochs is not None:
            pixels = sum(math.prod(s.spatial_shape) for s in self.train_data.samples)
            per_step = config.batch_size * math.prod(self.output_shape)
            return max(1, math.ceil(config.epochs * pixels / per_step))
        return config.steps

    def pipeline(self) -> Pipeline:
        """What inference needs besides the weights (:mod:`biounet.training.description`)."""
        return describe_run(
            self.config, self.train_data, self.input_shape, steps=self.step, precision=self.precision, best=self.best
        )

    # --------------------------------------------------------------------------------- run dir

    def _prepare_run_dir(self) -> None:
        run_dir = self.run_dir
        if not self.resume and has_state(run_dir):
            raise ConfigError(f"{run_dir}: holds a training run already; use --resume to continue it or "
                              "--overwrite to start again")
        run_dir.mkdir(parents=True, exist_ok=True)
        resolve_data_paths(self.config)
        write_json_atomic(run_dir / "config.json", self.config.to_dict())
        if self.source_config and self.source_config.is_file():
            suffix = self.source_config.suffix or ".txt"
            write_text_atomic(run_dir / f"config.source{suffix}", self.source_config.read_text(encoding="utf-8"))

    def _restore(self) -> None:
        state = load_state(self.run_dir)
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.average is not None:
            if state.ema is None:
                raise ConfigError(f"{self.run_dir}: the saved run kept no weight average; resume it without optim.ema")
            self.average.load_state_dict(state.ema)
        torch.set_rng_state(state.rng["torch"])
        if state.rng.get("cuda") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state.rng["cuda"])
        python = state.rng.get("python")
        if python:
            random.setstate((python[0], tuple(python[1]), python[2]))
        extra = state.extra
        self.step = self.checkpointed_step = state.step
        self.elapsed_before = float(extra.get("elapsed_s", 0.0))
        self.history = History.from_dict(extra.get("history", {}))
        self.best = extra.get("best")
        self.loss_sum = float(extra.get("loss_sum", 0.0))
        self.loss_count = int(extra.get("loss_count", 0))
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        log.info(f"resumed from step {self.step} ({self.run_dir / 'state'})")

    # ---------------------------------------------------------------------------- checkpoints

    @property
    def kept_model(self) -> torch.nn.Module:
        """The network that is validated and saved: the weight average if the run keeps one."""
        return self.average.module if self.average is not None else self.model

    def _check_finite_weights(self) -> None:
        for name, tensor in self.model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise TrainingDivergedError(
                    f"weights became NaN/infinite at step {self.step} ({name}); stopped. {self._diverged_hint()}"
                )

    def _diverged_hint(self) -> str:
        kept = (f"The last good checkpoint (step {self.checkpointed_step}) is kept in {self.run_dir}"
                if self.checkpointed_step >= 0 else "No checkpoint was written yet")
        fp32 = " or use --precision fp32" if self.precision != "fp32" else ""
        return f"{kept}; lower the learning rate (optim.lr = {self.config.optim.lr:g}){fp32}"

    def checkpoint(self, elapsed: float, *, plot: bool = False) -> None:
        """Save last.safetensors, the full state and the history (and the best model when there is no validation).

        The training-curve PNG is redrawn when ``plot`` is set (validations, the end) or every few minutes.
        """
        from biounet.io.checkpoint import save_model

        self._check_finite_weights()
        pipeline = self.pipeline()
        save_model(self.kept_model, self.run_dir / "last.safetensors", pipeline=pipeline)
        if not self.val_samples:
            save_model(self.kept_model, self.run_dir, pipeline=pipeline)
        python_state = random.getstate()
        state = TrainingState(
            step=self.step,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            rng={
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "python": [python_state[0], list(python_state[1]), python_state[2]],
                "numpy_next_batch": np.random.default_rng([self.config.seed, self.step]).bit_generator.state,
            },
            extra={
                "elapsed_s": elapsed,
                "history": self.history.to_dict(),
                "best": self.best,
                "loss_sum": self.loss_sum,
                "loss_count": self.loss_count,
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "config": self.config.to_dict(),
            },
            ema=self.average.state_dict() if self.average is not None else None,
        )
        save_state(self.run_dir, state)
        plot = plot or time.perf_counter() - self.plotted_at > PLOT_SECONDS
        self.history.write(self.run_dir, plot=plot)
        if plot:
            self.plotted_at = time.perf_counter()
        self.checkpointed_step = self.step

    def _validate(self) -> ValidationResult:
        from biounet.io.checkpoint import save_model

        self._check_finite_weights()
        try:
            result = validate(self.kept_model, self.val_samples, self.config.data.target, precision=self.precision,
                              batch_size=self.config.val_batch_size, num_threads=self.config.num_threads)
        finally:  # the predictor restores the contiguous format; training may use channels_last
            self.kept_model.to(memory_format=self.memory_format)
        self.last_validation = result
        row = {k if k in SETTING_KEYS else f"val_{k}": v for k, v in result.metrics.items()}
        self.history.add("val", self.step, **row, validation_s=round(result.seconds, 2))
        shown = ", ".join(f"{k} {v:g}" if k in SETTING_KEYS else f"{k} {v:.4f}" for k, v in result.metrics.items())
        improved = result.better_than(self.best["value"] if self.best else None)
        if improved:
            self.best = {"step": self.step, "value": result.value, "metric": result.main, "metrics": result.metrics}
            save_model(self.kept_model, self.run_dir, pipeline=self.pipeline())
        best = " - best so far" if improved else ""
        log.info(f"step {self.step}: validation {shown} ({result.seconds:.1f} s){best}")
        return result

    # ------------------------------------------------------------------------------------- loop

    def _train_step(self, batch: Any) -> float:
        from biounet import runtime

        device, fmt = self.device, self.memory_format
        images = torch.from_numpy(batch.images).to(device).contiguous(memory_format=fmt)
        labels = torch.from_numpy(batch.labels).to(device)
        weights = torch.from_numpy(batch.weights).to(device) if batch.weights is not None else None
        with runtime.autocast(self.precision, device):
            logits = self.model(images)
        loss = self.criterion(logits, labels, weights)
        value = float(loss.detach())
        if not math.isfinite(value):
            hint = self._diverged_hint()
            raise TrainingDivergedError(f"the loss became {value} at step {self.step + 1}; stopped. {hint}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.average is not None:
            self.average.update_parameters(self.model)
        return value

    def run(self) -> TrainResult:
        """Train until the steps are done or the time budget is spent; returns what was produced."""
        handler = _file_log(self.run_dir)
        try:
            return self._run()
        finally:
            logging.getLogger("biounet").removeHandler(handler)
            handler.close()

    def _run(self) -> TrainResult:
        config = self.config
        self._prepare_run_dir()
        self._setup()
        if self.resume and has_state(self.run_dir):
            self._restore()
        elif self.resume:
            log.info(f"{self.run_dir}: no checkpoint yet; starting from step 0")
        log.info(
            f"model: {self.model_config.spatial_dims}D U-Net, depth {self.model_config.depth}, base "
            f"{self.model_config.base_channels}, {self.model_config.padding} padding, norm {self.model_config.norm}, "
            f"{sum(p.numel() for p in self.model.parameters()):,} parameters; tile "
            f"{'x'.join(map(str, self.input_shape))} -> {'x'.join(map(str, self.output_shape))}, batch "
            f"{config.batch_size}; {config.optim.name} lr {config.optim.lr:g} ({config.optim.schedule}); loss "
            f"{config.loss.name}; {self.device.type} {self.precision}; steps {self.total_steps or 'until time'}"
            + (f", budget {config.max_minutes:g} min" if config.max_minutes else "")
        )
        if self.total_steps is None and config.max_minutes is None:
            raise ConfigError("give steps, epochs or max_minutes: the run needs an end")
        started = time.perf_counter()
        budget = config.max_minutes * 60.0 if config.max_minutes else None
        checkpoint_every = config.checkpoint_every
        last_checkpoint_time = started
        interval_start, interval_steps = time.perf_counter(), 0
        stopped_by = "steps"
        step_seconds = 0.0
        self.model.train()
        bar = _progress_bar(self.total_steps, self.step, self.progress)
        producer = BatchProducer(self.sampler, config.batch_size, config.seed, start=self.step)
        try:
            while self.total_steps is None or self.step < self.total_steps:
                elapsed = self.elapsed_before + time.perf_counter() - started
                # stop early enough for one more step, the final validation and checkpoint
                reserve = 2.0 * step_seconds + (self.last_validation.seconds if self.last_validation else 0.0)
                if budget is not None and elapsed + reserve >= budget:
                    stopped_by = "time"
                    break
                fractions = [self.step / self.total_steps] if self.total_steps else []
                if budget is not None:
                    fractions.append(elapsed / budget)
                lr = config.optim.lr * lr_factor(config, self.step, max(fractions), self.total_steps)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                step_started = time.perf_counter()
                _, batch = next(producer)
                loss = self._train_step(batch)
                step_seconds = time.perf_counter() - step_started
                self.step += 1
                self.loss_sum += loss
                self.loss_count += 1
                interval_steps += 1
                bar.update(1)
                if self.step % config.log_every == 0:
                    now = time.perf_counter()
                    rate = interval_steps / max(now - interval_start, 1e-9)
                    mean = self.loss_sum / max(self.loss_count, 1)
                    self.history.add("train", self.step, train_loss=mean, lr=lr, steps_per_s=round(rate, 4),
                                     elapsed_s=round(self.elapsed_before + now - started, 1))
                    self.loss_sum, self.loss_count = 0.0, 0
                    interval_start, interval_steps = now, 0
                    postfix = {"loss": f"{mean:.4f}", "lr": f"{lr:.2e}"}
                    if budget is not None:
                        postfix["left"] = _minutes(budget - (self.elapsed_before + now - started))
                    bar.set_postfix(postfix, refresh=False)
                validate_now = bool(self.val_samples) and self.step % config.val_every == 0
                if validate_now:
                    self._validate()
                    interval_start = time.perf_counter()
                due = (
                    validate_now
                    or (checkpoint_every and self.step % checkpoint_every == 0)
                    or time.perf_counter() - last_checkpoint_time >= config.checkpoint_minutes * 60.0
                )
                if due:
                    self.checkpoint(self.elapsed_before + time.perf_counter() - started, plot=validate_now)
                    last_checkpoint_time = time.perf_counter()
                    interval_start = time.perf_counter()
        except TrainingDivergedError:
            bar.close()
            self.history.write(self.run_dir)
            raise
        finally:
            producer.close()
            bar.close()
        validated = any(row["kind"] == "val" and row["step"] == self.step for row in self.history.rows)
        if self.val_samples and not validated:
            self._validate()
        if self.checkpointed_step != self.step or not validated:
            self.checkpoint(self.elapsed_before + time.perf_counter() - started, plot=True)
        total = self.elapsed_before + time.perf_counter() - started
        log.info(f"finished at step {self.step} ({stopped_by}) after {_minutes(total)} min"
                 + (f"; best {self.best['metric']} {self.best['value']:.4f} at step {self.best['step']}"
                    if self.best else ""))
        self._write_report(total)
        return TrainResult(self.run_dir, self.step, stopped_by, self.best, self.history)

    # ----------------------------------------------------------------------------------- report

    def _write_report(self, seconds: float) -> None:
        """The HTML report (biounet.report): validation overlays, metrics table and timings."""
        try:
            from biounet.training.report import write_training_report
        except ImportError as error:  # pragma: no cover - the report package is optional at run time
            log.warning(f"no report written ({error})")
            return
        try:
            write_training_report(self, seconds)
        except Exception as error:  # a report must never lose a finished training
            log.warning(f"the report could not be written: {error}")


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    source_config: str | Path | None = None,
) -> TrainResult:
    """Run a training (see :class:`Trainer` and the module docstring)."""
    return Trainer(config, run_dir, resume=resume, progress=progress, source_config=source_config).run()


def clear_run_dir(run_dir: str | Path) -> None:
    """Remove a previous run's state, models and history from ``run_dir`` (``--overwrite``); the cache stays."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir / "state", ignore_errors=True)
    for name in ("model.safetensors", "model.json", "last.safetensors", "last.json", "history.csv",
                 "history.json", "training_curve.png", "train.log"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "report", ignore_errors=True)


def _progress_bar(total: int | None, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, mininterval=1.0)


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _file_log(run_dir: Path) -> logging.Handler:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("biounet")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler
