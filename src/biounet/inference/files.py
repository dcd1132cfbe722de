"""Prediction of files: which inputs, which output files, and every input checked before any is predicted.

``biounet predict`` takes files, folders and glob patterns; :func:`collect_inputs` turns them into
image files, :func:`plan_outputs` opens each once (so every bad file is found before an hour of work
on the good ones, and all of them are named in one message) and names its outputs ``NAME_KIND.FORMAT``,
refusing two inputs that would write the same file, and :func:`open_input` opens an input as the model
expects it.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biounet.data.finite import can_hold_non_finite, non_finite_count, refusal
from biounet.errors import BiounetError, DataError, ImageReadError
from biounet.inference.sources import ChannelFirstView, open_for_model
from biounet.io.atomic import check_output_path
from biounet.io.checkpoint import ModelBundle
from biounet.io.images import is_image_file


@dataclass(frozen=True)
class PlannedInput:
    """One input file and the output file of each requested kind."""

    path: Path
    targets: dict[str, Path]


def collect_inputs(patterns: Sequence[str]) -> list[Path]:
    """Image files from files, folders (their images, sorted) and glob patterns, without duplicates."""
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            images = sorted(p for p in path.iterdir() if is_image_file(p))
            if not images:
                raise ImageReadError(f"{path}: no image files in this folder (PNG, TIFF, .npy, .zarr)")
            found += images
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            images = sorted(Path(p) for p in glob.glob(pattern) if is_image_file(p))
            if not images:
                raise ImageReadError(f"{pattern}: no image files match this pattern")
            found += images
        else:
            raise ImageReadError(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def open_input(path: Path, bundle: ModelBundle, channel_axis: str | None = None) -> tuple[ChannelFirstView, Any]:
    """``path`` as a source for ``bundle``'s model, with its image info.

    ``channel_axis`` ``None`` takes the training data's channel axis as a hint and falls back to
    ``"auto"`` when the file does not fit it.
    """
    hint = bundle.pipeline.channel_axis if channel_axis is None else None
    channels, z = bundle.pipeline.channels, bundle.pipeline.z_context
    try:
        return open_for_model(
            path, bundle.config, channel_axis=channel_axis or hint or "auto", allow_stack=True, channels=channels,
            z_context=z,
        )
    except DataError:
        if not hint:
            raise
        return open_for_model(path, bundle.config, channel_axis="auto", allow_stack=True, channels=channels,
                              z_context=z)


def output_stem(path: Path) -> str:
    """The input's name without its last suffix (``a.ome.tif`` -> ``a.ome``; ``run.zarr`` -> ``run``)."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


#: At most this many bad inputs are named in one error message (the count says how many there were).
MAX_LISTED = 10


@dataclass
class Plan:
    """What a prediction of files will do: the good inputs with their outputs, and the bad inputs with why."""

    inputs: list[PlannedInput]
    bad: list[tuple[Path, str]]

    def bad_summary(self, limit: int = MAX_LISTED) -> str:
        """One line: ``N bad inputs: a.png: why; b.tif: why; ...`` (at most ``limit`` named)."""
        shown = "; ".join(problem for _, problem in self.bad[:limit])
        more = f"; and {len(self.bad) - limit} more" if len(self.bad) > limit else ""
        return f"{len(self.bad)} bad input{'s' if len(self.bad) != 1 else ''}: {shown}{more}"


class BadInputsError(DataError):
    """Some inputs cannot be predicted; nothing was predicted (the message lists them)."""


def plan_outputs(
    inputs: Sequence[Path],
    bundle: ModelBundle,
    out_dir: Path,
    kinds: Sequence[str],
    file_format: str,
    channel_axis: str | None = None,
    *,
    skip_bad: bool = False,
    nan_policy: str = "refuse",
) -> Plan:
    """Open every input once and name its outputs, before anything is predicted.

    Every bad input is found, not only the first; float inputs up to :data:`SCAN_LIMIT` values are also
    scanned for NaN/inf when ``nan_policy`` refuses them (larger ones are checked tile by tile later).
    Unless ``skip_bad``, :class:`BadInputsError` lists the bad inputs (up to :data:`MAX_LISTED`); with
    ``skip_bad`` they are returned in :attr:`Plan.bad` and the good ones are planned.  Two inputs that
    would write the same output are an error either way.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: --out must be a folder, this is a file")
    if file_format == "png" and "logits" in kinds:
        raise DataError("logits are floating point and cannot be PNG; use --format tif, npy or zarr")
    plan = Plan([], [])
    claimed: dict[Path, Path] = {}
    for path in inputs:
        try:
            _check_input(path, bundle, file_format, channel_axis, nan_policy)
        except (BiounetError, OSError) as error:
            plan.bad.append((path, _problem(path, error)))
            continue
        targets = {kind: out_dir / f"{output_stem(path)}_{kind}.{file_format}" for kind in kinds}
        for target in targets.values():
            if target in claimed:
                raise DataError(f"{path} and {claimed[target]} would both write {target}; use separate --out folders")
            claimed[target] = path
            check_output_path(target)
        plan.inputs.append(PlannedInput(path, targets))
    if plan.bad and not skip_bad:
        raise BadInputsError(f"{plan.bad_summary()}; nothing was predicted (--skip-bad predicts the others)")
    return plan


#: Float inputs up to this many values are scanned for NaN/inf while planning; larger ones tile by tile.
SCAN_LIMIT = 64 * 1024 * 1024


def _check_input(
    path: Path, bundle: ModelBundle, file_format: str, channel_axis: str | None, nan_policy: str
) -> None:
    source, _ = open_input(path, bundle, channel_axis)
    if file_format == "png" and source.ndim != 3:
        raise DataError(f"{path}: PNG holds 2D images; this input gives shape {source.shape[1:]}: use --format tif")
    size = math.prod(source.shape)
    if nan_policy == "refuse" and can_hold_non_finite(source.dtype) and size <= SCAN_LIMIT:
        count = non_finite_count(source)
        if count:
            raise refusal(str(path), count, size)


def _problem(path: Path, error: BaseException) -> str:
    """``error`` as ``PATH: what`` (biounet's messages already start with the path)."""
    if isinstance(error, OSError) and not isinstance(error, BiounetError):
        return f"{error.filename or path}: {error.strerror or error}"
    text = str(error)
    return text if text.startswith(str(path)) else f"{path}: {text}"
