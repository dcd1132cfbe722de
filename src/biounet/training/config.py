"""The training configuration: plain dataclasses, read from YAML/TOML/JSON and saved as JSON beside the model.

A configuration is built in layers, each overriding the one before: the recipe (``"default"`` or
``"paper"``, :mod:`biounet.training.recipes`), the data preset (``"isbi2012"``, ``"dsb2018"``), the
configuration file, and the command-line flags. Every layer is a nested dict with the sections of
:class:`TrainConfig`; unknown keys are an error that names the section, so typos do not pass silently.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from biounet.augmentation import AugmentationConfig
from biounet.data.finite import NAN_POLICIES
from biounet.data.normalization import NormalizationConfig
from biounet.data.targets import TargetConfig
from biounet.errors import BiounetError
from biounet.model import UNetConfig
from biounet.model.config import json_ready
from biounet.training.fieldtypes import checked_values

Layout = Literal["folders", "dsb", "sections"]
LossName = Literal["wce", "ce", "dice", "dice_ce"]
OptimizerName = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "poly", "constant"]


class ConfigError(BiounetError, ValueError):
    """A training configuration that cannot be used (unknown key, bad value); names the file or section."""


@dataclass
class DataConfig:
    """Where the training data are and how masks become targets.

    Attributes:
        layout: ``"folders"`` (``images`` and ``masks`` folders, paired by name), ``"dsb"``
            (``images`` is a DSB 2018 ``stage1_train`` folder) or ``"sections"`` (one stack saved as a file
            per section, as the ssTEM VNC stack: ``images`` is its folder; see :mod:`biounet.data.sections`).
        images, masks: training folders (``masks`` unused for ``"dsb"``).
        val_images, val_masks: a separate validation set (same layout); else a split of the training set.
        val_split: fraction of the training images held out for validation when no validation set is
            given (the last ones in name order: a contiguous block, honest for slices of one stack).
        val_names: instead of ``val_split``, the names (file stems / DSB ids) of the validation images.
        target: how masks become classes (:class:`biounet.data.targets.TargetConfig`).
        normalization: intensity normalisation, saved with the model.
        foreground_prob: probability of centring a tile on an object / boundary / membrane pixel.
        nan_policy: images with NaN/infinite pixels: ``"refuse"`` (one line naming the file) or ``"fill"``
            (replaced by the image's median; see :mod:`biounet.data.finite`).
        cache_weights: also keep the weight maps as ``.npy`` files in ``RUN_DIR/cache`` (not the distance maps).
        preset: name of the data preset applied (informational).
        spacing: the size of a pixel (voxel) per spatial axis of the data, ``[Y, X]`` or ``[Z, Y, X]``, in any one
            unit (e.g. ``[50, 4.6, 4.6]`` nm for ssTEM sections); ``None``: isotropic. A 3D network takes its
            anisotropic layout from it (:mod:`biounet.model.anisotropy`), the weight map and the cells measure
            distances in it, and the model saves it.
        z_context: 2.5D input for a 2D network on a stack: the ``z_context`` sections on each side of a section
            become extra input channels (0: plain 2D).
    """

    layout: Layout = "folders"
    images: str | None = None
    masks: str | None = None
    val_images: str | None = None
    val_masks: str | None = None
    val_split: float = 0.2
    val_names: list[str] | None = None
    target: TargetConfig = field(default_factory=TargetConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    foreground_prob: float = 0.0
    nan_policy: str = "refuse"
    cache_weights: bool = True
    preset: str | None = None
    spacing: list[float] | None = None
    z_context: int = 0

    def __post_init__(self) -> None:
        if self.layout not in ("folders", "dsb", "sections"):
            raise ConfigError(f"data.layout must be 'folders', 'dsb' or 'sections', not {self.layout!r}")
        if self.spacing is not None:
            self.spacing = [float(v) for v in self.spacing]
            if len(self.spacing) not in (2, 3) or not all(0 < v < float("inf") for v in self.spacing):
                raise ConfigError(f"data.spacing must be 2 or 3 positive sizes (Y, X or Z, Y, X), not {self.spacing}")
        if self.z_context < 0:
            raise ConfigError(f"data.z_context must be >= 0 sections, not {self.z_context}")
        if not 0.0 <= self.val_split < 1.0:
            raise ConfigError(f"data.val_split must be in [0, 1), not {self.val_split}")
        if not 0.0 <= self.foreground_prob <= 1.0:
            raise ConfigError(f"data.foreground_prob must be in [0, 1], not {self.foreground_prob}")
        if self.nan_policy not in NAN_POLICIES:
            raise ConfigError(f"data.nan_policy must be one of {', '.join(NAN_POLICIES)}, not {self.nan_policy!r}")


@dataclass
class LossConfig:
    """The loss.

    Attributes:
        name: ``"wce"`` (the paper: cross-entropy weighted per pixel by the eq.-2 weight map), ``"ce"``,
            ``"dice"`` or ``"dice_ce"`` (Dice + cross-entropy, the CE part weighted like ``"wce"``).
        w0, sigma: the weight map's border term: ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))``, sigma in pixels
            (default 25 and 5; paper: 10 and 5).
        class_balance: include the class-frequency term ``w_c`` of eq. 2 (default off, the paper on).
        dice_weight: weight of the Dice term in ``"dice_ce"``.
        cldice: weight of a clDice term added to the loss (0: none): ``1 - clDice`` of the thin
            structure class, which penalises gaps in it and spurious pieces of it
            (:func:`biounet.losses.cldice_loss`).
        cldice_class: the thin structure's class (``None``: the membrane for membrane targets, the
            boundary for touching objects, class 1 for semantic targets).
        cldice_iterations: soft-skeleton iterations, about half the structure's thickness in pixels.
        distance_weight: weight (>= 0) of the distance output's BCE (:class:`biounet.losses.ClassAndDistanceLoss`).
    """

    name: LossName = "wce"
    w0: float = 25.0
    sigma: float = 5.0
    class_balance: bool = False
    dice_weight: float = 1.0
    cldice: float = 0.0
    cldice_class: int | None = None
    cldice_iterations: int = 5
    distance_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in ("wce", "ce", "dice", "dice_ce"):
            raise ConfigError(f"loss.name must be wce, ce, dice or dice_ce, not {self.name!r}")
        for name in ("cldice", "distance_weight"):
            if not 0 <= getattr(self, name) < float("inf"):
                raise ConfigError(f"loss.{name} must be a finite weight >= 0, not {getattr(self, name)}")
        if self.cldice_iterations < 1:
            raise ConfigError(f"loss.cldice_iterations must be >= 1, not {self.cldice_iterations}")

    @property
    def uses_weight_map(self) -> bool:
        return self.name in ("wce", "dice_ce")


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        name: ``"sgd"`` (with ``momentum``; the paper: 0.99) or ``"adamw"``.
        lr: peak learning rate.
        momentum: SGD momentum (AdamW: beta1).
        weight_decay: decoupled for AdamW, L2 for SGD.
        schedule: ``"cosine"`` (to ``lr * min_lr_ratio``), ``"poly"`` (``(1 - t)^poly_power``) or ``"constant"``.
        warmup_steps: linear warm-up from ``lr / warmup_steps``.
        min_lr_ratio: final learning rate of cosine/poly as a fraction of ``lr``.
        poly_power: exponent of the poly schedule.
        grad_clip: clip the gradient norm to this (``None``: no clipping).
        ema: decay of an exponential moving average of the weights (and batch-norm statistics) kept
            beside the trained ones, e.g. 0.99; validation and the saved models then use the average,
            which is steadier from one checkpoint to the next. The decay is warmed up as
            ``min(ema, (1 + n) / (10 + n))`` after ``n`` updates. ``None``: no average.
    """

    name: OptimizerName = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Schedule = "cosine"
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    poly_power: float = 0.9
    grad_clip: float | None = None
    ema: float | None = 0.99

    def __post_init__(self) -> None:
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ConfigError(f"optim.ema must be a decay between 0 and 1 (e.g. 0.99), not {self.ema}")
        if self.name not in ("sgd", "adamw"):
            raise ConfigError(f"optim.name must be 'sgd' or 'adamw', not {self.name!r}")
        if self.schedule not in ("cosine", "poly", "constant"):
            raise ConfigError(f"optim.schedule must be cosine, poly or constant, not {self.schedule!r}")
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, not {self.lr}")


