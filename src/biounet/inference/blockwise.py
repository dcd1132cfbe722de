"""Distributed prediction with Dask: a large image or volume in blocks, predicted on the workers of a cluster.

:func:`predict_blockwise` (``biounet predict MODEL big.zarr --out out.zarr --dask local:4``) plans a
prediction exactly as the single-process predictor does (tile grid, batch size, precision, the intensity
statistics of the WHOLE image, computed once here on the same subsample), splits the output into blocks made
of whole tiles of that grid (:mod:`biounet.inference.blocks`) and runs one task per block on the workers
(:mod:`biounet.inference.block_tasks`).  Each task reads its block's input with the real neighbours as
context, mirrored only beyond the image, and writes its core into zarr arrays whose chunks are the blocks, so
no two tasks write one chunk.  The probabilities equal ``biounet.predict``'s bit for bit (same tiles, same
inputs, same batch size).

Instances are made per block by the predictor's own instance step with ``overlap`` pixels of neighbouring
probabilities and merged across block faces by a reduction over the faces (:mod:`biounet.inference.label_merge`);
the label image is never gathered.  Phases: predict blocks -> instances per block -> merge tables (here, from
the faces) -> relabel blocks.  A task whose worker dies is run again by Dask (and ``retries`` times after an
error), and, since every task rewrites only its own chunks, the output is the same as a clean run's.

The output is one OME-Zarr store (OME-NGFF 0.4, :mod:`biounet.io.omezarr`) with the input's scale: the
probabilities (or logits) as the image, class labels and instances as ``labels/labels`` and
``labels/instances``; it is written under a temporary name beside the final one and renamed at the end
(:func:`biounet.io.atomic.atomic_path`), with ``OUT.json`` beside it.  The workers must see that folder
(one machine, or a shared file system on a cluster), and the input and the model file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.finite import can_hold_non_finite, check_policy, finite_medians
from biounet.data.normalization import image_statistics, statistics_sample
from biounet.errors import DataError
from biounet.inference.block_tasks import BlockJob, instance_block, predict_block, relabel_block
from biounet.inference.blocks import BlockPlan, plan_blocks
from biounet.inference.instances import instance_target, prediction_spacing
from biounet.inference.label_merge import merge_tables
from biounet.inference.pending import plan_tiles, tiling_note
from biounet.inference.predictor import PredictOptions, as_bundle
from biounet.inference.sources import open_for_model
from biounet.inference.writers import label_dtype
from biounet.io import omezarr
from biounet.io.atomic import atomic_path, check_output_path
from biounet.io.checkpoint import ModelBundle, save_model
from biounet.runtime import resolve_device, resolve_precision

#: Output kinds a blockwise prediction writes.
BLOCKWISE_OUTPUTS = ("probabilities", "labels", "instances", "logits")
WORK = ".biounet-work"


@dataclass
class BlockwiseOptions:
    """Settings of the distribution (the prediction's own settings are :class:`PredictOptions`).

    Attributes:
        block_size: block edge per axis in pixels, rounded to whole tile strides (``None``: 2048 in 2D,
            256 in 3D); a tile chosen from the memory budget is no larger than a block.  Memory per worker
            grows with the block, not with the image.
        overlap: instances: pixels of neighbouring probabilities the instance step of a block sees on every
            side (``None``: 128 in 2D, 48 in 3D); objects up to about this size are labelled as in a
            single-process run.
        retries: times a task is run again after an error in it (a dead worker's tasks are rerun anyway).
        threads: PyTorch threads per task (``None``: the cores of a worker's machine divided by the tasks
            that run on it at once).
        on_block_start: called on the worker with the block number before it is predicted (instrumentation,
            the tests' worker kill); picklable.
        on_cluster: called here with the dashboard link (``None`` without one) once the cluster is up, before
            any work (the CLI prints it).
    """

    block_size: int | Sequence[int] | None = None
    overlap: int | Sequence[int] | None = None
    retries: int = 2
    threads: int | None = None
    on_block_start: Any = None
    on_cluster: Any = None


@dataclass
class BlockwiseResult:
    """What :func:`predict_blockwise` wrote: the store, its arrays per kind, and how it ran."""

    path: Path
    arrays: dict[str, str]
    blocks: int
    dashboard: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def predict_blockwise(
    model: Any,
    image: str | os.PathLike,
    out: str | os.PathLike,
    outputs: Sequence[str] = ("probabilities",),
    *,
    dask: Any = "local:2",
    options: PredictOptions | None = None,
    blockwise: BlockwiseOptions | None = None,
    channel_axis: str | int | None = "auto",
) -> BlockwiseResult:
    """Predict the image file ``image`` (zarr, OME-Zarr, TIFF, .npy) block by block on a Dask cluster into ``out``.

    Args:
        model: a model path, :class:`~biounet.io.checkpoint.ModelBundle` or UNet (saved into the output's
            work folder for the workers).
        image: an image file every worker can read; ``(C, *S)`` or ``(*S)`` for the model's ``S`` (no stacks).
        out: the OME-Zarr store to write (``.zarr``); an existing folder biounet did not write is refused.
        outputs: kinds to write (:data:`BLOCKWISE_OUTPUTS`).
        dask: a ``distributed.Client``, a scheduler address (``tcp://host:8786``) or ``"local:N"`` (a
            ``LocalCluster`` of N single-threaded worker processes, closed afterwards).
        options: tile size, batch size, TTA, precision, device, probability dtype, seeds, NaN policy, progress.
        blockwise: block size, instance overlap, retries, threads per task.
    """
    options, blockwise = options or PredictOptions(), blockwise or BlockwiseOptions()
    kinds = _checked_kinds(outputs)
    started = time.perf_counter()
    out = check_output_path(out)
    bundle = as_bundle(model, device=resolve_device(options.device))
    source, info = _open(image, bundle, channel_axis)
    t = time.perf_counter()
    stats = image_statistics(source, bundle.pipeline.normalization)
    timings = {"statistics_s": time.perf_counter() - t}
    plan, settings = _plan(bundle, source, options, blockwise)
    with atomic_path(out) as tmp, dask_client(dask) as (client, dashboard):
        if blockwise.on_cluster is not None:
            blockwise.on_cluster(dashboard)
        tmp.unlink()
        arrays = _create_outputs(tmp, kinds, bundle, plan, info, options.probability_dtype)
        job = _job(bundle, tmp, image, info, stats, plan, arrays, settings, options, blockwise, client)
        timings.update(_run(client, job, len(plan), options.progress, blockwise.retries, "instances" in kinds))
        shutil.rmtree(tmp / WORK, ignore_errors=True)
    settings.update(threads_per_task=job.threads, instance_overlap=list(job.overlap))
    if job.target is not None:  # the instance settings used (the model's, or the caller's)
        settings.update(job.target.recorded())
    timings["total_s"] = time.perf_counter() - started
    final = {kind: str(out / Path(path).relative_to(tmp)) for kind, path in arrays.items() if kind in kinds}
    result = BlockwiseResult(out, final, len(plan), dashboard, settings, {k: round(v, 3) for k, v in timings.items()})
    _write_sidecar(result, bundle, info, kinds)
    return result


def _checked_kinds(outputs: Sequence[str]) -> list[str]:
    kinds = list(dict.fromkeys(outputs))
    for kind in kinds:
        if kind not in BLOCKWISE_OUTPUTS:
            raise ValueError(f"unknown output {kind!r} (choose from {', '.join(BLOCKWISE_OUTPUTS)})")
    if not kinds:
        raise ValueError("no output requested")
    return kinds


def _open(image: Any, bundle: ModelBundle, channel_axis: Any) -> tuple[Any, dict[str, Any]]:
    """The image as the model's source, its info (path, shape, the OME-Zarr scale) and how workers open it."""
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError("blockwise prediction reads the image from a file every worker can open (zarr, OME-Zarr, "
                        f"TIFF, .npy), not a {type(image).__name__}; save it first or use biounet.predict")
    ome = omezarr.open_level0(image)[1] if omezarr.is_omezarr(image) else None
    if ome is not None and channel_axis == "auto":
        channel_axis = ome.channel_axis if ome.channel_axis is not None else "none"
    if bundle.pipeline.z_context:
        raise DataError(f"{image}: --dask predicts no stacks of sections, and this is a 2.5D model (z context "
                        f"{bundle.pipeline.z_context}): predict the stack without --dask")
    channels = bundle.pipeline.channels
    source, info = open_for_model(image, bundle.config, channel_axis=channel_axis, channels=channels)  # no stacks
    info.update(path=str(image), open_channel_axis=channel_axis, channels=list(channels) if channels else None)
    if ome is not None:
        info["ome"] = {"axes": ome.axes, "scale": ome.scale, "version": ome.version}
    return source, info


def _plan(
    bundle: ModelBundle, source: Any, options: PredictOptions, blockwise: BlockwiseOptions
) -> tuple[BlockPlan, dict[str, Any]]:
    """The global tile grid and batch size exactly as :func:`~biounet.inference.predictor.predict_to` plans
    them, and the blocks over that grid."""
    config = bundle.config
    d = config.spatial_dims
    spatial = tuple(int(n) for n in source.shape[1:])
    device = resolve_device(options.device)
    precision = resolve_precision(options.precision, device)
    block_size = blockwise.block_size or (2048 if d == 2 else 256)
    blocks = (int(block_size),) * d if np.ndim(block_size) == 0 else tuple(int(n) for n in block_size)
    grid, batch = plan_tiles(config, spatial, options, precision, device, largest_output=blocks)
    plan = plan_blocks(grid, block_size)
    settings = {
        "tile_input_shape": list(grid.input_shape), "tile_output_stride": list(grid.stride), "tiles": len(grid),
        "batch_size": int(batch), "tta": int(options.tta), "precision": precision, "device": str(device),
        "normalization": bundle.pipeline.normalization.to_dict(), "blocks": len(plan),
        "block_shape": list(plan.block_shape), "block_counts": list(plan.counts),
        "tiling": tiling_note(config, grid, options.context),
        "z_context": 0, "spacing": list(prediction_spacing(bundle, options.spacing) or []) or None,
    }
    return plan, settings


def _create_outputs(
    root: Path, kinds: list[str], bundle: ModelBundle, plan: BlockPlan, info: dict[str, Any], probability_dtype: str
) -> dict[str, str]:
    """The OME-Zarr store's arrays (chunks = blocks) and the work arrays; kind -> array path."""
    d = bundle.config.spatial_dims
    shape, chunks, classes = plan.grid.image_shape, plan.block_shape, bundle.config.num_classes
    ome = info.get("ome")
    axes = ome["axes"][-d:] if ome else [{"name": n, "type": "space"} for n in "zyx"[3 - d :]]
    scale = ome["scale"][-d:] if ome else [1.0] * d
    names = list(bundle.pipeline.target.class_names) if bundle.pipeline.target else []
    arrays = {}
    image_kind = next((k for k in ("probabilities", "logits") if k in kinds), None)
    if image_kind:
        dtype = probability_dtype if image_kind == "probabilities" else np.float32
        omezarr.create_image(root, (classes, *shape), dtype, (1, *chunks), axes, scale, name=image_kind,
                             channel_names=names)
        arrays[image_kind] = str(root / "0")
    if "logits" in kinds and image_kind != "logits":
        omezarr.create_labels(root, "logits", (classes, *shape), np.float32, (1, *chunks), axes, scale)
        arrays["logits"] = str(root / "labels" / "logits" / "0")
    for kind, dtype in (("labels", label_dtype(classes)), ("instances", np.int32)):
        if kind in kinds:
            omezarr.create_labels(root, kind, shape, dtype, chunks, axes, scale)
            arrays[kind] = str(root / "labels" / kind / "0")
    if "instances" in kinds:
        arrays.update(_work_arrays(root / WORK, shape, chunks, bundle))
    return arrays


def _work_arrays(work: Path, shape: tuple[int, ...], chunks: tuple[int, ...], bundle: ModelBundle) -> dict[str, str]:
    """The instance phases' arrays: interior probability (float32), foreground, the distance output of a model
    with one (float32), local labels per block."""
    import zarr

    target = instance_target(bundle)
    names = {"interior": np.float32, "local": np.int32}
    if target.cells is None:
        names["foreground"] = np.bool_
    if target.distance_channel is not None:
        names["distance"] = np.float32
    for name, dtype in names.items():
        zarr.open_array(str(work / name), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    return {name: str(work / name) for name in names}


def _job(
    bundle: ModelBundle, tmp: Path, image: Any, info: dict[str, Any], stats: Any, plan: BlockPlan,
    arrays: dict[str, str], settings: dict[str, Any], options: PredictOptions, blockwise: BlockwiseOptions,
    client: Any,
) -> BlockJob:
    d = bundle.config.spatial_dims
    model_path = bundle.path
    if model_path is None:  # an in-memory model: the workers load it from the output's work folder
        model_path = save_model(bundle.model, tmp / WORK / "model.safetensors", pipeline=bundle.pipeline)
    wanted = "interior" in arrays
    target = None
    if wanted:
        target = instance_target(bundle, options.threshold, options.min_size, options.spacing, options.seed_height,
                                 options.foreground_threshold)
    overlap = blockwise.overlap if blockwise.overlap is not None else (128 if d == 2 else 48)
    overlap = (int(overlap),) * d if np.ndim(overlap) == 0 else tuple(int(n) for n in overlap)
    policy = check_policy(options.nan_policy)
    medians = None
    if policy == "fill" and can_hold_non_finite(np.dtype(info["dtype"])):
        medians = finite_medians(statistics_sample(open_for_model(image, bundle.config)[0]))
    channels = tuple(info["channels"]) if info.get("channels") else None
    return BlockJob(
        str(model_path), str(image), info["open_channel_axis"], channels, stats, plan, settings["batch_size"],
        settings["precision"], settings["device"], int(options.tta), _threads(client, blockwise, options), arrays,
        options.probability_dtype, target, overlap, policy, medians, blockwise.on_block_start,
    )


def _threads(client: Any, blockwise: BlockwiseOptions, options: PredictOptions) -> int:
    """PyTorch threads per task: given, else the fewest cores per concurrently running task on any host."""
    given = blockwise.threads or options.num_threads
    if given:
        return int(given)
    cores = client.run(lambda: len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    workers = client.scheduler_info(n_workers=-1)["workers"]
    per_host: dict[str, list[int]] = {}
    for worker in workers.values():
        per_host.setdefault(worker["host"], []).append(int(worker["nthreads"]))
    ratios = [
        max(1, cores[address] // sum(per_host[worker["host"]]))
        for address, worker in workers.items()
        if address in cores
    ]
    return min(ratios) if ratios else 1


@contextlib.contextmanager
def dask_client(dask: Any) -> Iterator[tuple[Any, str | None]]:
    """A ``distributed.Client`` for ``dask`` (a client, kept open; an address; or ``"local:N"``, a
    ``LocalCluster`` of N single-threaded worker processes) and the dashboard link; closed afterwards
    unless it was given."""
    from distributed import Client, LocalCluster

    if isinstance(dask, Client):
        yield dask, _dashboard(dask)
        return
    spec = str(dask)
    if spec.startswith("local"):
        count = int(spec.split(":", 1)[1]) if ":" in spec else max(1, len(os.sched_getaffinity(0)))
        dashboard = ":0" if _has_bokeh() else None
        cluster = LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=dashboard)
        with cluster, Client(cluster) as client:
            yield client, _dashboard(client)
        return
    with Client(spec) as client:
        yield client, _dashboard(client)


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def _dashboard(client: Any) -> str | None:
    try:
        return client.dashboard_link if _has_bokeh() else None
    except Exception:  # no dashboard on this scheduler
        return None


def _run(client: Any, job: BlockJob, blocks: int, progress: bool, retries: int, instances: bool) -> dict[str, float]:
    """The phases, each a task per block; returns their timings."""
    timings = {}
    t = time.perf_counter()
    numbers = list(range(blocks))
    _phase(client, predict_block, job, numbers, {}, "predict blocks", progress, retries)
    timings["predict_s"] = time.perf_counter() - t
    if instances:
        t = time.perf_counter()
        faces = _phase(client, instance_block, job, numbers, {}, "instances", progress, retries)
        ordered = [faces[n] for n in numbers]
        sections = job.target is not None and job.target.cells_per_section(len(job.plan.counts))
        tables = merge_tables(ordered, [_neighbours(job.plan, n) for n in numbers], per_section=sections)
        _phase(client, relabel_block, job, numbers, dict(enumerate(tables)), "relabel", progress, retries)
        timings["instances_s"] = time.perf_counter() - t
    return timings


def _neighbours(plan: BlockPlan, number: int) -> list[int | None]:
    block = plan.block(np.unravel_index(number, plan.counts))
    return [plan.neighbour(block, axis) for axis in range(len(plan.counts))]


def _phase(
    client: Any, function: Any, job: BlockJob, numbers: list[int], extra: dict[int, Any], description: str,
    progress: bool, retries: int,
) -> dict[int, Any]:
    """One task per block number; results by number, a tqdm bar over blocks; the rest cancelled on an error."""
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = {}
    for n in numbers:
        args = (job, n, extra[n]) if n in extra else (job, n)
        futures[client.submit(function, *args, retries=retries, pure=False)] = n
    results: dict[int, Any] = {}
    bar = tqdm(total=len(numbers), unit="block", desc=description, disable=not progress, file=sys.stderr,
               dynamic_ncols=True, leave=False)
    try:
        with bar:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update(1)
    except BaseException:
        client.cancel(list(futures))
        raise
    return results


def _write_sidecar(result: BlockwiseResult, bundle: ModelBundle, info: dict[str, Any], kinds: list[str]) -> None:
    import dataclasses

    from biounet.inference.sidecar import build_sidecar, write_sidecar

    image = {k: v for k, v in info.items() if k != "open_channel_axis"}
    content = build_sidecar(
        output_kind="+".join(kinds), output_path=result.path, model_path=bundle.path,
        model_config=bundle.config.to_dict(), settings=result.settings, image=image, timings=result.timings,
        target=dataclasses.asdict(bundle.pipeline.target) if bundle.pipeline.target else None,
    )
    content["arrays"] = {kind: str(Path(p).relative_to(result.path)) for kind, p in result.arrays.items()}
    write_sidecar(result.path, content)


__all__ = ["BLOCKWISE_OUTPUTS", "BlockwiseOptions", "BlockwiseResult", "dask_client", "predict_blockwise"]
