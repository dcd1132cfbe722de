"""Overlap-tile inference (Ronneberger et al. 2015, Fig. 2) for 2D and 3D images of any size.

:func:`predict` is the public entry point; :func:`predict_to`, which it shares with ``biounet predict``,
plans the run (:func:`~biounet.inference.pending.start_prediction`: tile grid, batch size, writers, sidecars)
and :class:`~biounet.inference.engine.TiledRun` executes it.  One pass over the image does everything:

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

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from biounet.errors import DataError
from biounet.inference.instances import InstanceTarget, instance_target
from biounet.inference.outputs import OUTPUT_KINDS
from biounet.inference.pending import PredictionResult, PredictOptions, start_prediction
from biounet.inference.sources import ChannelFirstView, open_for_model, source_for_array
from biounet.io.checkpoint import ModelBundle, load_bundle
from biounet.model.unet import UNet
from biounet.pipeline import Pipeline
from biounet.runtime import resolve_device, torch_threads


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
    seed_height: float | None = None,
    nan_policy: str = "refuse",
    context: str = "halo",
    on_progress: Callable[[int, int], None] | None = None,
    spacing: Sequence[float] | None = None,
    foreground_threshold: float | None = None,
) -> Any:
    """Segment an image of any size with the overlap-tile strategy.

    Args:
        model: a :class:`~biounet.model.UNet`, a :class:`~biounet.io.checkpoint.ModelBundle`, or the
            path of a saved model (``.safetensors`` file or a ``biounet train`` run directory).  A UNet
            is set to eval mode (and back) and moved to ``device``.
        image: ``(*S)`` or ``(C, *S)`` (``S`` = ``(Y, X)`` or ``(Z, Y, X)``, any size from 1 pixel): a
            NumPy array, a lazy array (``np.memmap``, zarr) read tile by tile, or an image file path.  A 2.5D
            model (``Pipeline.z_context = k``) takes a stack ``(Z, Y, X)`` or ``(Z, C, Y, X)`` of at least
            ``k + 1`` sections and sees each section with ``k`` neighbours on each side as channels
            (:mod:`biounet.inference.sections`); outputs are ``(K, Z, Y, X)`` / ``(Z, Y, X)``.
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
        seed_height: instance seeds split at the h-maxima of this height (0..1) of the distance map, 0 for the
            paper's seeds (:func:`~biounet.inference.instances.instances_from_interior`); ``None``: the model's.
        foreground_threshold: instances of touching objects cover the pixels whose foreground classes' summed
            probability exceeds this (0..1); ``None``: the model's (chosen by validation), else 0.5.
        nan_policy: NaN or infinite pixels in ``image``: ``"refuse"`` (raise
            :class:`~biounet.data.finite.NonFiniteImageError` naming the image and the count) or
            ``"fill"`` (replace them by the image's median).
        context: same-padded models, images too large for one pass: the tiles' margin, ``"halo"`` (80 px
            for depth 4, as exact as bfloat16) or ``"exact"`` (112 px: equals a whole-image pass).
        on_progress: ``on_progress(done, total)`` in tiles after every batch (a GUI's progress bar); an
            exception raised by it (a cancel button) stops the prediction, leaving no output file.
        spacing: the image's voxel size ``(Y, X)`` or ``(Z, Y, X)`` in any unit (``None``: the model's
            ``Pipeline.spacing``).  Membrane models' cells use it: a 3D model's in 3D, a 2D (or 2.5D) model's
            on a stack ``(Z, Y, X)`` over the whole stack in 3D when it has 3 values, else per section.

    Returns:
        The output array (in memory), or the output path when ``out`` is given.

    Tiling (see :mod:`biounet.tiling.grid`): for valid-padded models the tiled result equals one pass
    over the whole mirrored image; same-padded models take an image that fits the memory budget in one
    pass, and tile larger ones with overlapping tiles whose centres are kept ("halo crop"): with
    ``context="exact"`` that equals a whole-image pass away from the border.
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
        seed_height=seed_height,
        nan_policy=nan_policy,
        progress=progress,
        context=context,
        on_progress=on_progress,
        spacing=spacing,
        foreground_threshold=foreground_threshold,
    )
    bundle = as_bundle(model, pipeline=pipeline, device=resolve_device(device))
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    channels, z = bundle.pipeline.channels, bundle.pipeline.z_context
    hint = bundle.pipeline.channel_axis if channel_axis == "auto" and channels else None
    if isinstance(image, (str, os.PathLike)):
        try:  # the training data's channel axis first, as biounet predict does, then "auto"
            source, info = open_for_model(
                image, bundle.config, channel_axis=hint or channel_axis, channels=channels, z_context=z,
                allow_stack=True,
            )
        except DataError:
            if not hint:
                raise
            source, info = open_for_model(image, bundle.config, channel_axis=channel_axis, channels=channels,
                                          z_context=z, allow_stack=True)
    else:
        if hint and np.ndim(image) != bundle.config.spatial_dims + 1:
            hint = None  # an array without a channel axis (a grey (Y, X) image for an RGB-trained model's channel 0)
        source, info = source_for_array(
            image, bundle.config, channel_axis=hint or channel_axis, channels=channels, z_context=z
        )
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
    pending = start_prediction(bundle, source, targets, options, image_info=image_info)
    with pending.guarded(), torch_threads(pending.threads):
        pending.run.execute(bundle.pipeline.normalization, pending.batch_size)
    return pending.finish()


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
