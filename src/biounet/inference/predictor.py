"""Overlap-tile inference (Ronneberger et al. 2015, Fig. 2) for 2D and 3D images of any size.

:func:`predict` is the public entry point; :func:`predict_to` is the engine it shares with
``biounet predict``.  One pass over the image does everything:

1. intensity statistics once per image (the model's pipeline normalisation, default percentiles),
   on a subsample, so a lazily opened image (TIFF memmap, ``.npy`` mmap, zarr) is never read whole;
2. a tile grid (:mod:`biounet.tiling`) sized from the available memory; each tile is read with
   mirroring beyond the border, normalised, batched, and run through the network under
   ``torch.inference_mode`` (bf16 autocast + channels_last on CPUs with native bf16, see
   :mod:`biounet.runtime`), with optional test-time augmentation (:mod:`biounet.inference.tta`);
3. the kept centre of every tile goes into a strip buffer one tile-row high; full strips are
   converted (probabilities, labels) and written to the outputs (:mod:`biounet.inference.writers`),
   so memory is bounded by a tile batch plus one strip, not by the image;
4. instance labels need a global watershed: they are computed at the end from the full-resolution
   interior probability (kept in memory, 5 bytes per pixel) - the one output whose memory grows
   with the image (see :mod:`biounet.inference.instances`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.data.normalization import NormalizationConfig, apply_normalization, image_statistics
from biounet.errors import DataError
from biounet.inference.instances import instances_from_interior
from biounet.inference.sidecar import build_sidecar, write_sidecar
from biounet.inference.sources import ChannelFirstView, open_for_model, source_for_array
from biounet.inference.tta import averaged_outputs, tta_transforms
from biounet.inference.writers import Writer, open_writer
from biounet.io.checkpoint import ModelBundle, load_bundle
from biounet.model.unet import UNet
from biounet.pipeline import Pipeline
from biounet.runtime import autocast, memory_format, resolve_device, resolve_precision, torch_threads
from biounet.tiling import TileGrid, batch_size_for, context_margin, max_input_shape, plan_grid, read_mirrored

OUTPUT_KINDS = ("logits", "probabilities", "labels", "instances")
PROBABILITY_DTYPES = ("float16", "uint8", "float32")


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
            :func:`instance_settings`), else 0.5 and 8.
        progress: show a tqdm progress bar (tiles/s, ETA) on stderr.
        description: the progress bar's label.
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
    progress: bool = True
    description: str = "predict"


@dataclass
class PredictionResult:
    """What :func:`predict_to` produced: per output kind an array (in memory) or the written path(s)."""

    outputs: dict[str, Any]
    grid: TileGrid
    settings: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def predict(
    model: UNet | ModelBundle | str | os.PathLike,
    image: Any,
    tile_size: int | Sequence[int] | None = None,
    batch_size: int | None = None,
    tta: int = 1,
    precision: str = "auto",
    output: str = "probabilities",
    *,
    device: str | torch.device | None = None,
    pipeline: Pipeline | Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    channel_axis: str | int | None = "auto",
    num_threads: int | None = None,
    probability_dtype: str = "float16",
    threshold: float | None = None,
    min_size: int | None = None,
) -> Any:
    """Segment an image of any size with the overlap-tile strategy.

    Args:
        model: a :class:`~biounet.model.UNet`, a :class:`~biounet.io.checkpoint.ModelBundle`, or the
            path of a saved model (``.safetensors`` file or a ``biounet train`` run directory).  A UNet
            is set to eval mode (and back) and moved to ``device``.
        image: ``(*S)`` or ``(C, *S)`` (``S`` = ``(Y, X)`` or ``(Z, Y, X)``, any size from 1 pixel): a
            NumPy array, a lazy array (``np.memmap``, zarr) read tile by tile, or an image file path.
        tile_size: largest input tile in pixels (int or per axis); ``None`` from available memory.
        batch_size: tiles per forward pass; ``None`` from available memory.
        tta: test-time augmentation: 1 (none), 4 (flips) or 8 (flips and rotations), in-plane in 3D.
        precision: ``"auto"`` (bf16 + channels_last on CPUs with native bf16, fp16/bf16 on CUDA, else
            fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"``.  Outputs are accumulated in float32.
        output: ``"logits"`` or ``"probabilities"`` -> ``(K, *S)`` float32 (K classes); ``"labels"`` ->
            ``(*S)`` class index (uint8); ``"instances"`` -> ``(*S)`` int32 instance labels (models whose
            pipeline target kind is ``"instances"``; touching cells separated by a seeded watershed).
        device: torch device (``None``: CUDA if available, else CPU).
        pipeline: a :class:`~biounet.pipeline.Pipeline` to use instead of the model's, or a dict of
            top-level entries that override it (``{"normalization": {"method": "none"}}``); a bare
            UNet without one uses percentile normalisation.
        out: write the output to this path instead of returning it: ``.zarr``, ``.tif``, ``.npy``
            (progressively, bounded memory, atomic) or ``.png`` (2D, from memory), plus a JSON
            sidecar ``OUT.json``; returns the path (a list of paths for per-class PNGs).
        progress: tqdm progress bar on stderr.
        channel_axis: where the channels of ``image`` are: ``"auto"`` (``(C, *S)`` when it has one
            axis more than the model's spatial axes), ``"first"``, ``"last"``, ``"none"`` or an int.
        num_threads: PyTorch CPU threads (``None``: all cores available to this process).
        probability_dtype: probabilities on disk: ``"float16"`` (default), ``"uint8"`` or ``"float32"``.
        threshold, min_size: instance seeds: ``P(interior) > threshold``, at least ``min_size`` pixels;
            ``None``: the values saved in the model by training (the best on its validation images),
            else 0.5 and 8.

    Returns:
        The output array (in memory), or the output path when ``out`` is given.

    Tiling (see :mod:`biounet.tiling.grid`): for valid-padded models the tiled result equals one pass
    over the whole mirrored image; for same-padded models tiles overlap by the receptive field and
    only their centres are kept ("halo crop"), which equals a whole-image pass away from the border.
    (Models with ``norm="instance"`` or ``"group"`` normalise with statistics over the tile, so their
    tiles cannot be exact; batch norm uses fixed running statistics at inference and tiles exactly.)
    """
    if output not in OUTPUT_KINDS:
        raise ValueError(f"output must be one of {', '.join(OUTPUT_KINDS)}, not {output!r}")
    options = PredictOptions(
        tile_size=tile_size,
        batch_size=batch_size,
        tta=tta,
        precision=precision,
        device=device,
        num_threads=num_threads,
        probability_dtype=probability_dtype,
        threshold=threshold,
        min_size=min_size,
        progress=progress,
    )
    bundle = as_bundle(model, pipeline=pipeline, device=resolve_device(device))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    channels = bundle.pipeline.channels
    if channel_axis == "auto" and channels and bundle.pipeline.channel_axis:
        channel_axis = bundle.pipeline.channel_axis
    if isinstance(image, (str, os.PathLike)):
        source, info = open_for_model(image, bundle.config, channel_axis=channel_axis, channels=channels)
    else:
        source, info = source_for_array(image, bundle.config, channel_axis=channel_axis, channels=channels)
    result = predict_to(bundle, source, {output: out}, options, image_info=info)
    return result.outputs[output]


def as_bundle(
    model: UNet | ModelBundle | str | os.PathLike,
    *,
    pipeline: Pipeline | Mapping[str, Any] | None = None,
    device: torch.device | None = None,
) -> ModelBundle:
    """A :class:`ModelBundle` from a UNet, a bundle or a path; ``pipeline`` replaces or overrides the saved one."""
    if isinstance(model, ModelBundle):
        bundle = ModelBundle(model.model, model.pipeline, model.path)
    elif isinstance(model, UNet):
        bundle = ModelBundle(model, Pipeline(), None)
    elif isinstance(model, (str, os.PathLike)):
        bundle = load_bundle(model, device=device or "cpu")
    else:
        raise TypeError(f"model must be a UNet, a ModelBundle or a path, not {type(model).__name__}")
    if pipeline:
        bundle.pipeline = bundle.pipeline.updated(pipeline)
    return bundle


def predict_to(
    bundle: ModelBundle,
    source: ChannelFirstView,
    targets: Mapping[str, str | os.PathLike | None],
    options: PredictOptions,
    *,
    image_info: Mapping[str, Any] | None = None,
) -> PredictionResult:
    """Predict ``source`` ``(C, *stack, *S)`` into several outputs in one pass.

    ``targets`` maps an output kind (see :data:`OUTPUT_KINDS`) to a path (written progressively and
    atomically, with a JSON sidecar) or ``None`` (returned in memory).  A ``stack`` axis (2D model on
    a multi-page image) is predicted slice by slice; outputs are ``(K, *stack, *S)`` / ``(*stack, *S)``.
    On any error every output is discarded (no file under a final name) and the error propagates.
    """
    started = time.perf_counter()
    kinds = list(targets)
    for kind in kinds:
        if kind not in OUTPUT_KINDS:
            raise ValueError(f"unknown output {kind!r} (choose from {', '.join(OUTPUT_KINDS)})")
    if options.probability_dtype not in PROBABILITY_DTYPES:
        raise ValueError(f"probability_dtype must be one of {', '.join(PROBABILITY_DTYPES)}")
    config = bundle.config
    d = config.spatial_dims
    spatial = tuple(int(n) for n in source.shape[source.ndim - d :])
    stack = tuple(int(n) for n in source.shape[1 : source.ndim - d])
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    transforms = tta_transforms(options.tta, config)
    target = instance_target(bundle, options) if "instances" in kinds else None

    limit = _tile_limit(options.tile_size, d)
    if limit is None:
        limit = max_input_shape(config, spatial, context_margin(config), precision, device)
    grid = plan_grid(config, spatial, limit)
    batch_size = options.batch_size or batch_size_for(config, grid.input_shape, precision, device)
    threads = options.num_threads if options.num_threads is not None else default_threads()
    normalization = bundle.pipeline.normalization
    settings = {
        "tile_input_shape": list(grid.input_shape),
        "tile_output_stride": list(grid.stride),
        "tiles": len(grid) * math.prod(stack),
        "tile_context": list(context_margin(config)),
        "batch_size": int(batch_size),
        "tta": int(options.tta),
        "precision": precision,
        "precision_requested": options.precision,
        "device": str(device),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "normalization": normalization.to_dict(),
        "tiling": "valid: equals a whole-image pass" if config.padding == "valid" else "same: halo crop",
    }

    classes = config.num_classes
    writers: dict[str, Writer] = {}
    try:
        for kind in kinds:
            writers[kind] = _open_output(kind, targets[kind], classes, stack, spatial, d, options, bundle)
        run = _TiledRun(bundle.model, source, grid, stack, writers, options, device, precision, transforms, target)
        with torch_threads(threads):
            run.execute(normalization, batch_size)
        outputs = {kind: writer.close() for kind, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    timings = dict(run.timings)
    timings["total_s"] = time.perf_counter() - started
    pixels = math.prod(spatial) * math.prod(stack)
    timings["megapixels_per_s"] = pixels / 1e6 / max(timings["total_s"], 1e-9)
    timings["tiles_per_s"] = settings["tiles"] / max(timings["network_s"], 1e-9)
    result = PredictionResult(outputs, grid, settings, {k: round(v, 4) for k, v in timings.items()})
    _write_sidecars(result, targets, bundle, options, target, image_info, source)
    return result


def default_threads() -> int | None:
    """All cores available to this process, unless the user set OMP_NUM_THREADS (then keep torch's)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _TiledRun:
    """The tile loop: read + normalise a batch, run the network (with TTA), fill strips, flush strips."""

    def __init__(
        self,
        model: UNet,
        source: ChannelFirstView,
        grid: TileGrid,
        stack: tuple[int, ...],
        writers: dict[str, Writer],
        options: PredictOptions,
        device: torch.device,
        precision: str,
        transforms: list,
        target: InstanceTarget | None,
    ) -> None:
        self.model, self.source, self.grid, self.stack = model, source, grid, stack
        self.writers, self.options, self.device, self.precision = writers, options, device, precision
        self.transforms, self.target = transforms, target
        self.timings = {"statistics_s": 0.0, "read_s": 0.0, "network_s": 0.0, "write_s": 0.0, "instances_s": 0.0}
        self.need_logits = "logits" in writers
        self.need_probabilities = bool({"probabilities", "labels", "instances"} & set(writers))
        self.interior: np.ndarray | None = None
        self.foreground: np.ndarray | None = None
        if "instances" in writers:
            shape = (*stack, *grid.image_shape)
            self.interior = np.zeros(shape, np.float32)
            self.foreground = np.zeros(shape, bool)

    def execute(self, normalization: NormalizationConfig, batch_size: int) -> None:
        from tqdm.auto import tqdm

        t = time.perf_counter()
        self.stats = image_statistics(self.source, normalization)
        self.source.release()
        self.timings["statistics_s"] = time.perf_counter() - t
        total = len(self.grid) * math.prod(self.stack)
        bar = tqdm(
            total=total,
            unit="tile",
            desc=self.options.description,
            disable=not self.options.progress,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
        strip: _Strip | None = None
        with _prepared(self.model, self.device, self.precision) as fmt, bar:
            for jobs in _batched(self._jobs(), batch_size):
                outputs = self._run_batch(jobs, fmt)
                for i, (stack_index, tile) in enumerate(jobs):
                    key = (stack_index, tile.grid_index[0])
                    if strip is None or strip.key != key:
                        self._flush(strip)
                        strip = _Strip.for_tile(
                            key, stack_index, tile, self.grid, self.model.config.num_classes, list(outputs)
                        )
                    strip.place(tile, {name: value[i] for name, value in outputs.items()})
                bar.update(len(jobs))
            self._flush(strip)
        self._instances()

    def _jobs(self) -> Iterator[tuple[tuple[int, ...], Any]]:
        for stack_index in np.ndindex(*self.stack):
            for tile in self.grid:
                yield tuple(int(i) for i in stack_index), tile

    def _run_batch(self, jobs: list, fmt: torch.memory_format) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        tiles = [
            apply_normalization(
                read_mirrored(self.source, tile.input_start, self.grid.input_shape, leading=(slice(None), *s)),
                self.stats,
            )
            for s, tile in jobs
        ]
        batch = torch.from_numpy(np.stack(tiles)).to(self.device).contiguous(memory_format=fmt)
        self.timings["read_s"] += time.perf_counter() - t
        t = time.perf_counter()

        def forward(x: torch.Tensor) -> torch.Tensor:
            return self.model(x.contiguous(memory_format=fmt))

        with torch.inference_mode(), autocast(self.precision, self.device):
            outputs = averaged_outputs(
                forward, batch, self.transforms, logits=self.need_logits, probabilities=self.need_probabilities
            )
        result = {name: value.float().cpu().numpy() for name, value in outputs.items()}
        self.timings["network_s"] += time.perf_counter() - t
        return result

    def _flush(self, strip: _Strip | None) -> None:
        if strip is None:
            return
        t = time.perf_counter()
        rows = slice(strip.start, strip.stop)
        classes_key = (slice(None), *strip.stack_index, rows)
        plain_key = (*strip.stack_index, rows)
        probs = strip.buffers.get("probabilities")
        for kind, writer in self.writers.items():
            if kind == "logits":
                writer.write(classes_key, strip.buffers["logits"])
            elif kind == "probabilities":
                writer.write(classes_key, encode_probabilities(probs, writer.dtype))
            elif kind == "labels":
                writer.write(plain_key, np.argmax(probs, axis=0).astype(writer.dtype))
            elif kind == "instances":
                self.interior[plain_key] = probs[self.target.interior_class]
                self.foreground[plain_key] = probs[self.target.foreground_classes].sum(axis=0) > 0.5
        self.source.release()
        self.timings["write_s"] += time.perf_counter() - t

    def _instances(self) -> None:
        if self.interior is None:
            return
        t = time.perf_counter()
        writer = self.writers["instances"]
        for stack_index in np.ndindex(*self.stack):
            labels = instances_from_interior(
                self.interior[stack_index],
                self.foreground[stack_index],
                threshold=self.target.threshold,
                min_size=self.target.min_size,
            )
            writer.write(tuple(stack_index), labels)
        self.timings["instances_s"] = time.perf_counter() - t


@dataclass
class _Strip:
    """One row of tiles (along the first spatial axis) of one stack slice: ``(K, rows, *S[1:])`` buffers."""

    key: tuple[Any, ...]
    stack_index: tuple[int, ...]
    start: int
    stop: int
    buffers: dict[str, np.ndarray]

    @classmethod
    def for_tile(
        cls, key: tuple, stack_index: tuple[int, ...], tile: Any, grid: TileGrid, classes: int, names: list[str]
    ) -> _Strip:
        start, stop = tile.output_start[0], tile.output_stop[0]
        shape = (classes, stop - start, *grid.image_shape[1:])
        return cls(key, stack_index, start, stop, {name: np.zeros(shape, np.float32) for name in names})

    def place(self, tile: Any, outputs: Mapping[str, np.ndarray]) -> None:
        region = tile.region()
        rows = slice(region[0].start - self.start, region[0].stop - self.start)
        for name, value in outputs.items():
            self.buffers[name][(slice(None), rows, *region[1:])] = value[(slice(None), *tile.crop())]


def encode_probabilities(probs: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 probabilities -> ``dtype`` (uint8 maps [0, 1] to 0..255, rounded)."""
    if np.dtype(dtype) == np.uint8:
        return np.rint(np.clip(probs, 0.0, 1.0) * 255.0).astype(np.uint8)
    return probs.astype(dtype, copy=False)


def label_dtype(classes: int) -> np.dtype:
    return np.dtype(np.uint8 if classes <= 256 else np.uint16)


def _open_output(
    kind: str,
    path: str | os.PathLike | None,
    classes: int,
    stack: tuple[int, ...],
    spatial: tuple[int, ...],
    d: int,
    options: PredictOptions,
    bundle: ModelBundle,
) -> Writer:
    has_classes = kind in ("logits", "probabilities")
    shape = (classes, *stack, *spatial) if has_classes else (*stack, *spatial)
    if kind == "logits":
        dtype = np.dtype(np.float32)
    elif kind == "probabilities":
        dtype = np.dtype(np.float32 if path is None else options.probability_dtype)
    elif kind == "labels":
        dtype = label_dtype(classes)
    else:
        dtype = np.dtype(np.int32)
    names = list(bundle.pipeline.target.class_names) if bundle.pipeline.target else []
    return open_writer(path, shape, dtype, spatial_dims=d, has_classes=has_classes, class_names=names)


@dataclass(frozen=True)
class InstanceTarget:
    """How instances are made from a model's probabilities (see :func:`instance_target`).

    Attributes:
        interior_class: the class whose confident regions seed objects.
        foreground_classes: classes that seeds grow over (their summed probability > 0.5).
        threshold: seeds are ``P(interior) > threshold``.
        min_size: seeds smaller than this many pixels are dropped.
    """

    interior_class: int
    foreground_classes: list[int]
    threshold: float
    min_size: int


def instance_target(bundle: ModelBundle, options: PredictOptions) -> InstanceTarget:
    """The instance settings of ``bundle``: classes from its pipeline target, seeds from ``options`` if given,
    else the model's (chosen by training on its validation images), else 0.5 and 8 pixels.

    Raises :class:`~biounet.errors.DataError` naming the model when it was not trained for instances.
    """
    target = bundle.pipeline.target
    classes = bundle.config.num_classes
    where = f"{bundle.path}: " if bundle.path else ""
    if target is None or target.kind != "instances" or target.interior_class is None:
        raise DataError(
            f"{where}instances need a model trained for instances (pipeline target kind 'instances' "
            "with an interior_class); this model is semantic: use output 'labels' or 'probabilities'"
        )
    interior = int(target.interior_class)
    foreground = [int(c) for c in target.foreground_classes or [interior]]
    if not all(0 <= c < classes for c in [interior, *foreground]):
        raise DataError(f"{where}pipeline target classes {target} do not fit a model with {classes} classes")
    threshold, min_size = target.seed_settings(options.threshold, options.min_size)
    return InstanceTarget(interior, foreground, threshold, min_size)


def _tile_limit(tile_size: int | Sequence[int] | None, d: int) -> tuple[int, ...] | None:
    if tile_size is None:
        return None
    sizes = (int(tile_size),) * d if isinstance(tile_size, (int, np.integer)) else tuple(int(n) for n in tile_size)
    if len(sizes) != d or any(n < 1 for n in sizes):
        raise ValueError(f"tile_size must be a positive int or {d} positive ints, not {tile_size!r}")
    return sizes


@contextlib.contextmanager
def _prepared(model: UNet, device: torch.device, precision: str) -> Iterator[torch.memory_format]:
    """Eval mode, on ``device``, in the fast memory format; the mode and format are restored afterwards."""
    was_training = model.training
    fmt = memory_format(precision, device, model.config.spatial_dims)
    model.eval()
    model.to(device=device, memory_format=fmt)
    try:
        yield fmt
    finally:
        model.train(was_training)
        if fmt != torch.contiguous_format:
            model.to(memory_format=torch.contiguous_format)


def _batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, n)):
        yield batch


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
            settings.update(threshold=instances.threshold, min_size=instances.min_size)
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
    "OUTPUT_KINDS",
    "InstanceTarget",
    "PredictOptions",
    "PredictionResult",
    "as_bundle",
    "instance_target",
    "predict",
    "predict_to",
]
