"""The Segment widget's logic without Qt: check the choices, predict a layer, turn the outputs into layers.

A napari layer is predicted in memory through the same tiled predictor as ``biounet predict``
(:func:`biounet.inference.predictor.predict_to`), all outputs in one pass.  A 2D model predicts a
``(Z, Y, X)`` stack section by section; a 3D model needs a ``(Z, Y, X)`` layer.  The result layers get
the image layer's scale and translation (the axes that are not channels), so they lie on the image in
world coordinates.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.inference.instances import instance_target
from biounet.inference.predictor import PredictOptions, predict_to
from biounet.inference.sources import ChannelFirstView, source_for_array
from biounet.io.checkpoint import ModelBundle, load_bundle
from biounet.napari.common import Cancelled, layer_array, spatial_geometry

#: The outputs the widget offers, in the order of its check boxes.
WIDGET_OUTPUTS: tuple[str, ...] = ("probabilities", "labels", "instances")

#: ``(data, layer keyword arguments, layer type)``: napari's LayerDataTuple.
LayerData = tuple[Any, dict[str, Any], str]


@dataclass(frozen=True)
class SegmentRequest:
    """What the user chose: ``outputs`` (a subset of :data:`WIDGET_OUTPUTS`), ``tta`` (1, 4 or 8) and
    ``batch_size`` (tiles per forward pass; ``None``: from the free memory, as ``biounet predict``)."""

    outputs: tuple[str, ...] = ("probabilities",)
    tta: int = 1
    batch_size: int | None = None


def load_model(path: str | os.PathLike | None) -> ModelBundle:
    """The model of a ``.safetensors`` file, a run folder or a bioimage.io package (``.zip``); a one-line
    :class:`BiounetError` when there is none."""
    if path is None or not str(path).strip() or str(path).strip() == ".":
        raise ValueError("choose a model: a .safetensors file, a bioimage.io .zip or a run folder of biounet train")
    return load_bundle(Path(path).expanduser(), device="cpu")


def model_summary(bundle: ModelBundle) -> str:
    """One line about the model for the widget: dimensions, classes and what it was trained for."""
    config, target = bundle.config, bundle.pipeline.target
    kind = f"{target.kind}" + (f" ({target.style})" if target and target.kind == "instances" else "") if target else ""
    names = ", ".join(target.class_names) if target and target.class_names else f"{config.num_classes} classes"
    return f"{config.spatial_dims}D model, {config.in_channels} channel(s) in, {names}" + (f"; {kind}" if kind else "")


def check_request(bundle: ModelBundle, layer: Any, request: SegmentRequest) -> None:
    """Raise a one-line error when ``layer`` or the chosen outputs do not fit ``bundle``; else return None.

    Checks: the layer is an Image layer; its dimensionality fits the model (a 3D model on a 2D layer is
    refused, a 2D model on a stack predicts section by section); outputs are known and not empty;
    instances only from a model trained for instances or membranes.
    """
    if layer is None:
        raise ValueError("choose an image layer (open an image in napari first)")
    kind = type(layer).__name__
    if kind != "Image":
        raise ValueError(f"layer {layer.name!r} is a {kind} layer; Segment needs an Image layer")
    if not request.outputs:
        raise ValueError("choose at least one output (probabilities, labels or instances)")
    unknown = [o for o in request.outputs if o not in WIDGET_OUTPUTS]
    if unknown:
        raise ValueError(f"unknown output(s) {', '.join(unknown)} (choose from {', '.join(WIDGET_OUTPUTS)})")
    if request.tta not in (1, 4, 8):
        raise ValueError(f"TTA must be 1, 4 or 8, not {request.tta}")
    if request.batch_size is not None and request.batch_size < 1:
        raise ValueError(f"tiles per batch must be at least 1, not {request.batch_size}")
    d = bundle.config.spatial_dims
    if d == 3 and layer.ndim < 3:
        shape = tuple(int(n) for n in layer_array(layer).shape)
        raise ValueError(f"{_model_name(bundle)} is a 3D model and layer {layer.name!r} is 2D {shape}; "
                         "open a (Z, Y, X) stack or use a 2D model")
    if "instances" in request.outputs:
        instance_target(bundle)  # DataError naming the model when it was trained for semantic classes
    open_layer(bundle, layer)


def open_layer(bundle: ModelBundle, layer: Any) -> tuple[ChannelFirstView, dict[str, Any]]:
    """The predictor's lazy ``(C, *stack, *S)`` view of the layer's data and its description for the sidecar.

    Channels: an RGB(A) layer has them last (the model's pipeline picks the ones it was trained on);
    otherwise a 1-channel model reads the layer as one channel, a multi-channel model as channels first.
    """
    data, rgb = layer_array(layer), bool(getattr(layer, "rgb", False))
    if rgb and bundle.config.in_channels == 1 and not bundle.pipeline.channels:
        data, rgb = grey(data), False  # a grey image saved as RGB(A), as napari opens DSB's PNGs
    z_context = bundle.pipeline.z_context  # a 2.5D model: its channels are (2k + 1) sections of the layer's
    file_channels = bundle.config.in_channels // (2 * z_context + 1)
    channels = "last" if rgb else "none" if file_channels == 1 else "first"
    return source_for_array(
        data, bundle.config, channel_axis=channels, allow_stack=True, name=f"layer {layer.name!r}",
        channels=bundle.pipeline.channels, z_context=z_context,
    )


def grey(rgb: Any) -> np.ndarray:
    """``(*S, 3 or 4)`` -> ``(*S)``: the first channel when R = G = B (grey saved as colour), else their mean.

    For a 1-channel model on an RGB(A) layer; alpha is left out.
    """
    colour = np.asarray(rgb)[..., :3]
    if np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2]):
        return colour[..., 0]
    return colour.mean(axis=-1, dtype=np.float32)


def segment(
    bundle: ModelBundle,
    layer: Any,
    request: SegmentRequest,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, np.ndarray]:
    """Predict ``layer`` with ``bundle``: ``{"probabilities": (K, *stack, *S) float32, "labels": (*stack, *S)
    uint8, "instances": (*stack, *S) int32}`` for the chosen outputs.

    ``on_progress(done, total)`` (tiles) after every batch; when ``cancel`` is set the next batch raises
    :class:`Cancelled` and nothing is returned.  Runs in the widget's worker thread.
    """
    check_request(bundle, layer, request)

    def progress(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        if on_progress is not None:
            on_progress(done, total)

    if cancel is not None and cancel.is_set():
        raise Cancelled()
    source, info = open_layer(bundle, layer)
    options = PredictOptions(tta=request.tta, batch_size=request.batch_size, progress=False, on_progress=progress,
                             description=layer.name)
    result = predict_to(bundle, source, {kind: None for kind in request.outputs}, options, image_info=info)
    return {kind: np.asarray(array) for kind, array in result.outputs.items()}


def result_layers(bundle: ModelBundle, layer: Any, outputs: dict[str, np.ndarray]) -> list[LayerData]:
    """napari layer data for the outputs of :func:`segment`, named after ``layer`` and placed like it.

    Probabilities become one Image layer per class (a class named ``background`` is left out: it is one
    minus the others), labels and instances Labels layers.
    """
    name = layer.name
    target = bundle.pipeline.target
    scale, translate = spatial_geometry(layer)
    layers: list[LayerData] = []
    for kind, data in outputs.items():
        n = data.ndim - (1 if kind == "probabilities" else 0)
        place = {"scale": scale[-n:], "translate": translate[-n:]}
        if kind == "probabilities":
            names = list(target.class_names) if target and target.class_names else [str(k) for k in range(len(data))]
            for k, class_name in enumerate(names):
                if class_name == "background" and len(names) > 1:
                    continue
                meta = {"name": f"{name} P({class_name})", "contrast_limits": (0.0, 1.0), "colormap": "magma",
                        "blending": "additive", "opacity": 0.7, **place}
                layers.append((data[k], meta, "image"))
        else:
            layers.append((data, {"name": f"{name} {kind}", "opacity": 0.6, **place}, "labels"))
    return layers


def add_layers(viewer: Any, layers: Sequence[LayerData]) -> list[Any]:
    """Add the layers to ``viewer``; a layer of the same name, type and shape (an earlier run) gets the new data."""
    added = []
    for data, meta, kind in layers:
        old = viewer.layers[meta["name"]] if meta["name"] in viewer.layers else None
        if old is not None and type(old).__name__.lower() == kind and old.data.shape == data.shape:
            old.data = data
            added.append(old)
        else:
            added.append(getattr(viewer, f"add_{kind}")(data, **meta))
    return added


def _model_name(bundle: ModelBundle) -> str:
    return str(bundle.path) if bundle.path else "the model"


__all__ = ["WIDGET_OUTPUTS", "SegmentRequest", "add_layers", "check_request", "load_model", "model_summary",
           "open_layer", "result_layers", "segment"]
