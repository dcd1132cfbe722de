"""napari reader: biounet's prediction files (with their ``OUT.json`` sidecars) and OME-Zarr images.

- A prediction file (``.tif``, ``.npy``, ``.png``, ``.zarr``) with a biounet sidecar beside it:
  probabilities and logits ``(K, *S)`` become one Image layer per class, named by the model's class
  names (uint8 probabilities are scaled back to [0, 1]); labels and instances become Labels layers.
  Files without a sidecar are left to napari's own readers (the reader returns ``None``).
- An OME-Zarr (NGFF) folder (:func:`biounet.io.omezarr.is_omezarr`; a biounet prediction written as
  OME-Zarr too): every image and label image in it through ``ome_zarr.reader`` (lazy, all resolution
  levels, which napari shows as a pyramid), with the channel axis split into layers and the scale and
  translation of the full-resolution level.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from biounet.inference.sidecar import sidecar_path
from biounet.io.omezarr import is_omezarr

LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[Any], list[LayerData]]


def get_reader(path: str | os.PathLike | list[Any]) -> ReaderFunction | None:
    """The reader for ``path`` if it is a biounet output or an OME-Zarr, else ``None`` (napari tries others)."""
    if isinstance(path, (list, tuple)):
        if not path or not all(get_reader(p) for p in path):
            return None
        return read_paths
    p = Path(path)
    if is_omezarr(p) or read_sidecar(p) is not None:
        return read_paths
    return None


def read_paths(path: str | os.PathLike | list[Any]) -> list[LayerData]:
    """Layer data for one path or a list of paths (see the module docstring)."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    layers: list[LayerData] = []
    for p in map(Path, paths):
        layers += read_ome_zarr(p) if is_omezarr(p) else read_prediction(p)
    return layers


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The biounet sidecar of ``path`` (``path.json``) or ``None`` when there is none or it is not biounet's."""
    side = sidecar_path(path)
    if not side.is_file() or not path.exists():
        return None
    try:
        content = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or "biounet_version" not in content or "output" not in content:
        return None
    return content


def read_prediction(path: Path) -> list[LayerData]:
    """Layers of one prediction file, interpreted with its sidecar."""
    from biounet.io.images import read_image

    sidecar = read_sidecar(path) or {}
    kind = str(sidecar.get("output", {}).get("kind", "probabilities"))
    data = read_image(path)
    name = path.name.split(".")[0]
    meta = {"metadata": {"biounet": sidecar}}
    if kind in ("labels", "instances"):
        return [(data, {"name": name, **meta}, "labels")]
    model = sidecar.get("model", {})
    spatial = int(model.get("config", {}).get("spatial_dims", 2)) + int(sidecar.get("image", {}).get("stack_axes", 0))
    if data.dtype == np.uint8 and kind == "probabilities":
        data = data.astype(np.float32) / 255.0
    elif data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
    limits = (0.0, 1.0) if kind == "probabilities" else None
    if data.ndim <= spatial:  # one class per file (PNG probabilities)
        return [(data, {"name": name, **meta, **({"contrast_limits": limits} if limits else {})}, "image")]
    names = list(model.get("target", {}).get("class_names") or [str(k) for k in range(data.shape[0])])
    if len(names) != data.shape[0]:
        names = [str(k) for k in range(data.shape[0])]
    layers = []
    for k, class_name in enumerate(names):
        extra = {"contrast_limits": limits, "colormap": "magma"} if limits else {}
        layers.append((data[k], {"name": f"{name} {class_name}", **meta, **extra, "blending": "additive"}, "image"))
    return layers


def read_ome_zarr(path: Path) -> list[LayerData]:
    """Every image and label image of an OME-Zarr, lazily (dask arrays, all levels) through ``ome_zarr``."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    location = parse_url(str(path))
    if location is None:
        raise ValueError(f"{path}: not an OME-Zarr")
    layers: list[LayerData] = []
    for node in Reader(location)():
        if not node.data:
            continue
        data = node.data if len(node.data) > 1 else node.data[0]
        meta = _ome_meta(node.metadata, len(node.data[0].shape))
        if node.load(Label) is not None:
            meta.pop("channel_axis", None)
            layers.append((data, {**meta, "visible": True}, "labels"))
        else:
            layers.append((data, meta, "image"))
    return layers


def _ome_meta(metadata: dict[str, Any], ndim: int) -> dict[str, Any]:
    """napari keyword arguments from ``ome_zarr``'s node metadata: name, channel axis, scale, translate."""
    axes = metadata.get("axes") or []
    channel = next((i for i, axis in enumerate(axes) if isinstance(axis, dict) and axis.get("type") == "channel"), None)
    scale, translate = [1.0] * ndim, [0.0] * ndim
    for transform in (metadata.get("coordinateTransformations") or [[]])[0]:
        if transform.get("type") == "scale":
            scale = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation":
            translate = [float(v) for v in transform["translation"]]
    meta: dict[str, Any] = {"name": metadata.get("name") or "image"}
    if channel is not None:
        del scale[channel], translate[channel]
        meta["channel_axis"] = channel
        names = metadata.get("name")
        if isinstance(names, (list, tuple)):
            meta["name"] = list(names)
    meta.update(scale=tuple(scale), translate=tuple(translate))
    return meta


__all__ = ["get_reader", "read_ome_zarr", "read_paths", "read_prediction", "read_sidecar"]