#: The default recipe's network, where it differs from :class:`UNetConfig` (the paper's network).
DEFAULT_MODEL: dict[str, Any] = {"base_channels": 32, "padding": "same", "norm": "batch", "dropout": 0.1}


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``RUN_DIR/config.json``.

    The defaults of this class and of its sections are the default recipe, except its fit to the
    machine (:func:`biounet.training.recipes.default_for_this_machine`, applied by ``recipe("default")``):
    ``TrainConfig()`` is the default recipe as on a GPU or a CPU with bfloat16. The paper's recipe is a
    set of overrides (:data:`biounet.training.recipes.RECIPES`).

    Attributes:
        recipe: name of the recipe the defaults came from (``"default"`` or ``"paper"``).
        model: the network (``in_channels`` and ``num_classes`` are set from the data); by default
            :class:`UNetConfig` with :data:`DEFAULT_MODEL`.
        data, augmentation, loss, optim: see their classes.
        tile_shape: spatial shape of the input tile in pixels (one value: the same on every axis); an
            invalid size for a valid-padded network is raised to the next valid one.
        batch_size: tiles per step.
        steps: optimiser steps (``None``: from ``epochs``, or until ``max_minutes``).
        epochs: instead of steps: one epoch = as many output tiles as cover the training pixels once.
        max_minutes: wall-clock budget of the run (training and validation); the schedule then follows
            whichever of steps and time runs out first.
        val_every: validate (and checkpoint) every this many steps.
        checkpoint_every: also checkpoint every this many steps (``None``: only at validations).
        checkpoint_minutes: and at least every this many minutes.
        log_every: history rows (mean loss, rate) every this many steps.
        precision: ``"auto"`` (bf16 on CPUs with AVX-512 BF16/AMX and on capable GPUs, fp16 on other
            GPUs, else fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        seed: seeds the initial weights, the tiles and dropout; same seed, same run.
        num_threads: PyTorch CPU threads (``None``: PyTorch's default).
        val_batch_size: tiles per batch in validation predictions (``None``: the predictor decides).
        world_size: processes of a data-parallel run (written by the run, see
            :mod:`biounet.training.distributed`); ``batch_size`` is each process's batch.
        global_batch_size: ``batch_size * world_size``, the tiles of one optimiser step (written by the run).
        select_by: the validation metric (a name of :mod:`biounet.metrics.names`) that picks the best
            checkpoint and the post-processing settings (seed threshold and size of touching objects);
            ``None``: ``average_precision`` (DSB mean AP) for touching objects, ``adapted_rand_error`` for
            membranes, ``mean_iou`` for semantic classes (:func:`biounet.training.validation.main_metric`).
    """

    recipe: str = "default"
    model: UNetConfig = field(default_factory=lambda: UNetConfig(**DEFAULT_MODEL))
    data: DataConfig = field(default_factory=DataConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tile_shape: list[int] = field(default_factory=lambda: [256])
    batch_size: int = 4
    steps: int | None = 3000
    epochs: float | None = None
    max_minutes: float | None = None
    val_every: int = 250
    checkpoint_every: int | None = None
    checkpoint_minutes: float = 10.0
    log_every: int = 10
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    num_threads: int | None = None
    val_batch_size: int | None = None
    world_size: int = 1
    global_batch_size: int | None = None
    select_by: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.tile_shape, int):
            self.tile_shape = [self.tile_shape]
        self.tile_shape = [int(n) for n in self.tile_shape]
        if not self.tile_shape or any(n < 1 for n in self.tile_shape):
            raise ConfigError(f"tile_shape must be positive sizes in pixels, not {self.tile_shape}")
        for name in ("batch_size", "val_every", "log_every", "steps", "checkpoint_every", "num_threads",
                     "val_batch_size", "world_size", "global_batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("max_minutes", "epochs", "checkpoint_minutes"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)}")
        if self.loss.distance_weight != 1.0 and not self.data.target.distance:
            raise ConfigError("loss.distance_weight weighs a distance output: needs data.target.distance (--distance)")
        if self.select_by is not None:
            from biounet.training.validation import selectable_metrics

            choices = selectable_metrics(self.data.target)
            if self.select_by not in choices:
                raise ConfigError(f"select_by must be one of {', '.join(choices)} for this target, "
                                  f"not {self.select_by!r}")

    def spatial_tile(self, max_depth: int | None = None) -> tuple[int, ...]:
        """``tile_shape`` per spatial axis of the model; one value for a 3D model with a 3-value ``data.spacing``
        is shaped by :func:`biounet.model.anisotropy.anisotropic_tile` (Z at most ``max_depth`` sections)."""
        dims, spacing = self.model.spatial_dims, self.data.spacing
        if len(self.tile_shape) == 1 and dims == 3 and spacing is not None and len(spacing) == 3:
            from biounet.model.anisotropy import anisotropic_tile
            from biounet.model.sizes import total_pool_factor
            try:
                return anisotropic_tile(self.tile_shape[0], spacing, total_pool_factor(self.model)[0], max_depth)
            except ValueError as error:
                raise ConfigError(f"tile_shape {self.tile_shape}: {error}") from None
        if len(self.tile_shape) == 1:
            return tuple(self.tile_shape) * dims
        if len(self.tile_shape) != dims:
            raise ConfigError(f"tile_shape {self.tile_shape} needs 1 or {dims} sizes for a {dims}D model")
        return tuple(self.tile_shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (the format of the config files)."""
        return json_ready({
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("model", "data", "augmentation", "loss", "optim")},
            "model": self.model.to_dict(),
            "data": {
                **dataclasses.asdict(self.data),
                "target": self.data.target.to_dict(),
                "normalization": self.data.normalization.to_dict(),
            },
            "augmentation": self.augmentation.to_dict(),
            "loss": dataclasses.asdict(self.loss),
            "optim": dataclasses.asdict(self.optim),
        })

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> TrainConfig:
        """Build from a nested dict; ConfigError names ``where`` and the section of an unknown key or bad value."""
        data = dict(data)
        try:
            sections = {
                "model": _build(UNetConfig, {**DEFAULT_MODEL, **(data.pop("model", None) or {})}, where, "model"),
                "data": _build_data(data.pop("data", {}), where),
                "augmentation": _build(AugmentationConfig, data.pop("augmentation", {}), where, "augmentation"),
                "loss": _build(LossConfig, data.pop("loss", {}), where, "loss"),
                "optim": _build(OptimConfig, data.pop("optim", {}), where, "optim"),
            }
            return _build(cls, data, where, "", **sections)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from error


def _build(cls: type, values: dict[str, Any] | None, where: str, section: str, **extra: Any) -> Any:
    """``cls`` from ``values`` (the ``section`` of the configuration ``where``): unknown keys and values of the
    wrong type are a ConfigError naming them (``where: optim.lr: expected a number, got 'abc'``)."""
    here = f"{where}: {section}" if section else where
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{here}: expected a section of key: value pairs, got {values!r}")
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{here}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    values, problems = checked_values(cls, values)
    if problems:
        key, message = problems[0]
        raise ConfigError(f"{where}: {section + '.' if section else ''}{key}: {message}")
    try:
        return cls(**values, **extra)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{here}: {error}") from error


def _build_data(values: dict[str, Any] | None, where: str) -> DataConfig:
    if values is not None and not isinstance(values, dict):
        raise ConfigError(f"{where}: data: expected a section of key: value pairs, got {values!r}")
    values = dict(values or {})
    target = _build(TargetConfig, values.pop("target", {}), where, "data.target")
    normalization = _build(NormalizationConfig, values.pop("normalization", {}), where, "data.normalization")
    return _build(DataConfig, values, where, "data", target=target, normalization=normalization)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of nested dicts: ``override`` wins; sections merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON configuration file into a nested dict."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{p}: cannot read the configuration file ({error.strerror or error})") from error
    suffix = p.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"{p}: configuration files must be .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as error:  # each parser has its own exception types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{p}: not a valid {suffix[1:].upper()} file ({first})") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the configuration must be a mapping of sections, not {type(data).__name__}")
    return data
