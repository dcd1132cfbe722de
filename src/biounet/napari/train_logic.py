"""The Train widget's logic without Qt: layers -> a dataset folder -> a training configuration -> a run folder.

Training data come from pairs of napari layers (an Image layer and the Labels layer painted on it) or
from a folder the user already has (``images/`` and ``masks/``, the layout ``biounet train --images
--masks`` reads).  Layers are written as TIFF files into ``RUN_DIR/data/images`` and ``RUN_DIR/data/masks``
(one pair per layer pair, paired by name), inside the run folder so that the run stays reproducible
and ``biounet train --out RUN_DIR --resume`` finds its data.  The configuration is the default recipe
(as ``biounet train`` builds it on this machine) with the chosen target and time budget; the run folder
is the same as the command line's, usable with ``biounet predict RUN_DIR``.

Target kinds, and what the Labels layer holds:

- ``semantic``: a class per pixel value (0 = the first class); the values found are the classes;
- ``instances``: object ids (0 = background); touching objects are separated (3 classes);
- ``membranes``: the cells painted as objects; the unpainted pixels between them are membrane
  (the ISBI 2012 convention, 2 classes membrane / interior).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biounet.napari.common import as_label_image, layer_array

#: The widget's target kinds -> ``data.target`` of the configuration.
TARGETS: dict[str, dict[str, Any]] = {
    "semantic": {"kind": "semantic"},
    "instances": {"kind": "instances", "style": "touching"},
    "membranes": {"kind": "instances", "style": "membrane", "membrane_value": 0},
}

#: Minutes between history.csv updates while the widget trains (the loss curve reads that file).
CURVE_CHECKPOINT_MINUTES = 0.25


@dataclass
class TrainRequest:
    """What the user chose.

    Attributes:
        run_dir: the new run folder (must not exist or be empty).
        target: ``"semantic"``, ``"instances"`` or ``"membranes"`` (see the module docstring).
        minutes: wall-clock budget of the training (and its validations), in minutes.
        spatial_dims: 2 or 3 (a 3D network on ``(Z, Y, X)`` stacks; a 2D network trains on their sections).
        folder: instead of layers, a folder holding ``images/`` and ``masks/``.
        settings: further configuration keys, dotted as in ``biounet train --set`` (``{"model.depth": 3}``).
    """

    run_dir: Path
    target: str = "instances"
    minutes: float = 5.0
    spatial_dims: int = 2
    folder: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def parse_settings(text: str) -> dict[str, Any]:
    """``"model.depth=3, steps=100"`` -> ``{"model.depth": 3, "steps": 100}`` (values read as YAML, so lists
    in brackets and ``null`` work as in ``biounet train --set``)."""
    import yaml

    settings: dict[str, Any] = {}
    for item in (part.strip() for part in _split_items(text)):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"settings take KEY=VALUE, e.g. model.depth=3, not {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            settings[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            settings[key] = value
    return settings


def _split_items(text: str) -> list[str]:
    """Split at commas and semicolons outside brackets (``a=[1, 2], b=3`` -> two items)."""
    items, depth, current = [], 0, []
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char in ",;" and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*items, "".join(current)]


def check_pairs(pairs: Sequence[tuple[Any, Any]]) -> list[tuple[str, Any, np.ndarray]]:
    """``(name, image data, mask)`` per (Image layer, Labels layer) pair; a one-line error if one does not fit."""
    if not pairs:
        raise ValueError("add at least one pair of an Image layer and its Labels layer (or choose a folder)")
    checked, names = [], set()
    for image, labels in pairs:
        if image is None or labels is None:
            raise ValueError("every pair needs an Image layer and a Labels layer")
        if type(image).__name__ != "Image":
            raise ValueError(f"layer {image.name!r} is a {type(image).__name__} layer; the image must be an Image "
                             "layer")
        if type(labels).__name__ != "Labels":
            raise ValueError(f"layer {labels.name!r} is a {type(labels).__name__} layer; paint the masks in a Labels "
                             "layer")
        data = layer_array(image)
        mask = as_label_image(layer_array(labels), labels.name)
        spatial = tuple(data.shape[:-1]) if getattr(image, "rgb", False) else tuple(data.shape)
        if tuple(mask.shape) != spatial:
            raise ValueError(f"labels layer {labels.name!r} has shape {tuple(mask.shape)} and image layer "
                             f"{image.name!r} {spatial}: they must cover the same pixels")
        if not mask.any():
            raise ValueError(f"labels layer {labels.name!r} is empty: paint some objects first")
        name = _file_name(image.name, names)
        checked.append((name, np.asarray(data), mask))
    return checked


def write_dataset(pairs: Sequence[tuple[str, Any, np.ndarray]], folder: Path) -> tuple[Path, Path]:
    """Write ``folder/images/NAME.tif`` and ``folder/masks/NAME.tif`` for each pair (atomically); the two folders."""
    from biounet.io.images import write_image

    images, masks = folder / "images", folder / "masks"
    for name, image, mask in pairs:
        write_image(images / f"{name}.tif", np.ascontiguousarray(image))
        write_image(masks / f"{name}.tif", mask)
    return images, masks


def semantic_classes(masks: Sequence[np.ndarray]) -> list[int]:
    """The class values of semantic masks: every value found, in order; an error when there is only one."""
    values = sorted(set().union(*(np.unique(m).tolist() for m in masks)))
    if len(values) < 2:
        raise ValueError(f"semantic labels need at least 2 values (found only {values}); paint a second class")
    return [int(v) for v in values]


def check_run_dir(run_dir: Path | str | None) -> Path:
    """The run folder: new or empty (a folder with files is never written into: it may be the user's)."""
    if run_dir is None or not str(run_dir).strip() or str(run_dir).strip() == ".":
        raise ValueError("choose a new folder for the run (the model is saved there)")
    path = Path(run_dir).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"{path}: exists and is not empty; choose a new folder for the run")
    return path


