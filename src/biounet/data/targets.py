"""What the network learns: turning mask files into class targets (and instance maps for the weight map).

Three kinds of target, chosen by :class:`TargetConfig`:

* ``kind="semantic"``: every mask value is a class. Binary masks may be ``0/255`` or ``0/1`` (both
  become classes background / foreground and the convention found is reported); any other value set
  must be declared with ``classes`` (e.g. ``[0, 128, 255]``: value of class 0, 1, 2).
* ``kind="instances", style="touching"`` (the paper's cell-tracking setup, DSB nuclei): the mask holds
  instance ids (0 = background; or a binary mask whose connected components are the objects). The
  target has 3 classes: background, cell interior and boundary, where the boundary is every pixel of
  a cell within ``boundary_width`` pixels of the background or of another cell, so two touching cells
  are always separated by a boundary line.
* ``kind="instances", style="membrane"`` (ISBI 2012 EM): the mask marks membranes (``membrane_value``,
  0 in ISBI) and cell interiors (every other value); 2 classes membrane / interior, and the cells are
  the connected components of the interior (used for the weight map and for validation).

Touching objects may also learn a *distance* output (``distance=True``): one more output channel after the
classes that regresses each object pixel's distance to the nearest pixel outside its object, divided by the
object's largest such distance (:func:`distance_target`: 1 at the object's centre, falling to its border, 0 on
the background; StarDist's object probability).  Instances then take their seeds and watershed landscape from
it (:mod:`biounet.inference.instances`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage as ndi

from biounet.errors import DataError

TargetKind = Literal["semantic", "instances"]
InstanceStyle = Literal["touching", "membrane"]

#: The two binary mask conventions accepted without declaring classes.
BINARY_CONVENTIONS: dict[str, tuple[int, int]] = {"0/1": (0, 1), "0/255": (0, 255)}


@dataclass
class TargetConfig:
    """How mask files become training targets.

    Attributes:
        kind: ``"semantic"`` (mask values are classes) or ``"instances"`` (objects to separate).
        style: for instances: ``"touching"`` (3 classes background / interior / boundary) or
            ``"membrane"`` (2 classes membrane / interior, cells = connected interiors; ISBI 2012).
        classes: semantic only: the mask value of each class, in class order (``None``: binary masks,
            0/255 or 0/1).
        class_names: one name per class (``None``: defaults for the kind).
        boundary_width: touching style: width of the boundary class inside each cell, in pixels.
        membrane_value: membrane style: the mask value that marks membrane (ISBI: 0 = black).
        distance: touching style: the network also regresses the normalised distance to each object's border
            (:func:`distance_target`), in one more output channel after the classes (``distance_channel``).
    """

    kind: TargetKind = "semantic"
    style: InstanceStyle = "touching"
    classes: list[int] | None = None
    class_names: list[str] | None = None
    boundary_width: int = 1
    membrane_value: int = 0
    distance: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("semantic", "instances"):
            raise ValueError(f"target kind must be 'semantic' or 'instances', not {self.kind!r}")
        if self.style not in ("touching", "membrane"):
            raise ValueError(f"instance style must be 'touching' or 'membrane', not {self.style!r}")
        if self.distance and (self.kind != "instances" or self.style != "touching"):
            raise ValueError("a distance output needs touching instances (kind 'instances', style 'touching')")
        if self.boundary_width < 1:
            raise ValueError(f"boundary_width must be >= 1 pixel, not {self.boundary_width}")
        if self.classes is not None:
            self.classes = [int(v) for v in self.classes]
            if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
                raise ValueError(f"classes must be at least 2 distinct mask values, not {self.classes}")
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names needs {self.num_classes} names, got {self.class_names}")

    @property
    def num_classes(self) -> int:
        if self.kind == "semantic":
            return len(self.classes) if self.classes else 2
        return 2 if self.style == "membrane" else 3

    @property
    def num_outputs(self) -> int:
        """Channels of the network's output: the classes, then the distance channel if there is one."""
        return self.num_classes + (1 if self.distance else 0)

    @property
    def distance_channel(self) -> int | None:
        """The output channel of the distance map (after the classes), or ``None`` without one."""
        return self.num_classes if self.distance else None

    @property
    def names(self) -> list[str]:
        """One name per output class."""
        if self.class_names:
            return list(self.class_names)
        if self.kind == "instances":
            return ["membrane", "interior"] if self.style == "membrane" else ["background", "interior", "boundary"]
        if self.classes:
            return ["background"] + [f"class {v}" for v in self.classes[1:]]
        return ["background", "foreground"]

    @property
    def interior_class(self) -> int | None:
        return 1 if self.kind == "instances" else None

    @property
    def foreground_classes(self) -> list[int]:
        """Classes that belong to objects: seeds are grown over them (membrane style: the whole image)."""
        if self.kind == "instances":
            return [0, 1] if self.style == "membrane" else [1, 2]
        return list(range(1, self.num_classes))

    @property
    def focus_classes(self) -> list[int]:
        """Classes that foreground oversampling centres tiles on (membranes, boundaries, objects)."""
        if self.kind == "instances" and self.style == "membrane":
            return [0]
        return list(range(1, self.num_classes))

    @property
    def structure_class(self) -> int:
        """The thin structure whose connectivity matters: membrane (0), boundary (2), else class 1."""
        if self.kind == "instances":
            return 0 if self.style == "membrane" else 2
        return 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Target:
    """A training target for one image.

    Attributes:
        classes: ``(*S)`` uint8 class index per pixel.
        instances: ``(*S)`` int32 object ids (0 = none) for instance targets, else ``None``.
        convention: how the mask values were read (e.g. ``"0/255"``, ``"instance ids"``), for the log.
    """

    classes: np.ndarray
    instances: np.ndarray | None = None
    convention: str = ""


