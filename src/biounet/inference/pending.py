"""One prediction from start to finish: its options, its tile plan and open outputs, its result.

:func:`start_prediction` plans the tiles of an image (sizes from the memory budget, :mod:`biounet.tiling`)
and opens its outputs (:mod:`biounet.inference.writers`); the :class:`PendingPrediction` it returns holds
the :class:`~biounet.inference.engine.TiledRun` that fills them and closes them with their JSON sidecars.
:func:`biounet.inference.predictor.predict_to` runs one in one go; :mod:`biounet.inference.folder` runs the
network of several small images as one batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.data.finite import TileGuard
from biounet.inference.engine import TiledRun
from biounet.inference.instances import InstanceTarget, instance_target, prediction_spacing
from biounet.inference.outputs import OUTPUT_KINDS, PROBABILITY_DTYPES
from biounet.inference.sidecar import build_sidecar, write_sidecar
from biounet.inference.sources import ChannelFirstView
from biounet.inference.tta import tta_transforms
from biounet.inference.writers import Writer, open_output
from biounet.io.checkpoint import ModelBundle
from biounet.model.config import UNetConfig
from biounet.runtime import resolve_device, resolve_precision
from biounet.tiling import TileGrid, batch_size_for, context_margin, max_input_shape, plan_grid


@dataclass
class PredictOptions:
    """Settings of one prediction (all optional; ``None`` = chosen from the model and the memory).

    Attributes:
        tile_size: largest network input tile per axis in pixels (an int for every axis, or one per
            axis); ``None`` fits the tile to the memory budget (about 700 px in float32 and 1020 px in
            bf16 for the paper's network on CPU).
        batch_size: tiles per forward pass; ``None`` from the memory budget.
        tta: 1, 4 (flips) or 8 (flips and 90-degree rotations).
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA).
        device: ``"cpu"``, ``"cuda"``, ... (``None``: CUDA if available).
        num_threads: PyTorch threads (``None``: all cores of this process, unless OMP_NUM_THREADS is set).
        probability_dtype: on-disk type of probabilities: ``"float16"``, ``"uint8"`` (0..255) or
            ``"float32"``; in memory they are always float32.
        threshold, min_size: instances: seed threshold on P(interior) and smallest seed in pixels;
            ``None``: the model's (chosen on its validation images when it was trained, see
            :func:`~biounet.inference.instances.instance_target`), else 0.5 and 8.
        seed_height: touching objects: the height (0..1) of the distance map's h-maxima that split seeds, 0 for
            the paper's seeds (:func:`~biounet.inference.instances.instances_from_interior`); ``None``: the
            model's, else 0.
        foreground_threshold: touching objects: the summed probability of the foreground classes above which a
            pixel belongs to an object (0..1); ``None``: the model's (chosen by validation), else 0.5.
        nan_policy: NaN/infinite input pixels: ``"refuse"`` (an error naming the image and the count)
            or ``"fill"`` (replaced by the image's median; see :mod:`biounet.data.finite`).
        progress: show a tqdm progress bar (tiles/s, ETA) on stderr.
        description: the progress bar's label.
        context: a same-padded model's tile margin when the image must be tiled: ``"halo"`` (the halo on
            the pooling grid, 80 px for depth 4; as exact as bfloat16 rounding) or ``"exact"`` (the whole
            receptive field, 112 px: kept centres equal a whole-image pass); see :mod:`biounet.tiling.grid`.
        on_progress: called as ``on_progress(done, total)`` (tiles) after every batch, for a GUI's bar;
            an exception it raises (a cancel button's) stops the prediction, and no output is left behind.
        spacing: the image's voxel size ``(Y, X)`` or ``(Z, Y, X)`` in any unit, replacing the model's
            ``Pipeline.spacing`` (``None``: the model's).  Used by the cells of membrane models: a 3D model's
            in 3D with it; a 2D or 2.5D model's on a stack in 3D when it has 3 values, else per section
            (:func:`~biounet.inference.instances.run_labels`).  The sidecar records the spacing used.
    """

    tile_size: int | Sequence[int] | None = None
    batch_size: int | None = None
    tta: int = 1
    precision: str = "auto"
    device: str | torch.device | None = None
    num_threads: int | None = None
    probability_dtype: str = "float16"
    threshold: float | None = None
    min_size: int | None = None
    seed_height: float | None = None
    foreground_threshold: float | None = None
    nan_policy: str = "refuse"
    progress: bool = True
    description: str = "predict"
    context: str = "halo"
    on_progress: Callable[[int, int], None] | None = None
    spacing: Sequence[float] | None = None


@dataclass
class PredictionResult:
    """What :func:`predict_to` produced: per output kind an array (in memory) or the written path(s)."""

    outputs: dict[str, Any]
    grid: TileGrid
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PendingPrediction:
    """A prediction whose outputs are open: :attr:`run` fills them, :meth:`finish` closes them.

    :func:`predict_to` runs it in one go; :mod:`biounet.inference.folder` runs the network of several
    small images' runs as one batch (``run.tile_inputs`` -> one forward -> ``run.consume``) before
    finishing each.  Any error inside :meth:`guarded` discards every output (no file under a final name).
    """

    bundle: ModelBundle
    source: ChannelFirstView
    targets: Mapping[str, str | os.PathLike | None]
    options: PredictOptions
    image_info: Mapping[str, Any] | None
    run: TiledRun
    writers: dict[str, Writer]
    settings: dict[str, Any]
    target: InstanceTarget | None
    batch_size: int
    threads: int | None
    started: float

    @property
    def single_pass(self) -> bool:
        """One tile and no stack axis: the whole image in one network input (batchable with others)."""
        return len(self.run.grid) == 1 and not self.run.stack

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()

    def finish(self) -> PredictionResult:
        """Close the outputs (the last strip and the instances first) and write the sidecars."""
        with self.guarded():
            outputs = {kind: writer.close() for kind, writer in self.writers.items()}
        timings = dict(self.run.timings)
        timings["total_s"] = time.perf_counter() - self.started
        grid, stack = self.run.grid, self.run.stack
        pixels = math.prod(grid.image_shape) * math.prod(stack)
        timings["megapixels_per_s"] = pixels / 1e6 / max(timings["total_s"], 1e-9)
        timings["tiles_per_s"] = self.settings["tiles"] / max(timings["network_s"], 1e-9)
        result = PredictionResult(outputs, grid, self.settings, {k: round(v, 4) for k, v in timings.items()})
        _write_sidecars(result, self.targets, self.bundle, self.options, self.target, self.image_info, self.source)
        return result


def start_prediction(
    bundle: ModelBundle,
    source: ChannelFirstView,
    targets: Mapping[str, str | os.PathLike | None],
    options: PredictOptions,
    *,
    image_info: Mapping[str, Any] | None = None,
) -> PendingPrediction:
    """Plan the tiles of ``source`` and open its outputs (see :func:`predict_to`, which runs the result)."""
    started = time.perf_counter()
    kinds = list(targets)
    _check_request(kinds, options)
    config = bundle.config
    d = config.spatial_dims
    spatial = tuple(int(n) for n in source.shape[source.ndim - d :])
    stack = tuple(int(n) for n in source.shape[1 : source.ndim - d])
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    transforms = tta_transforms(options.tta, config)
    spacing = prediction_spacing(bundle, options.spacing)
    target = None
    if "instances" in kinds:
        target = instance_target(bundle, options.threshold, options.min_size, spacing, options.seed_height,
                                 options.foreground_threshold)

    grid, batch_size = plan_tiles(config, spatial, options, precision, device)
    threads = options.num_threads if options.num_threads is not None else default_threads()
    settings = _settings(bundle, grid, stack, batch_size, options, precision, device, threads)

    class_names = list(bundle.pipeline.target.class_names) if bundle.pipeline.target else []
    if bundle.pipeline.distance_channel is not None:
        class_names.append("distance")
    writers: dict[str, Writer] = {}
    try:
        for kind in kinds:
            writers[kind] = open_output(
                kind, targets[kind], config.num_classes, stack, spatial, d, options.probability_dtype, class_names
            )
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    where = str((image_info or {}).get("path") or "the image")
    run = TiledRun(
        bundle.model, source, grid, stack, writers, options.progress, options.description, device, precision,
        transforms, target, TileGuard(source, where, options.nan_policy), options.on_progress,
        bundle.pipeline.distance_channel,
    )
    return PendingPrediction(
        bundle, source, targets, options, image_info, run, writers, settings, target, batch_size, threads, started
    )


def plan_tiles(
    config: UNetConfig,
    spatial: Sequence[int],
    options: PredictOptions,
    precision: str,
    device: torch.device,
    largest_output: Sequence[int] | None = None,
) -> tuple[TileGrid, int]:
    """The tile grid and batch size of a prediction of an image of spatial shape ``spatial``.

    Tiles are ``options.tile_size`` or the largest the memory budget allows (:mod:`biounet.tiling.budget`),
    with a same-padded model's ``options.context``; ``largest_output`` caps the kept part of a tile (the
    blockwise driver keeps tiles within its blocks).  Shared by every way of predicting, so they tile alike.
    """
    limit = _tile_limit(options.tile_size, config.spatial_dims)
    if limit is None:
        margins = context_margin(config, options.context)
        largest = None if largest_output is None else [int(b) + 2 * m for b, m in zip(largest_output, margins)]
        limit = max_input_shape(config, spatial, margins, precision, device, largest=largest)
    grid = plan_grid(config, spatial, limit, options.context)
    return grid, options.batch_size or batch_size_for(config, grid.input_shape, precision, device)


def _check_request(kinds: list[str], options: PredictOptions) -> None:
    for kind in kinds:
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output {kind!r} (choose from {', '.join(OUTPUT_KINDS)})")
    if options.probability_dtype not in PROBABILITY_DTYPES:
        raise ValueError(f"probability_dtype must be one of {', '.join(PROBABILITY_DTYPES)}")


def _settings(
    bundle: ModelBundle,
    grid: TileGrid,
    stack: tuple[int, ...],
    batch_size: int,
    options: PredictOptions,
    precision: str,
    device: torch.device,
    threads: int | None,
) -> dict[str, Any]:
    """The settings a prediction ran with, as its sidecar records them."""
    config = bundle.config
    return {
        "tile_input_shape": list(grid.input_shape),
        "tile_output_stride": list(grid.stride),
        "tiles": len(grid) * math.prod(stack),
        "tile_context": [axis.margin for axis in grid.axes],
        "batch_size": int(batch_size),
        "tta": int(options.tta),
        "precision": precision,
        "precision_requested": options.precision,
        "device": str(device),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "normalization": bundle.pipeline.normalization.to_dict(),
        "tiling": tiling_note(config, grid, options.context),
        "z_context": int(bundle.pipeline.z_context),
        "spacing": list(prediction_spacing(bundle, options.spacing) or []) or None,
    }


def tiling_note(config: UNetConfig, grid: TileGrid, context: str) -> str:
    """How a prediction tiled, as its sidecar says it (valid: exact; same: one pass or halo crop)."""
    if config.padding == "valid":
        return "valid: equals a whole-image pass"
    if len(grid) == 1 and not any(axis.margin for axis in grid.axes):
        return "same: whole-image pass"
    return f"same: halo crop, context {context}"


def default_threads() -> int | None:
    """All cores available to this process, unless the user set OMP_NUM_THREADS (then keep torch's)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _tile_limit(tile_size: int | Sequence[int] | None, d: int) -> tuple[int, ...] | None:
    if tile_size is None:
        return None
    sizes = (int(tile_size),) * d if isinstance(tile_size, (int, np.integer)) else tuple(int(n) for n in tile_size)
    if len(sizes) != d or any(n < 1 for n in sizes):
        raise ValueError(f"tile_size must be a positive int or {d} positive ints, not {tile_size!r}")
    return sizes


def _write_sidecars(
    result: PredictionResult,
    targets: Mapping[str, Any],
    bundle: ModelBundle,
    options: PredictOptions,
    instances: InstanceTarget | None,
    image_info: Mapping[str, Any] | None,
    source: ChannelFirstView,
) -> None:
    image = dict(image_info or {})
    image.setdefault("shape", list(source.shape))
    for kind, written in result.outputs.items():
        if targets[kind] is None:
            continue
        settings = dict(result.settings)
        if kind == "probabilities":
            settings["probability_dtype"] = options.probability_dtype
        if kind == "instances" and instances is not None:
            settings.update(instances.recorded())
            if instances.cells is not None:
                d = len(result.grid.image_shape)
                settings["cells_in_3d"] = instances.cells_in_3d(source.ndim - 1 - d, d)
        paths = written if isinstance(written, list) else [written]
        for path in paths:
            content = build_sidecar(
                output_kind=kind,
                output_path=Path(path),
                model_path=bundle.path,
                model_config=bundle.config.to_dict(),
                settings=settings,
                image=image,
                timings=result.timings,
                target=dataclasses.asdict(bundle.pipeline.target) if bundle.pipeline.target else None,
            )
            write_sidecar(Path(path), content)


__all__ = [
    "PendingPrediction", "PredictOptions", "PredictionResult", "default_threads", "plan_tiles", "start_prediction",
    "tiling_note",
]