def build_config(request: TrainRequest, images: Path, masks: Path, classes: list[int] | None = None) -> Any:
    """The :class:`~biounet.training.config.TrainConfig`: default recipe, then the widget's choices, then settings."""
    from biounet.training.config import TrainConfig, merge
    from biounet.training.recipes import recipe

    if request.target not in TARGETS:
        raise ValueError(f"target must be one of {', '.join(TARGETS)}, not {request.target!r}")
    if not request.minutes > 0:
        raise ValueError(f"minutes must be positive, not {request.minutes}")
    target = dict(TARGETS[request.target])
    if request.target == "semantic" and classes:
        target["classes"] = classes
    layer = {
        "data": {"images": str(images), "masks": str(masks), "target": target},
        "model": {"spatial_dims": int(request.spatial_dims)},
        "max_minutes": float(request.minutes),
        "steps": None,
        "checkpoint_minutes": CURVE_CHECKPOINT_MINUTES,
    }
    chosen = merge(layer, _nested(request.settings))
    config = merge(recipe("default", chosen["data"].get("target")), chosen)
    config["recipe"] = "default"
    return TrainConfig.from_dict(config, where="Train widget settings")


def prepare(request: TrainRequest, pairs: Sequence[tuple[Any, Any]]) -> Any:
    """Check everything, write the layers' dataset into the run folder, and return the configuration.

    ``pairs`` are (Image layer, Labels layer) tuples; unused when ``request.folder`` is set.
    """
    run_dir = check_run_dir(request.run_dir)
    if request.folder is not None and str(request.folder).strip() not in ("", "."):
        folder = Path(request.folder).expanduser()
        images, masks = folder / "images", folder / "masks"
        if not images.is_dir() or not masks.is_dir():
            raise ValueError(f"{folder}: needs an images/ and a masks/ folder (masks named like their images)")
        classes = None
        if request.target == "semantic":
            from biounet.data.readers import pair_files, read_mask

            found = [read_mask(mask, request.spatial_dims) for _, _, mask in pair_files(images, masks)]
            classes = semantic_classes(found)
        return build_config(request, images, masks, classes)
    checked = check_pairs(pairs)
    classes = semantic_classes([m for _, _, m in checked]) if request.target == "semantic" else None
    build_config(request, run_dir / "data" / "images", run_dir / "data" / "masks", classes)  # fail before writing
    images, masks = write_dataset(checked, run_dir / "data")
    return build_config(request, images, masks, classes)


def run_training(config: Any, run_dir: Path) -> Any:
    """Train (no progress bar: the widget polls ``RUN_DIR/history.csv``); the trainer's ``TrainResult``."""
    from biounet.training.trainer import train

    return train(config, run_dir, progress=False)


def read_losses(run_dir: Path) -> tuple[list[int], list[float], list[int], list[float]]:
    """From ``RUN_DIR/history.csv``: steps and training losses, and steps and values of the validation metric.

    Empty lists while the file does not exist yet (the first checkpoint writes it).
    """
    import csv

    path = Path(run_dir) / "history.csv"
    steps, losses, val_steps, values = [], [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, csv.Error):
        return steps, losses, val_steps, values
    metrics = ("val_adapted_rand_error", "val_f1", "val_mean_iou")
    metric = next((key for key in metrics if rows and key in rows[0]), None)
    for row in rows:
        if row.get("kind") == "train" and row.get("train_loss"):
            steps.append(int(row["step"]))
            losses.append(float(row["train_loss"]))
        elif row.get("kind") == "val" and metric and row.get(metric):
            val_steps.append(int(row["step"]))
            values.append(float(row[metric]))
    return steps, losses, val_steps, values


def _nested(settings: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in settings.items():
        node = out
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = value
    return out


def _file_name(layer_name: str, taken: set[str]) -> str:
    """A file name from a layer name: letters, digits, ``-`` and ``_`` only, unique among ``taken``."""
    base = "".join(c if c.isalnum() or c in "-_" else "_" for c in layer_name).strip("_") or "image"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


__all__ = ["TARGETS", "TrainRequest", "build_config", "check_pairs", "check_run_dir", "parse_settings", "prepare",
           "read_losses", "run_training", "semantic_classes", "write_dataset"]
