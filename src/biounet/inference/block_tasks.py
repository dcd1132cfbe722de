"""The work of one block on a Dask worker: predict it, make its instances, relabel them.

Every function here takes a :class:`BlockJob` (what all blocks share: the model file, the image file, the
intensity statistics of the WHOLE image, the tile grid, the output arrays) and a block's raster number, reads
what it needs from disk and writes its own chunk of every output array: no two tasks write one chunk, and a
task that is run again (after its worker died) writes the same values again, so retries are harmless.

Workers keep the loaded model (per thread) and the opened image (per process), so a worker loads the model
once, not once per block.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from biounet.data.finite import can_hold_non_finite, filled
from biounet.data.normalization import IntensityStats, NormalizationConfig, apply_normalization
from biounet.errors import DataError
from biounet.inference.blocks import BlockPlan, local_geometry
from biounet.inference.engine import TiledRun
from biounet.inference.instances import InstanceTarget
from biounet.inference.label_merge import BlockLabels, block_instances, instance_step
from biounet.inference.sources import ChannelFirstView
from biounet.inference.writers import MemoryWriter, encode_probabilities, label_dtype
from biounet.tiling import read_mirrored

#: The intensity "normalisation" of a block that was already normalised with the whole image's statistics.
ALREADY_NORMALISED = NormalizationConfig(method="none")


@dataclass(frozen=True)
class BlockJob:
    """What every block task of one prediction shares (small: sent with every task).

    Attributes:
        model_path: the ``.safetensors`` model (a file every worker can read).
        image_path, channel_axis, channels: the input image and how to open it for the model.
        stats: the whole image's intensity statistics (offset, scale per channel).
        plan: the blocks over the global tile grid.
        batch_size, precision, device, tta, threads: as in a single-process prediction (threads per task).
        arrays: output kind (``probabilities``, ``labels``, ``logits``, ``instances``) or work array name
            (``interior``, ``foreground``, ``local``) -> path of its zarr array.
        probability_dtype: probabilities on disk.
        target: the instance settings (``None`` without instances).
        overlap: pixels of neighbouring probabilities the instance step of a block sees on every side.
        nan_policy, medians, where: NaN/infinite pixels: ``"refuse"`` or ``"fill"`` with the whole image's
            medians; ``where`` names the image in errors.
        on_block_start: called with the block number before a block is predicted (instrumentation and
            the tests' worker kill); must be picklable.
    """

    model_path: str
    image_path: str
    channel_axis: Any
    channels: tuple[int, ...] | None
    stats: IntensityStats
    plan: BlockPlan
    batch_size: int
    precision: str
    device: str
    tta: int
    threads: int
    arrays: dict[str, str]
    probability_dtype: str
    target: InstanceTarget | None
    overlap: tuple[int, ...]
    nan_policy: str = "refuse"
    medians: np.ndarray | None = None
    on_block_start: Callable[[int], None] | None = None


@functools.lru_cache(maxsize=16)
def _bundle(model_path: str, modified: float, device: str, thread: int) -> Any:
    from biounet.io.checkpoint import load_bundle

    return load_bundle(model_path, device=device)


def _load(job: BlockJob) -> Any:
    """The model, loaded once per worker thread: the engine switches a model's mode and memory format while it
    runs, so two tasks running at once in one worker (``nthreads > 1``) must not share one."""
    return _bundle(job.model_path, os.path.getmtime(job.model_path), job.device, threading.get_ident())


@functools.lru_cache(maxsize=4)
def _source(image_path: str, channel_axis: Any, channels: tuple[int, ...] | None, config: Any) -> ChannelFirstView:
    from biounet.inference.sources import open_for_model

    source, _ = open_for_model(image_path, config, channel_axis=channel_axis, channels=channels)
    return source


@functools.lru_cache(maxsize=16)
def _array(path: str) -> Any:
    import zarr

    return zarr.open_array(path, mode="r+")


def _block(job: BlockJob, number: int) -> Any:
    return job.plan.block(np.unravel_index(number, job.plan.counts))


def predict_block(job: BlockJob, number: int) -> int:
    """Predict block ``number`` and write its core into the output (and work) arrays; returns ``number``."""
    import torch

    from biounet.inference.tta import tta_transforms
    from biounet.runtime import torch_threads

    if job.on_block_start is not None:
        job.on_block_start(number)
    bundle = _load(job)
    block = _block(job, number)
    geometry = local_geometry(job.plan.grid, block)
    source = _source(job.image_path, job.channel_axis, job.channels, bundle.config)
    raw = read_mirrored(source, geometry.input_start, geometry.input_shape, leading=(slice(None),))
    normalised = apply_normalization(_finite(raw, job), job.stats)
    classes = bundle.config.num_classes
    shape = (classes, *geometry.grid.image_shape)
    writers = {"probabilities": MemoryWriter(shape, np.float32)}
    if "logits" in job.arrays:
        writers["logits"] = MemoryWriter(shape, np.float32)
    device = torch.device(job.device)
    run = TiledRun(bundle.model, ChannelFirstView(normalised, 0), geometry.grid, (), writers, False, None, device,
                   job.precision, tta_transforms(job.tta, bundle.config), None,
                   distance_channel=bundle.pipeline.distance_channel)
    with torch_threads(job.threads):
        run.execute(ALREADY_NORMALISED, job.batch_size)
    core = (slice(None), *geometry.local(block.core))
    probs = writers["probabilities"].array[core]
    logits = writers["logits"].array[core] if "logits" in writers else None
    _write_outputs(job, block.core, probs, logits, bundle.pipeline.distance_channel)
    return number


def _finite(raw: np.ndarray, job: BlockJob) -> np.ndarray:
    """The block's pixels, NaN/infinite ones refused (naming the image) or filled with the image's medians."""
    if not can_hold_non_finite(raw.dtype) or np.isfinite(raw).all():
        return raw
    if job.nan_policy == "fill" and job.medians is not None:
        return filled(raw, job.medians)
    bad = int(np.count_nonzero(~np.isfinite(raw)))
    raise DataError(f"{job.image_path}: {bad} NaN or infinite pixels in one block (use nan_policy='fill' to "
                    "replace them by the image's median)")


def _write_outputs(
    job: BlockJob, core: tuple[slice, ...], probs: np.ndarray, logits: np.ndarray | None, distance_channel: int | None
) -> None:
    """A block's core ``probs`` ``(K[+1], *core)`` (and logits) into the output and work arrays; the labels are the
    arg-max over the classes, without a ``distance_channel``."""
    arrays = job.arrays
    if "probabilities" in arrays:
        _array(arrays["probabilities"])[(slice(None), *core)] = encode_probabilities(
            probs, np.dtype(job.probability_dtype)
        )
    if "labels" in arrays:
        classes = probs[:distance_channel]
        _array(arrays["labels"])[core] = np.argmax(classes, axis=0).astype(label_dtype(classes.shape[0]))
    if logits is not None:
        _array(arrays["logits"])[(slice(None), *core)] = logits
    if "interior" in arrays:
        target = job.target
        _array(arrays["interior"])[core] = probs[target.interior_class]
        if "foreground" in arrays:
            _array(arrays["foreground"])[core] = target.foreground(probs)
        if "distance" in arrays:
            _array(arrays["distance"])[core] = probs[target.distance_channel]


def instance_block(job: BlockJob, number: int) -> BlockLabels:
    """The instance step of block ``number`` on its core plus ``job.overlap`` of context: its core labels
    (numbered ``1..n``) go to the work array ``local``; returns the count and the face slabs."""
    block = _block(job, number)
    shape = job.plan.grid.image_shape
    context = tuple(
        slice(max(0, c.start - o), min(n, c.stop + o)) for c, o, n in zip(block.core, job.overlap, shape)
    )
    interior = np.asarray(_array(job.arrays["interior"])[context])
    foreground = np.asarray(_array(job.arrays["foreground"])[context]) if "foreground" in job.arrays else None
    distance = np.asarray(_array(job.arrays["distance"])[context]) if "distance" in job.arrays else None
    labels = instance_step(interior, foreground, job.target, distance)
    core_labels, faces = block_instances(labels, block.core, context, shape)
    _array(job.arrays["local"])[block.core] = core_labels
    return faces


def relabel_block(job: BlockJob, number: int, table: np.ndarray) -> int:
    """Write block ``number``'s instances with global ids: ``table[local id]``."""
    block = _block(job, number)
    local = np.asarray(_array(job.arrays["local"])[block.core])
    _array(job.arrays["instances"])[block.core] = table[local]
    return number


__all__ = ["BlockJob", "instance_block", "predict_block", "relabel_block"]
