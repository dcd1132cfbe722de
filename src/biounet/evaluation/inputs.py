"""Reading prediction and ground-truth files into the arrays the metrics take.

Shapes: 2D ``(Y, X)`` or 3D ``(Z, Y, X)``; a class-probability output of ``biounet predict`` is
``(K, *S)`` and becomes one ``(*S)`` map (:func:`class_probabilities_to_map`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from biounet.errors import DataError
from biounet.evaluation.tasks import is_binary

if TYPE_CHECKING:
    from biounet.pipeline import TargetDescription


def read_plane_image(path: Path) -> np.ndarray:
    """Read an image; an RGB(A) PNG with equal channels becomes its first channel."""
    from biounet.io.images import PIL_SUFFIXES, image_suffix, read_image

    array = read_image(path)
    if image_suffix(path) in PIL_SUFFIXES and array.ndim == 3:
        if array.shape[-1] == 4:
            array = array[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise DataError(f"{path}: colour image; labels and probabilities must be single-channel")
        array = array[..., 0]
    return array


def sidecar_target(path: Path) -> TargetDescription | None:
    """The target of the model that wrote ``path``, from its sidecar ``PATH.json``; None if there is none.

    ``biounet predict`` writes the sidecar's ``model.target`` from :class:`~biounet.pipeline.TargetDescription`,
    so it is read back with :meth:`~biounet.pipeline.TargetDescription.from_dict`; a target that does not
    parse (another tool's sidecar, an older layout) is ignored, like a missing or empty one.
    """
    from biounet.pipeline import TargetDescription

    sidecar = Path(str(path) + ".json")
    if not sidecar.is_file():
        return None
    target = json.loads(sidecar.read_text()).get("model", {}).get("target") or {}
    if not target:
        return None
    try:
        return TargetDescription.from_dict(target)
    except (TypeError, ValueError):
        return None


def sidecar_spacing(path: Path) -> list[float] | None:
    """The spacing ``biounet predict`` used for ``path`` (its sidecar's ``settings.spacing``), else None.

    A sidecar without one, or with something that is not a list of 2 or 3 numbers, gives None.
    """
    sidecar = Path(str(path) + ".json")
    if not sidecar.is_file():
        return None
    try:
        spacing = json.loads(sidecar.read_text()).get("settings", {}).get("spacing")
    except (ValueError, AttributeError):
        return None
    if not isinstance(spacing, list) or len(spacing) not in (2, 3):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spacing):
        return None
    return [float(v) for v in spacing]


def class_probabilities_to_map(pred: np.ndarray, gt: np.ndarray, task: str, path: Path) -> np.ndarray:
    """A ``(K, *S)`` class-probability output of ``biounet predict`` as the map the task scores.

    isbi: the probability of the interior class (from the sidecar, else class 1 of 2); semantic: the
    arg-max classes.  Instances need ``biounet predict --output instances``.  Other arrays are returned as
    they are.
    """
    if pred.ndim != gt.ndim + 1 or pred.shape[1:] != gt.shape or pred.dtype.kind != "f":
        return pred
    if task == "semantic":
        return np.argmax(pred, axis=0).astype(np.int32)
    if task == "instances":
        raise DataError(f"{path}: class probabilities, not instances; predict with --output instances")
    target = sidecar_target(path)
    if target is not None and target.kind == "semantic" and target.interior_class is None and task == "isbi":
        raise DataError(f"{path}: the class probabilities of a semantic model ({pred.shape[0]} classes); "
                        "score them with --task semantic (Dice and IoU per class)")
    # A sidecar's target decides, even when it names no interior (a semantic model); without one, the
    # interior is class 1 of a two-class output (membrane / interior, the ISBI convention).
    interior = target.interior_class if target is not None else (1 if pred.shape[0] == 2 else None)
    if interior is None:
        raise DataError(f"{path}: {pred.shape[0]} class probabilities and no sidecar saying which is the interior")
    return np.asarray(pred[interior], dtype=np.float32)


def as_probability(array: np.ndarray, path: Path) -> np.ndarray:
    """Float32 probability in [0, 1]: floats as they are, integers scaled by their type's maximum."""
    if array.dtype.kind == "f":
        prob = array.astype(np.float32, copy=False)
        if not np.isfinite(prob).all():
            raise DataError(f"{path}: probability map contains NaN or infinite values")
        low, high = float(prob.min()), float(prob.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{path}: float values {low:g}..{high:g} lie outside [0, 1]: not a probability map, and "
                "float labels cannot be instance ids (save label maps as an integer type)"
            )
        return prob
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype.kind == "i" and array.min() < 0:
        raise DataError(f"{path}: negative values in an integer probability map")
    return (array.astype(np.float32) / float(np.iinfo(array.dtype).max)).astype(np.float32)


def ground_truth_labels(array: np.ndarray, task: str, path: Path) -> np.ndarray:
    """Integer ground truth: cells (isbi), instances, or classes (semantic); binary masks labelled."""
    from biounet.metrics import label_components

    if array.dtype.kind == "f":
        if not is_binary(array):
            needed = {"isbi": "cell ids or a 0/255 label", "instances": "instance ids", "semantic": "class ids"}[task]
            raise DataError(f"{path}: float ground truth where integer {needed} are needed")
        array = array != 0
    if array.dtype.kind not in "uib":
        raise DataError(f"{path}: unsupported pixel type {array.dtype}")
    check_no_negative_labels(array, path, "ground truth")
    if is_binary(array):
        mask = array != 0
        return mask.astype(np.int32) if task == "semantic" else label_components(mask)
    return array


def semantic_truth(array: np.ndarray, path: Path, values: list[int] | None, num_classes: int | None) -> np.ndarray:
    """Ground-truth classes ``0..K-1`` of a multi-class target ``(*S)``, as the model read its masks.

    ``values`` are the mask values of the classes in class order (a model's ``classes``, e.g. ``[0, 128,
    255]``): each is replaced by its class index, and any other value is an error naming the file.  Without
    them the mask values are the classes, checked to lie below ``num_classes`` when that is known.  A binary
    mask is *not* turned into classes 0/1 here: with more than two declared classes, ``{0, 2}`` means classes
    0 and 2.
    """
    if array.dtype.kind not in "uib":
        raise DataError(f"{path}: ground truth of type {array.dtype} where integer class ids are needed")
    check_no_negative_labels(array, path, "ground truth")
    if values:
        declared = np.asarray(values, dtype=np.int64)
        order = np.argsort(declared)
        position = np.clip(np.searchsorted(declared[order], array), 0, len(declared) - 1)
        found = declared[order][position] == array
        if not found.all():
            unexpected = sorted(np.unique(array[~found]).tolist())[:5]
            raise DataError(f"{path}: mask values {unexpected} are none of the model's classes {values}")
        return order[position].astype(np.int32)
    if num_classes is not None and array.size and int(array.max()) >= num_classes:
        raise DataError(
            f"{path}: class {int(array.max())} in the ground truth, but the model has {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
    return array.astype(np.int32)


def check_no_negative_labels(array: np.ndarray, path: Path, what: str) -> None:
    """Refuse label maps with negative values: ids and classes are >= 0 (0 = background).

    A negative region would otherwise be scored as one more object (or a class "-5"), silently.
    """
    if array.dtype.kind == "i" and array.size and array.min() < 0:
        count = int(np.count_nonzero(array < 0))
        raise DataError(
            f"{path}: {count} pixel{'s' if count != 1 else ''} of this {what} have negative values "
            f"(lowest {int(array.min())}); labels must be 0 (background) or positive ids"
        )


__all__ = [
    "as_probability",
    "check_no_negative_labels",
    "class_probabilities_to_map",
    "ground_truth_labels",
    "read_plane_image",
    "semantic_truth",
    "sidecar_spacing",
    "sidecar_target",
]
