"""What a trained model needs besides its weights: the pipeline description saved inside every model.

Training knows things that inference must repeat: how intensities were normalised, which file channels
were used, what each output class means (semantic classes, or instances with an interior class), the
post-processing that validation chose (the seed threshold and smallest seed of touching objects, the
interior threshold of membranes), the tile size.  :class:`Pipeline` carries them, typed, from the one
place that builds it (:func:`biounet.training.description.describe_run`) through the model file
(:mod:`biounet.io.checkpoint` writes :meth:`Pipeline.to_dict` into the safetensors metadata and reads
it back with :meth:`Pipeline.from_dict`) to everything that uses a model (predictor, CLI, demo, export,
evaluation sidecars).

The dictionary form has a ``schema_version``.  Models saved before it existed (schema 0: the same keys,
no version) load unchanged, as do those of schema 1 (no ``target.cells``, added by schema 2: the cell
settings of membrane models), schema 2 (no ``spacing`` and ``z_context``, added by schema 3: the voxel
size of the training data and the neighbouring sections of 2.5D models), schema 3 (no ``target.distance_channel``
and ``target.seed_height``, added by schema 4: the distance output of touching objects and h-maxima seeds) and
schema 4 (no ``target.foreground_threshold``, added by schema 5: the foreground threshold of touching objects that
validation chose); a newer schema than this biounet knows is refused with one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from biounet.data.normalization import NormalizationConfig

#: Version of :meth:`Pipeline.to_dict`'s layout; raise it when a field changes meaning.
SCHEMA_VERSION = 5

#: Seed threshold on ``P(interior)`` and smallest seed (pixels) when neither the caller nor the model says.
DEFAULT_SEED_THRESHOLD = 0.5
DEFAULT_MIN_SEED_SIZE = 8
#: Objects are where the foreground classes' summed probability exceeds this, when neither caller nor model says.
DEFAULT_FOREGROUND_THRESHOLD = 0.5


@dataclass(frozen=True)
class CellSettings:
    """How cells are made from a membrane model's interior probability
    (:func:`biounet.inference.cells.cells_from_membranes`).

    Attributes:
        interior_threshold: ``P(interior) > interior_threshold`` is the interior whose distance
            transform gives the seeds (probability, 0..1).
        seed_distance: seeds are the interior farther than this from the membrane, in the units of the
            ``spacing`` (pixels when no spacing is given); larger values cut cells at narrower necks,
            such as a faint membrane gap, but drop seeds of thin cells (their whole interior is then
            the seed).
        merge_threshold: neighbouring regions whose shared boundary has a mean membrane probability
            (``1 - P(interior)``) below this are merged, lowest first (probability, 0..1; 0: no merging).
        min_size: regions smaller than this many pixels (voxels) join the neighbour with the weakest
            boundary.
    """

    interior_threshold: float = 0.5
    seed_distance: float = 2.0
    merge_threshold: float = 0.3
    min_size: int = 16

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellSettings:
        return _from_mapping(cls, data, "target cells")


@dataclass
class TargetDescription:
    """What the network's output classes mean.

    Attributes:
        kind: ``"semantic"`` (one class per pixel) or ``"instances"`` (objects, separated by post-processing).
        style: for instances: ``"touching"`` (background / interior / boundary) or ``"membrane"``
            (membrane / interior); ``None`` for semantic targets.
        class_names: one name per output class.
        interior_class: the class whose connected regions are objects (instances), else ``None``.
        foreground_classes: classes that belong to objects; instance seeds are grown over them.
        classes: the mask values that were read as classes 0..K-1 (semantic), ``None`` if implicit.
        threshold: the interior threshold validation chose (seeds of touching objects, cells of membranes).
        min_size: the smallest seed in pixels validation chose (touching objects).
        cells: how cells are made from the interior (membrane models; chosen by validation), else ``None``.
        distance_channel: the output channel (after the classes) that regresses each object pixel's normalised
            distance to the object's border (a sigmoid, 0..1; :func:`biounet.data.targets.distance_target`),
            else ``None``: the network's other channels are softmax class logits.
        seed_height: touching objects: ``0`` (or ``None``): seeds are the components of ``P(interior) >
            threshold`` (the paper's); ``h > 0``: each such component is split at the h-maxima of height ``h``
            of the distance map (the distance output, else the interior's distance transform normalised per
            component, both 0..1); chosen by validation.
        foreground_threshold: touching objects: seeds grow over the pixels whose foreground classes' summed
            probability exceeds this (chosen by validation; ``None``: 0.5). Above 0.5 the objects shrink towards
            the confident core, below 0.5 they grow: it places the outlines, which the DSB mean AP's IoU
            thresholds up to 0.95 score.
    """

    kind: str = "semantic"
    style: str | None = None
    class_names: list[str] = field(default_factory=list)
    interior_class: int | None = None
    foreground_classes: list[int] = field(default_factory=list)
    classes: list[int] | None = None
    threshold: float | None = None
    min_size: int | None = None
    cells: CellSettings | None = None
    distance_channel: int | None = None
    seed_height: float | None = None
    foreground_threshold: float | None = None

    def seed_settings(self, threshold: float | None = None, min_size: int | None = None) -> tuple[float, int]:
        """The seed threshold and smallest seed (pixels): the arguments if given, else the model's, else 0.5 / 8."""
        if threshold is None:
            threshold = self.threshold if self.threshold is not None else DEFAULT_SEED_THRESHOLD
        if min_size is None:
            min_size = self.min_size if self.min_size is not None else DEFAULT_MIN_SEED_SIZE
        return float(threshold), int(min_size)

    def cell_settings(self, threshold: float | None = None) -> CellSettings:
        """The model's cell settings (else the defaults at its interior threshold); ``threshold`` overrides
        the interior threshold."""
        cells = self.cells
        if cells is None:
            cells = CellSettings() if self.threshold is None else CellSettings(interior_threshold=float(self.threshold))
        return cells if threshold is None else dataclasses.replace(cells, interior_threshold=float(threshold))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TargetDescription:
        fields = dict(data)
        if fields.get("cells") is not None and not isinstance(fields["cells"], CellSettings):
            if not isinstance(fields["cells"], Mapping):
                raise ValueError(f"target cells: expected a mapping, got {fields['cells']!r}")
            fields["cells"] = CellSettings.from_dict(fields["cells"])
        return _from_mapping(cls, fields, "target")


@dataclass
class TrainingRecord:
    """How the model was made (for people and reports; inference does not read it).

    Attributes:
        recipe: the recipe name (``"default"``, ``"paper"``).
        steps: optimiser steps trained.
        best_step: the step of the saved best model (``None``: no validation).
        validation: the best validation's metrics and chosen settings (metric names of
            :mod:`biounet.metrics.names`).
        precision: the training precision (``"fp32"``, ``"bf16"``, ...).
    """

    recipe: str | None = None
    steps: int = 0
    best_step: int | None = None
    validation: dict[str, float] | None = None
    precision: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecord:
        return _from_mapping(cls, data, "training")


@dataclass
class Pipeline:
    """Everything inference repeats from training (saved in the model file; see the module docstring).

    Attributes:
        normalization: intensity normalisation, applied per image.
        target: what the classes mean; ``None`` for a bare network (probabilities and labels only).
        channel_axis: where channels were in the training files (``"first"``, ``"last"``, ``None``).
        channels: indices of the file channels the model was trained on (``None``: all).
        tile_shape: the training input tile in pixels per spatial axis (a hint for tiling).
        training: how the model was made.
        spacing: the size of a pixel (voxel) of the training data per axis, ``(Y, X)`` or ``(Z, Y, X)``, in any
            one unit (e.g. nm); ``None``: isotropic. Cells are made with it (distances and boundary areas in
            these units) unless a prediction gives its own.
        z_context: a 2.5D model: the sections on each side of a section that are its extra input channels
            (``in_channels = (2 z_context + 1) x`` the file's channels, in the order of the sections
            ``z - k .. z + k``, each with all its channels; mirrored at the ends of the stack); 0 for 2D and 3D
            models.
        schema_version: the layout version of :meth:`to_dict`.
    """

    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    target: TargetDescription | None = None
    channel_axis: str | None = None
    channels: list[int] | None = None
    tile_shape: list[int] | None = None
    training: TrainingRecord | None = None
    spacing: list[float] | None = None
    z_context: int = 0
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it back)."""
        return dataclasses.asdict(self)

    @property
    def distance_channel(self) -> int | None:
        """The network's distance output channel (:attr:`TargetDescription.distance_channel`), else ``None``."""
        return self.target.distance_channel if self.target is not None else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Pipeline:
        """Read :meth:`to_dict`'s layout, or that of models saved before the schema had a version.

        Raises ``ValueError`` naming the entry for unknown entries, wrong types and newer schemas.
        """
        data = dict(data or {})
        version = data.pop("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise ValueError(f"pipeline schema_version {version!r} is newer than this biounet reads ({SCHEMA_VERSION})")
        fields = dict(data)
        try:
            fields["normalization"] = NormalizationConfig.from_dict(data.get("normalization"))
        except TypeError as error:
            raise ValueError(f"pipeline normalization: {error}") from error
        if data.get("target") is not None:
            fields["target"] = TargetDescription.from_dict(data["target"])
        if data.get("training") is not None:
            fields["training"] = TrainingRecord.from_dict(data["training"])
        return _from_mapping(cls, fields, "pipeline")

    def updated(self, overrides: Mapping[str, Any] | Pipeline | None) -> Pipeline:
        """A copy with top-level entries replaced: ``overrides`` is a Pipeline or a partial :meth:`to_dict`."""
        if overrides is None:
            return dataclasses.replace(self)
        if isinstance(overrides, Pipeline):
            return dataclasses.replace(overrides)
        return Pipeline.from_dict({**self.to_dict(), **dict(overrides)})


def _from_mapping(cls: type, data: Mapping[str, Any], what: str) -> Any:
    """``cls(**data)``, refusing unknown keys with a message that names them."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{what}: unknown entr{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}")
    return cls(**data)


__all__ = ["SCHEMA_VERSION", "CellSettings", "Pipeline", "TargetDescription", "TrainingRecord"]
