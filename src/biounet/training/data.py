"""Training data: preset folders, the images read, and the validation images split off.

:func:`load_training_data` is the one place that decides which images train and which validate:
a separate set (``data.val_images``), named images (``data.val_names``) or the last
``data.val_split`` of the images in name order (a contiguous block, honest for slices of one stack).

The ``"sections"`` layout (:mod:`biounet.data.sections`, the ssTEM VNC stack) splits along z: a 2D model
validates on the last ``val_split`` of the sections (15 sections at 0.2: sections 12, 13, 14), a 3D model
trains on the volume before them (``stack1[z=0:12]``) and validates on the volume they make
(``stack1[z=12:15]``); ``val_names`` may name section numbers (``["12", "13", "14"]``). In 2.5D
(``data.z_context``) the channels of a section come from the whole stack, so the inputs (never the labels)
of the validation sections next to training sections are seen in training (and those of section 11 in
validating section 12), as prediction of the whole stack sees them too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from biounet.data.dsb import read_dsb
from biounet.data.pairing import trailing_number
from biounet.data.readers import Sample, TrainingData, read_folder_pairs
from biounet.data.sections import read_sections, section_numbers, split_volume
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
    if data.layout == "dsb" and dims != 2:
        raise ConfigError("the DSB layout is 2D; use model.spatial_dims = 2")
    if data.z_context and (dims != 2 or data.layout != "sections"):
        raise ConfigError("data.z_context (2.5D) needs a 2D model (model.spatial_dims = 2) and layout 'sections'")
    train = _read(config, data.images, data.masks)
    for note in train.notes:
        log.info(note)
    if data.val_images:
        if data.layout == "folders" and not data.val_masks:
            raise ConfigError("--val-images needs --val-masks")
        val_data = _read(config, data.val_images, data.val_masks)
        if val_data.in_channels != train.in_channels:
            raise DataError(f"{data.val_images}: validation images have {val_data.in_channels} channel(s), "
                            f"the training images {train.in_channels}")
        val = val_data.samples
    elif data.layout == "sections" and dims == 3:
        val = _split_stack(train, data.val_names, data.val_split, data.images)
    elif data.val_names:
        wanted = set(data.val_names)
        val = [s for s in train.samples if _names(s, data.layout) & wanted]
        found = set().union(*(_names(s, data.layout) for s in val))
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


def _read(config: TrainConfig, images: str, masks: str | None) -> TrainingData:
    data = config.data
    if data.layout == "dsb":
        return read_dsb(images, data.target, normalization=data.normalization, nan_policy=data.nan_policy)
    if data.layout == "sections":
        return read_sections(images, data.target, normalization=data.normalization,
                             spatial_dims=config.model.spatial_dims, z_context=data.z_context,
                             nan_policy=data.nan_policy)
    return read_folder_pairs(images, masks, data.target, normalization=data.normalization,
                             spatial_dims=config.model.spatial_dims, nan_policy=data.nan_policy)


def _names(sample: Sample, layout: str) -> set[str]:
    """What ``val_names`` may call a sample: its name, its stack's name, and for sections its number."""
    names = {sample.name, sample.name.split("[z=")[0]}
    number = trailing_number(sample.name) if layout == "sections" else None
    return names | ({str(number)} if number is not None else set())


def _split_stack(train: TrainingData, val_names: list[str] | None, fraction: float, where: str) -> list[Sample]:
    """A 3D sections stack split along z (module docstring); ``train.samples`` becomes the training volumes."""
    stack = train.samples[0]
    depth = stack.image.shape[1]
    if val_names:
        positions = _section_positions(stack, val_names, where)
    elif fraction > 0 and depth >= 2:
        positions = set(range(depth - validation_count(depth, fraction), depth))
    else:
        log.info("no validation volume: the last checkpoint is also the best")
        return []
    train.samples, val = split_volume(stack, positions)
    return val


def _section_positions(stack: Sample, val_names: list[str], where: str) -> set[int]:
    numbers = list(section_numbers(stack.mask_path))
    positions = set()
    for name in val_names:
        number = trailing_number(str(name))
        if number not in numbers:
            raise DataError(f"{where}: no section numbered {name!r} for validation")
        positions.add(numbers.index(number))
    return positions


__all__ = ["load_training_data", "resolve_data_paths", "validation_count"]
