"""Prediction <-> ground-truth files: two files, or the image files of two folders paired by name.

The stems are those of :func:`biounet.data.pairing.pair_by_stem` (the rule training uses for image and
mask) after dropping the suffix ``biounet predict`` adds, so ``pred/18_probabilities.tif`` pairs with
``gt/18.png``.  Unlike training, files without a partner are not an error: they are reported and skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from biounet.data.pairing import index_by_stem, pair_by_stem
from biounet.errors import DataError, ImageReadError

#: Suffixes that ``biounet predict`` adds to its output names; PRED files pair with GT without them.
PREDICT_SUFFIXES = ("_probabilities", "_instances", "_labels", "_logits")


@dataclass(frozen=True)
class Pairing:
    """``(name, pred_path, gt_path)`` pairs in natural name order, and the files without a partner."""

    pairs: list[tuple[str, Path, Path]]
    unmatched_pred: list[Path] = field(default_factory=list)
    unmatched_gt: list[Path] = field(default_factory=list)


def pair_files(pred: Path, gt: Path) -> Pairing:
    """Pair two files (named by the prediction's stem), or the image files of two folders by name stem.

    Raises:
        ImageReadError: a path does not exist.
        DataError: a folder and a file, two images of one stem in a folder, or no pair at all.
    """
    for path, role in ((pred, "PRED"), (gt, "GT")):
        if not path.exists():
            raise ImageReadError(f"{path}: no such file or directory ({role})")
    if is_folder(pred) != is_folder(gt):
        folder, single = (pred, gt) if is_folder(pred) else (gt, pred)
        raise DataError(f"{folder} is a folder but {single} is a file: give two files or two folders")
    if not is_folder(pred):
        return Pairing([(pred.stem, pred, gt)])
    pred_files, gt_files = images_by_stem(pred), images_by_stem(gt)
    paired = pair_by_stem(pred_files, gt_files)
    if not paired.pairs:
        raise DataError(
            f"no prediction in {pred} has a ground-truth file of the same name in {gt} "
            f"({len(pred_files)} vs {len(gt_files)} image files)"
        )
    return Pairing(paired.pairs, paired.unmatched_first, paired.unmatched_second)


def is_folder(path: Path) -> bool:
    """A folder of images (a ``.zarr`` folder is one image)."""
    return path.is_dir() and path.suffix.lower() != ".zarr"


def prediction_stem(path: Path) -> str:
    """The name a file pairs by: its stem without a :data:`PREDICT_SUFFIXES` ending."""
    return next((path.stem[: -len(s)] for s in PREDICT_SUFFIXES if path.stem.endswith(s)), path.stem)


def images_by_stem(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files in ``folder``, in natural order of the stems."""
    from biounet.io.images import is_image_file

    files = index_by_stem((p for p in sorted(folder.iterdir()) if is_image_file(p)), prediction_stem)
    return {stem: files[stem] for stem in sorted(files, key=natural_stem_key)}


def natural_stem_key(stem: str) -> tuple:
    """Sort key that orders ``2`` before ``10`` (case-sensitive, as ``biounet evaluate`` always sorted)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", stem))


__all__ = ["PREDICT_SUFFIXES", "Pairing", "images_by_stem", "is_folder", "pair_files", "prediction_stem"]
