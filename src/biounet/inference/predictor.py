"""Overlap-tile inference (Ronneberger et al. 2015, Fig. 2) for 2D and 3D images of any size.

:func:`predict` is the public entry point; :func:`predict_to` plans the run it shares with
``biounet predict`` (tile grid, batch size, writers, sidecars), and :class:`~biounet.inference.engine.TiledRun`
executes it.  One pass over the image does everything:

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

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.data.finite import TileGuard
from biounet.inference.engine import TiledRun
from biounet.inference.instances import InstanceTarget, instance_target
from biounet.inference.outputs import OUTPUT_KINDS, PROBABILITY_DTYPES
from biounet.inference.sidecar import build_sidecar, write_sidecar
from biounet.inference.sources import ChannelFirstView, open_for_model, source_for_array
from biounet.inference.tta import tta_transforms
from biounet.inference.writers import Writer, open_output
from biounet.io.checkpoint import ModelBundle, load_bundle
from biounet.model.unet import UNet
from biounet.pipeline import Pipeline
from biounet.runtime import resolve_device, resolve_precision, torch_threads
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
        nan_policy: NaN/infinite input pixels: ``"refuse"`` (an error naming the image and the count)
            or ``"fill"`` (replaced by the image's median; see :mod:`biounet.data.finite`).
        progress: show a tqdm progress bar (tiles/s, ETA) on stderr.
        description: the progress bar's label.
        on_progress: called as ``on_progress(done, total)`` (tiles) after every batch, for a GUI's bar;
            an exception it raises (a cancel button's) stops the prediction, and no output is left behind.
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
    nan_policy: str = "refuse"
    progress: bool = True
    description: str = "predict"
    on_progress: Callable[[int, int], None] | None = None


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
    nan_policy: str = "refuse",
    on_progress: Callable[[int, int], None] | None = None,
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
        nan_policy: NaN or infinite pixels in ``image``: ``"refuse"`` (raise
            :class:`~biounet.data.finite.NonFiniteImageError` naming the image and the count) or
            ``"fill"`` (replace them by the image's median).
        on_progress: ``on_progress(done, total)`` in tiles after every batch (a GUI's progress bar); an
            exception raised by it (a cancel button) stops the prediction, leaving no output file.

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
        nan_policy=nan_policy,
        progress=progress,
        on_progress=on_progress,
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
    _check_request(kinds, options)
    config = bundle.config
    d = config.spatial_dims
    spatial = tuple(int(n) for n in source.shape[source.ndim - d :])
    stack = tuple(int(n) for n in source.shape[1 : source.ndim - d])
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    transforms = tta_transforms(options.tta, config)
    target = instance_target(bundle, options.threshold, options.min_size) if "instances" in kinds else None

    limit = _tile_limit(options.tile_size, d)
    if limit is None:
        limit = max_input_shape(config, spatial, context_margin(config), precision, device)
    grid = plan_grid(config, spatial, limit)
    batch_size = options.batch_size or batch_size_for(config, grid.input_shape, precision, device)
    threads = options.num_threads if options.num_threads is not None else default_threads()
    settings = _settings(bundle, grid, stack, batch_size, options, precision, device, threads)

    class_names = list(bundle.pipeline.target.class_names) if bundle.pipeline.target else []
    writers: dict[str, Writer] = {}
    try:
        for kind in kinds:
            writers[kind] = open_output(
                kind, targets[kind], config.num_classes, stack, spatial, d, options.probability_dtype, class_names
            )
        where = str((image_info or {}).get("path") or "the image")
        run = TiledRun(
            bundle.model, source, grid, stack, writers, options.progress, options.description, device, precision,
            transforms, target, TileGuard(source, where, options.nan_policy), options.on_progress,
        )
        with torch_threads(threads):
            run.execute(bundle.pipeline.normalization, batch_size)
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
        "tile_context": list(context_margin(config)),
        "batch_size": int(batch_size),
        "tta": int(options.tta),
        "precision": precision,
        "precision_requested": options.precision,
        "device": str(device),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "normalization": bundle.pipeline.normalization.to_dict(),
        "tiling": "valid: equals a whole-image pass" if config.padding == "valid" else "same: halo crop",
    }


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
            settings.update(threshold=instances.threshold, min_size=instances.min_size)
            if instances.cells is not None:
                settings["cells"] = dataclasses.asdict(instances.cells)
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
