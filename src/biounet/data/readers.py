"""Reading training data: image/mask pairs from folders or the DSB 2018 layout, as ``(C, *S)`` float32.

Layouts:

* ``"folders"``: an image folder and a mask folder; image and mask are paired by file name without
  suffix (``a.png`` with ``a.tif``; mask names may end in ``_mask``, ``_label``, ``_labels``, ``_seg``
  or ``_gt``; if names differ but every name ends in a unique number, e.g. ``raw/07.tif`` and
  ``labels/labels00000007.png``, they are paired by that number). Both may be the same folder when the
  masks carry one of those endings. PNG, TIFF (single- and multi-page), ``.npy`` and zarr, 8/16-bit or
  float, grayscale or multi-channel.
* ``"dsb"``: the 2018 Data Science Bowl layout ``<root>/<id>/images/<id>.png`` with one mask file per
  object in ``<root>/<id>/masks/*.png``; the instance map is the enumeration of the mask files.

Channels are found from the mask's shape: an image of the mask's shape has one channel, one extra
axis first or last is the channel axis. A constant alpha channel is dropped, and when every image's
channels are equal (grey saved as RGB/RGBA, as in DSB) only the first is kept. 2D models read 3D
stacks (a multi-page mask of the same depth) as one training image per section.

Intensities are normalised per image with :mod:`biounet.data.normalization` (statistics of the whole
image or stack), as inference does.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from biounet.data.finite import checked_image
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.data.pairing import (
    file_stem,
    index_by_stem,
    natural_key,
    pair_by_number,
    pair_by_stem,
    strip_ending,
)
from biounet.data.targets import Target, TargetConfig, build_target
from biounet.errors import DataError, ImageReadError
from biounet.io.images import PIL_SUFFIXES, image_suffix, is_image_file, read_image

log = logging.getLogger("biounet.data")

Layout = Literal["folders", "dsb"]

#: Endings of mask file names that are ignored when pairing masks with images.
MASK_ENDINGS = ("_mask", "_masks", "_label", "_labels", "_seg", "_gt", "-mask", "-label", "-labels")


@dataclass
class Sample:
    """One training image with its target.

    Attributes:
        name: short name (the file stem; ``stem[z=3]`` for a section of a stack).
        image: ``(C, *S)`` float32, normalised.
        target: class map ``(*S)`` uint8 and, for instance targets, the instance map ``(*S)`` int32.
        image_path, mask_path: where it came from (``mask_path`` is the masks folder for DSB).
        weight: ``(*S)`` float32 pixel weights (the paper's eq. 2 map), filled in by training.
        distance: ``(*S)`` float32 target of the distance output (touching objects with ``target.distance``):
            each object pixel's distance to its object's border over the object's largest, 0..1
            (:func:`biounet.data.targets.distance_target`), filled in by training; ``None`` without one.
    """

    name: str
    image: np.ndarray
    target: Target
    image_path: Path
    mask_path: Path | None = None
    weight: np.ndarray | None = None
    distance: np.ndarray | None = None

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[1:])


@dataclass
class TrainingData:
    """Samples read with one convention.

    Attributes:
        samples: in natural name order.
        in_channels: channels of every ``sample.image``.
        channel_axis: where channels are in the files (``"first"``, ``"last"`` or ``None``: single channel).
        channels: indices of the file channels used (``None``: all of them).
        notes: what was found (mask conventions, channels), one line each, for the log.
    """

    samples: list[Sample]
    in_channels: int
    channel_axis: str | None
    channels: list[int] | None
    notes: list[str] = field(default_factory=list)


@dataclass
class RawSample:
    """An image before channel harmonisation: ``(C, *S)`` as in the file, plus where the channels were."""

    name: str
    image: np.ndarray
    channel_axis: str | None
    target: Target
    image_path: Path
    mask_path: Path | None


# --------------------------------------------------------------------------------------------- pairing


def list_images(folder: str | os.PathLike, what: str = "image") -> list[Path]:
    """Image files in ``folder`` (not recursive), naturally sorted; DataError if none or no folder."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: no such {what} folder")
    files = sorted((p for p in root.iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"{root}: no {what} files in this folder (expected .png, .tif, .tiff, .npy or .zarr)")
    return files


def _mask_stem(path: Path) -> str | None:
    return strip_ending(file_stem(path), MASK_ENDINGS, ignore_case=True)


def pair_files(images_dir: str | os.PathLike, masks_dir: str | os.PathLike) -> list[tuple[str, Path, Path]]:
    """``(name, image_path, mask_path)`` for every image, paired by name (see module docstring).

    Raises DataError for an empty or missing folder, an image without a mask or a mask without an image.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    same_folder = images_dir.resolve() == masks_dir.resolve()
    masks = list_images(masks_dir, "mask")
    if same_folder:
        masks = [p for p in masks if _mask_stem(p) is not None]
        mask_set = set(masks)
        images = [p for p in list_images(images_dir) if p not in mask_set]
        if not masks:
            raise DataError(f"{masks_dir}: images and masks share this folder, but no file name ends in "
                            f"{', '.join(MASK_ENDINGS[:5])}")
    else:
        images = list_images(images_dir)
    image_by_stem = index_by_stem(images, file_stem)
    mask_by_stem = index_by_stem(masks, file_stem)
    for path in masks:
        stripped = _mask_stem(path)
        if stripped is not None and stripped not in mask_by_stem:
            mask_by_stem[stripped] = path
    paired = pair_by_stem(image_by_stem, mask_by_stem)
    if paired.unmatched_first:
        numbered = pair_by_number(image_by_stem, masks)
        if numbered is not None:
            log.info("paired images and masks by the number at the end of their names")
            return numbered
        image = paired.unmatched_first[0]
        stem = file_stem(image)
        raise DataError(f"{image}: no mask named {stem}.* (or {stem}_mask.*) in {masks_dir}")
    if paired.unmatched_second:
        raise DataError(f"{paired.unmatched_second[0]}: mask without an image of the same name in {images_dir}")
    return paired.pairs


# ------------------------------------------------------------------------------------------- channels


def read_mask(path: Path, spatial_dims: int) -> np.ndarray:
    """A mask as ``(*S)`` (``(Z, Y, X)`` for a stack read by a 2D model); grey saved as colour PNG -> channel 0."""
    mask = read_image(path)
    if image_suffix(path) in PIL_SUFFIXES and mask.ndim == 3:
        colour = mask[..., :3]
        if not np.all(colour == colour[..., :1]):
            raise DataError(f"{path}: colour mask with different R, G, B; save labels as a grayscale image")
        mask = mask[..., 0]
    if mask.ndim not in (spatial_dims, spatial_dims + 1) or (spatial_dims == 3 and mask.ndim != 3):
        raise DataError(f"{path}: mask of shape {mask.shape} is not a {spatial_dims}D label image")
    return mask


def channels_first(image: np.ndarray, spatial_shape: tuple[int, ...], path: Path) -> tuple[np.ndarray, str | None]:
    """``(C, *S)`` view of ``image`` whose spatial shape must be ``spatial_shape``; also the channel axis found."""
    if image.shape == spatial_shape:
        return image[np.newaxis], None
    if image.ndim == len(spatial_shape) + 1:
        if image.shape[:-1] == spatial_shape:
            return np.moveaxis(image, -1, 0), "last"
        if image.shape[1:] == spatial_shape:
            return image, "first"
    raise DataError(
        f"{path}: image of shape {image.shape} does not match its mask of shape {spatial_shape} "
        "(expected the same size, with at most one extra channel axis first or last)"
    )


def _drop_constant_alpha(image: np.ndarray, path: Path) -> np.ndarray:
    if image_suffix(path) in PIL_SUFFIXES and image.shape[0] in (2, 4):
        alpha = image[-1]
        if alpha.min() == alpha.max():
            return image[:-1]
    return image


def _equal_channels(image: np.ndarray) -> bool:
    return image.shape[0] == 1 or bool(np.all(image == image[:1]))


def harmonise_channels(raws: list[RawSample], normalization: NormalizationConfig) -> TrainingData:
    """Give every image the same channels (see module docstring), normalise, and build :class:`TrainingData`."""
    images = [_drop_constant_alpha(raw.image, raw.image_path) for raw in raws]
    grey = all(_equal_channels(image) for image in images)
    axes = {raw.channel_axis for raw in raws}
    notes = []
    if grey:
        images = [image[:1] for image in images]
        multi = sorted(axes - {None})
        channel_axis = multi[0] if len(multi) == 1 else None
        channels = [0] if channel_axis else None
        if channel_axis:
            notes.append(f"images have equal channels ({channel_axis} axis): using channel 0 as grayscale")
    else:
        count = images[0].shape[0]
        for raw, image in zip(raws, images):
            if image.shape[0] != count or raw.channel_axis != raws[0].channel_axis:
                raise DataError(
                    f"{raw.image_path}: {image.shape[0]} channel(s) ({raw.channel_axis or 'no'} channel axis), "
                    f"but {raws[0].image_path.name} has {count} ({raws[0].channel_axis or 'no'} channel axis)"
                )
        channel_axis = raws[0].channel_axis
        kept = images[0].shape[0]
        channels = list(range(kept)) if kept != raws[0].image.shape[0] else None
        notes.append(f"images have {count} channels ({channel_axis} axis)")
    samples = []
    for raw, image in zip(raws, images):
        normalised = normalize(image, normalization)
        samples.append(Sample(raw.name, normalised, raw.target, raw.image_path, raw.mask_path))
    return TrainingData(samples, int(samples[0].image.shape[0]), channel_axis, channels, notes)


# --------------------------------------------------------------------------------------------- readers


def read_image_file(path: Path) -> np.ndarray:
    image = read_image(path)
    if image.dtype.kind not in "uif" and image.dtype != bool:
        raise ImageReadError(f"{path}: unsupported pixel type {image.dtype}")
    return image


def _split_sections(raw: RawSample) -> list[RawSample]:
    """A stack ``(C, Z, Y, X)`` with its target, as Z 2D images (for a 2D model)."""
    target = raw.target
    out = []
    for z in range(raw.image.shape[1]):
        section = Target(
            classes=target.classes[z],
            instances=None if target.instances is None else target.instances[z],
            convention=target.convention,
        )
        out.append(RawSample(f"{raw.name}[z={z}]", raw.image[:, z], raw.channel_axis, section, raw.image_path,
                        raw.mask_path))
    return out


def read_folder_pairs(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    target: TargetConfig,
    *,
    normalization: NormalizationConfig | None = None,
    spatial_dims: int = 2,
    names: Sequence[str] | None = None,
    nan_policy: str = "refuse",
) -> TrainingData:
    """Read every image/mask pair of two folders (``names``: only these stems) into :class:`TrainingData`.

    Images with NaN/infinite pixels are refused or filled as ``nan_policy`` says (:mod:`biounet.data.finite`).
    """
    pairs = pair_files(images_dir, masks_dir)
    if names is not None:
        pairs = select_names(pairs, names, Path(images_dir))
    raws: list[RawSample] = []
    for name, image_path, mask_path in pairs:
        mask = read_mask(mask_path, spatial_dims)
        image, axis = channels_first(read_image_file(image_path), mask.shape, image_path)
        image = checked_image(image, str(image_path), nan_policy)
        raw = RawSample(name, image, axis, build_target(mask, target, str(mask_path)), image_path, mask_path)
        raws.extend(_split_sections(raw) if mask.ndim == spatial_dims + 1 else [raw])
    data = harmonise_channels(raws, normalization or NormalizationConfig())
    data.notes.insert(0, f"read {len(pairs)} image/mask pairs from {images_dir} and {masks_dir}"
                         + (f" ({len(raws)} sections)" if len(raws) != len(pairs) else ""))
    data.notes.insert(1, "masks: " + _conventions(raws))
    return data


def select_names(entries: list[tuple], names: Sequence[str], where: Path) -> list[tuple]:
    wanted = list(names)
    by_name = {entry[0]: entry for entry in entries}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise DataError(f"{where}: no image named {missing[0]!r} (names are file names without suffix)")
    return [by_name[n] for n in wanted]


def _conventions(raws: list[RawSample]) -> str:
    counts = Counter(raw.target.convention for raw in raws)
    return "; ".join(f"{convention} ({count} file{'s' if count > 1 else ''})" for convention, count in counts.items())
