"""The 2018 Data Science Bowl layout: ``<root>/<id>/images/<id>.png`` and one mask file per object.

Read for training (:func:`read_dsb`) and for laying out a local copy (:mod:`biounet.data.convert`); both
number the objects with :func:`dsb_instance_map`, so an overlap is resolved the same way everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biounet.data.finite import checked_image
from biounet.data.normalization import NormalizationConfig
from biounet.data.pairing import natural_key
from biounet.data.readers import (
    RawSample,
    TrainingData,
    channels_first,
    harmonise_channels,
    read_image_file,
    read_mask,
    select_names,
)
from biounet.data.targets import Target, TargetConfig, touching_target
from biounet.errors import DataError
from biounet.io.images import is_image_file


def scan_dsb(root: str | os.PathLike) -> list[tuple[str, list[Path], list[Path]]]:
    """``(id, image_paths, mask_paths)`` for every ``<root>/<id>/images`` folder, ids in natural order.

    No checks: an entry may have no image or no masks.  :func:`find_dsb` (training) refuses such folders;
    the dataset converter skips them with a warning.  Mask files are in file-name order, the order that
    numbers the objects (see :func:`dsb_instance_map`).
    """
    entries = []
    for folder in sorted((p for p in Path(root).iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        images_dir = folder / "images"
        if not images_dir.is_dir():
            continue
        images = sorted((p for p in images_dir.iterdir() if is_image_file(p)), key=lambda p: p.name)
        masks_dir = folder / "masks"
        masks = sorted((p for p in masks_dir.iterdir() if is_image_file(p)), key=lambda p: p.name) \
            if masks_dir.is_dir() else []
        entries.append((folder.name, images, masks))
    return entries


def find_dsb(root: str | os.PathLike) -> list[tuple[str, Path, list[Path]]]:
    """``(id, image_path, mask_paths)`` for every sample of a DSB 2018 folder (``stage1_train`` or its parent)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such DSB folder")
    if (root / "stage1_train").is_dir() and not (root / root.name / "images").is_dir():
        root = root / "stage1_train"
    entries = []
    for name, images, masks in scan_dsb(root):
        if len(images) != 1:
            raise DataError(f"{root / name / 'images'}: expected exactly one image file, found {len(images)}")
        if not masks:
            raise DataError(f"{root / name / 'masks'}: no mask files (DSB layout: one PNG per object in <id>/masks/)")
        entries.append((name, images[0], masks))
    if not entries:
        raise DataError(f"{root}: no DSB samples (expected <id>/images/<id>.png and <id>/masks/*.png)")
    return entries


def dsb_instance_map(mask_paths: Sequence[Path], shape: tuple[int, ...]) -> np.ndarray:
    """``(Y, X)`` int32 instance map from one mask file per object: object ``i`` (1-based, in the order of
    ``mask_paths``) is where mask ``i`` is ``> 0``; 0 is background.

    Where masks overlap, the **first** mask wins: a pixel keeps the first object that claims it, so a later
    mask can never overwrite part of an earlier object.  It is the usual convention (a pixel is labelled
    once) and what ``biounet data fetch`` always wrote, so earlier converted datasets stay identical.  In the
    real DSB data only <= 2 px in 2 images overlap; the rule matters for consistency, not accuracy.
    """
    instances = np.zeros(shape, dtype=np.int32)
    for index, mask_path in enumerate(mask_paths, start=1):
        mask = read_mask(mask_path, 2)
        if mask.shape != tuple(shape):
            raise DataError(f"{mask_path}: mask of shape {mask.shape} does not match its image {tuple(shape)}")
        instances[(mask > 0) & (instances == 0)] = index
    return instances


def read_dsb(
    root: str | os.PathLike,
    target: TargetConfig,
    *,
    normalization: NormalizationConfig | None = None,
    names: Sequence[str] | None = None,
    nan_policy: str = "refuse",
) -> TrainingData:
    """Read a DSB 2018 folder: instance map = enumeration of each sample's mask files (see
    :func:`dsb_instance_map`: ``> 0``, the first file wins the few overlapping pixels); NaN pixels as in
    :func:`read_folder_pairs`."""
    if target.kind == "instances" and target.style == "membrane":
        raise DataError(f"{root}: the DSB layout holds objects, not membranes; use the touching-cells target")
    entries = find_dsb(root)
    if names is not None:
        entries = select_names(entries, names, Path(root))
    raws = []
    for name, image_path, mask_paths in entries:
        image = read_image_file(image_path)
        spatial = image.shape[:2]
        instances = dsb_instance_map(mask_paths, spatial)
        image_cf, axis = channels_first(image, spatial, image_path)
        image_cf = checked_image(image_cf, str(image_path), nan_policy)
        raws.append(RawSample(name, image_cf, axis, _dsb_target(instances, target), image_path,
                         mask_paths[0].parent))
    data = harmonise_channels(raws, normalization or NormalizationConfig())
    objects = sum(len(m) for _, _, m in entries)
    data.notes.insert(0, f"read {len(raws)} DSB samples with {objects} object masks from {root}")
    return data


def _dsb_target(instances: np.ndarray, config: TargetConfig) -> Target:
    if config.kind == "semantic":
        if config.classes:
            raise DataError("DSB masks are objects: a semantic target from them has 2 classes, not "
                            f"{config.classes}")
        return Target(classes=(instances > 0).astype(np.uint8), convention="union of object masks")
    return Target(classes=touching_target(instances, config.boundary_width), instances=instances,
                  convention="one mask file per object")


__all__ = ["dsb_instance_map", "find_dsb", "read_dsb", "scan_dsb"]
