"""Training data: preset folders, the images read, and the validation images split off.

:func:`load_training_data` is the one place that decides which images train and which validate:
a separate set (``data.val_images``), named images (``data.val_names``) or the last
``data.val_split`` of the images in name order (a contiguous block, honest for slices of one stack).
"""

from __future__ import annotations

import logging
from pathlib import Path

from biounet.data.dsb import read_dsb
from biounet.data.readers import Sample, TrainingData, read_folder_pairs
from biounet.errors import DataError
from biounet.training.config import ConfigError, TrainConfig

log = logging.getLogger("biounet.train")


def resolve_data_paths(config: TrainConfig) -> None:
    """Fill in preset folders: ``--preset isbi2012 --images ROOT`` finds ``ROOT/train/image`` and ``.../label``."""
    data = config.data
    if data.images is None:
        raise ConfigError("no training images: give --images (and --masks), --dsb, or data.images in the config")
    images = Path(data.images)
    if data.layout == "folders" and data.masks is None:
        for base in (images / "train", images):
            if (base / "image").is_dir() and (base / "label").is_dir():
                data.images, data.masks = str(base / "image"), str(base / "label")
                break
        else:
            raise ConfigError(f"{images}: no mask folder given (--masks DIR)")
    for name in ("images", "masks", "val_images", "val_masks"):  # absolute: --resume works from anywhere
        value = getattr(data, name)
        if value is not None:
            setattr(data, name, str(Path(value).resolve()))


def validation_count(total: int, fraction: float) -> int:
    """How many of ``total`` (>= 2) images ``--val-split fraction`` takes for validation: at least one, and
    at least one left to train on."""
    return min(total - 1, max(1, round(total * fraction)))


def load_training_data(config: TrainConfig) -> tuple[TrainingData, list[Sample]]:
    """Read the training images and split off the validation images; returns (training data, validation)."""
    resolve_data_paths(config)
    data = config.data
    dims = config.model.spatial_dims
    if data.layout == "dsb":
        if dims != 2:
            raise ConfigError("the DSB layout is 2D; use model.spatial_dims = 2")
        train = read_dsb(data.images, data.target, normalization=data.normalization, nan_policy=data.nan_policy)
    else:
        train = read_folder_pairs(data.images, data.masks, data.target, normalization=data.normalization,
                                  spatial_dims=dims, nan_policy=data.nan_policy)
    for note in train.notes:
        log.info(note)
    if data.val_images:
        if data.layout == "dsb":
            val_data = read_dsb(data.val_images, data.target, normalization=data.normalization,
                                nan_policy=data.nan_policy)
        else:
            if not data.val_masks:
                raise ConfigError("--val-images needs --val-masks")
            val_data = read_folder_pairs(data.val_images, data.val_masks, data.target,
                                         normalization=data.normalization, spatial_dims=dims,
                                         nan_policy=data.nan_policy)
        if val_data.in_channels != train.in_channels:
            raise DataError(f"{data.val_images}: validation images have {val_data.in_channels} channel(s), "
                            f"the training images {train.in_channels}")
        val = val_data.samples
    elif data.val_names:
        wanted = set(data.val_names)
        val = [s for s in train.samples if s.name in wanted or s.name.split("[z=")[0] in wanted]
        found = {s.name for s in val} | {s.name.split("[z=")[0] for s in val}
        missing = sorted(wanted - found)
        if missing:
            raise DataError(f"{data.images}: no image named {missing[0]!r} for validation")
        train.samples = [s for s in train.samples if s not in val]
    elif data.val_split > 0 and len(train.samples) >= 2:
        count = validation_count(len(train.samples), data.val_split)
        val = train.samples[-count:]
        train.samples = train.samples[:-count]
    else:
        val = []
        log.info("no validation images: the last checkpoint is also the best")
    if not train.samples:
        raise DataError(f"{data.images}: no training images left after taking the validation images")
    if val:
        log.info(f"{len(train.samples)} training image(s), {len(val)} validation image(s): "
                 + ", ".join(s.name for s in val[:8]) + (" ..." if len(val) > 8 else ""))
    return train, val


__all__ = ["load_training_data", "resolve_data_paths", "validation_count"]