def mask_values(mask: np.ndarray, name: str) -> np.ndarray:
    """The distinct values of an integer mask; float masks must hold whole numbers (else DataError)."""
    if mask.dtype.kind == "f":
        if not np.all(np.isfinite(mask)) or not np.all(mask == np.round(mask)):
            raise DataError(f"{name}: mask has non-integer values; masks must hold whole numbers (classes or ids)")
        mask = mask.astype(np.int64)
    elif mask.dtype.kind not in "iub":
        raise DataError(f"{name}: mask has unsupported data type {mask.dtype}")
    return np.unique(mask)


def binary_convention(values: np.ndarray) -> str | None:
    """``"0/1"`` or ``"0/255"`` if the values fit that binary convention (``"0"`` for an empty mask)."""
    present = {int(v) for v in values}
    if present <= {0}:
        return "0"
    for label, allowed in BINARY_CONVENTIONS.items():
        if present <= set(allowed):
            return label
    return None


def semantic_target(mask: np.ndarray, config: TargetConfig, name: str = "mask") -> Target:
    """Map mask values to class indices ``(*S)`` uint8 (see module docstring for the rules)."""
    values = mask_values(mask, name)
    if config.classes:
        unexpected = sorted(set(values.tolist()) - set(config.classes))
        if unexpected:
            raise DataError(
                f"{name}: unexpected mask values {_show(unexpected)}; the declared classes are {config.classes}"
            )
        declared = np.asarray(config.classes, dtype=np.int64)
        order = np.argsort(declared)
        position = np.searchsorted(declared[order], mask.astype(np.int64))
        return Target(classes=order[position].astype(np.uint8), convention=f"classes {config.classes}")
    convention = binary_convention(values)
    if convention is None:
        listed = ",".join(str(int(v)) for v in values[:12])
        raise DataError(
            f"{name}: unexpected mask values {_show(values.tolist())}; binary masks must be 0/255 or 0/1, "
            f"other values must be declared as classes (e.g. --classes {listed})"
        )
    return Target(classes=(mask > 0).astype(np.uint8), convention=convention)


def instance_ids(mask: np.ndarray, name: str = "mask") -> tuple[np.ndarray, str]:
    """An instance map ``(*S)`` int32 from a mask of ids, or connected components of a binary mask."""
    values = mask_values(mask, name)
    if values.min() < 0:
        raise DataError(f"{name}: negative instance ids {_show(values[values < 0].tolist())}")
    convention = binary_convention(values)
    if convention is not None:
        labels, _ = ndi.label(mask > 0)
        return labels.astype(np.int32), f"binary {convention}, objects = connected components"
    if values.max() > np.iinfo(np.int32).max:
        raise DataError(f"{name}: instance ids beyond int32 ({int(values.max())})")
    return mask.astype(np.int32), "instance ids"


