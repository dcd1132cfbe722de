"""The one place that builds a trained model's :class:`~biounet.pipeline.Pipeline`.

Everything inference must repeat from training comes from the run's configuration (normalisation,
target), the data as read (channels), the network's tile and the best validation (the post-processing
settings it chose); :func:`describe_run` puts them together, and the trainer saves the result with
every model it writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from biounet.data.readers import TrainingData
from biounet.data.targets import TargetConfig
from biounet.pipeline import CellSettings, Pipeline, TargetDescription, TrainingRecord
from biounet.training.config import TrainConfig
from biounet.training.validation import SETTING_KEYS


def describe_target(config: TargetConfig, chosen: Mapping[str, Any] | None = None) -> TargetDescription:
    """What the outputs of a network trained on ``config`` mean, with the settings validation ``chosen``.

    A network with a distance output has it after the classes (``distance_channel``). The ``cells_`` settings
    of membranes become the target's :class:`~biounet.pipeline.CellSettings` (their interior threshold, when
    validation chose none for the cells, is the threshold protocol's).
    """
    settings: dict[str, Any] = {key: value for key, value in (chosen or {}).items() if key in SETTING_KEYS}
    interior_threshold = settings.pop("cells_interior_threshold", None)
    seed_distance = settings.pop("cells_seed_distance", None)
    merge_threshold = settings.pop("cells_merge_threshold", None)
    if seed_distance is not None and merge_threshold is not None:
        if interior_threshold is None:
            interior_threshold = settings.get("threshold", CellSettings.interior_threshold)
        settings["cells"] = CellSettings(
            interior_threshold=float(interior_threshold),
            seed_distance=float(seed_distance),
            merge_threshold=float(merge_threshold),
        )
    return TargetDescription(
        kind=config.kind,
        style=config.style if config.kind == "instances" else None,
        class_names=config.names,
        interior_class=config.interior_class,
        foreground_classes=config.foreground_classes,
        classes=config.classes,
        distance_channel=config.distance_channel,
        **settings,
    )


def describe_run(
    config: TrainConfig,
    data: TrainingData,
    input_shape: Sequence[int],
    *,
    steps: int,
    precision: str,
    best: Mapping[str, Any] | None = None,
) -> Pipeline:
    """The pipeline of a model trained by ``config`` on ``data`` with tiles of ``input_shape`` pixels.

    ``best`` is the best validation so far (``{"step": int, "metrics": {...}}``) or ``None``.
    """
    metrics = dict(best["metrics"]) if best else None
    return Pipeline(
        normalization=config.data.normalization,
        target=describe_target(config.data.target, metrics),
        channel_axis=data.channel_axis,
        channels=data.channels,
        tile_shape=[int(n) for n in input_shape],
        spacing=config.data.spacing,
        z_context=config.data.z_context,
        training=TrainingRecord(
            recipe=config.recipe,
            steps=int(steps),
            best_step=best["step"] if best else None,
            validation=metrics,
            precision=precision,
        ),
    )