def touching_target(instances: np.ndarray, boundary_width: int = 1) -> np.ndarray:
    """3-class target ``(*S)`` uint8 from an instance map: 0 background, 1 interior, 2 boundary.

    A cell pixel is boundary when a pixel within ``boundary_width`` steps (city-block / face
    connectivity, as :func:`skimage.segmentation.find_boundaries` ``mode="inner"`` for width 1) has a
    different id, whether background or another cell; so touching cells are separated by a line of
    boundary pixels (``boundary_width`` from each side). Vectorised: grey min/max filters.
    """
    footprint = ndi.iterate_structure(ndi.generate_binary_structure(instances.ndim, 1), boundary_width)
    differs = (ndi.maximum_filter(instances, footprint=footprint, mode="nearest") != instances) | (
        ndi.minimum_filter(instances, footprint=footprint, mode="nearest") != instances
    )
    target = np.zeros(instances.shape, dtype=np.uint8)
    cells = instances > 0
    target[cells] = 1
    target[cells & differs] = 2
    return target


def distance_target(instances: np.ndarray, sampling: tuple[float, ...] | None = None) -> np.ndarray:
    """The distance output's target ``(*S)`` float32 from an instance map ``(*S)`` (0 = background).

    Every object pixel gets its Euclidean distance to the nearest pixel outside its object (the background,
    another object, or beyond the image edge: a cut object's border is the edge), divided by the largest such
    distance in its object: 1 at the object's centre, ``1 / max`` on its border pixels, 0 on the background.
    Normalised per object so that small and large nuclei weigh alike and seeds are the maxima of one map.
    ``sampling``: the pixel size per axis (anisotropic data); ``None``: 1.
    """
    instances = np.asarray(instances)
    target = np.zeros(instances.shape, dtype=np.float32)
    for index, box in enumerate(ndi.find_objects(instances), start=1):
        if box is None:
            continue
        inside = np.pad(instances[box] == index, 1)  # the pad is outside: the image edge is a border
        distance = ndi.distance_transform_edt(inside, sampling=sampling)[(slice(1, -1),) * instances.ndim]
        own = inside[(slice(1, -1),) * instances.ndim]
        target[box][own] = distance[own] / distance.max()
    return target


def membrane_target(mask: np.ndarray, membrane_value: int = 0, name: str = "mask") -> Target:
    """ISBI-style target: class 0 membrane (``mask == membrane_value``), 1 interior.

    ``mask`` is either binary (0/255 or 0/1, as ISBI 2012's labels; cells = connected interiors) or a
    cell label map with ``membrane_value`` = 0 between the cells (each cell keeps its own id, so cells
    that touch through a gap in the drawn membrane stay apart for the weight map).
    """
    values = mask_values(mask, name)
    convention = binary_convention(values)
    membrane = mask == membrane_value
    classes = (~membrane).astype(np.uint8)
    if convention is not None:
        cells, _ = ndi.label(~membrane)
        return Target(classes=classes, instances=cells.astype(np.int32), convention=f"membrane {convention}")
    if membrane_value != 0 or values.min() < 0:
        raise DataError(
            f"{name}: unexpected mask values {_show(values.tolist())}; membrane masks must be 0/255 or 0/1 "
            f"(membrane = {membrane_value}), or cell ids with 0 = membrane"
        )
    if np.issubdtype(mask.dtype, np.floating) and not np.all(np.mod(values, 1) == 0):
        raise DataError(f"{name}: cell label maps must hold integer ids, found fractional values")
    return Target(classes=classes, instances=np.where(membrane, 0, mask).astype(np.int32),
                  convention="membrane: cell ids, 0 = membrane")


def build_target(mask: np.ndarray, config: TargetConfig, name: str = "mask") -> Target:
    """The training target of one mask ``(*S)`` as :class:`TargetConfig` says."""
    if config.kind == "semantic":
        return semantic_target(mask, config, name)
    if config.style == "membrane":
        return membrane_target(mask, config.membrane_value, name)
    instances, convention = instance_ids(mask, name)
    return Target(classes=touching_target(instances, config.boundary_width), instances=instances,
                  convention=convention)


def _show(values: list[Any], limit: int = 10) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    more = f", ... ({len(values)} values)" if len(values) > limit else ""
    return "{" + shown + more + "}"
