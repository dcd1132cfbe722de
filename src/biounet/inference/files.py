"""Prediction of files: which inputs, which output files, and every input checked before any is predicted.

``biounet predict`` takes files, folders and glob patterns; :func:`collect_inputs` turns them into
image files, :func:`plan_outputs` opens each once (so a bad file is found before an hour of work
on the good ones) and names its outputs ``NAME_KIND.FORMAT``, refusing two inputs that would write
the same file, and :func:`open_input` opens an input as the model expects it.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biounet.errors import DataError, ImageReadError
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
    channels = bundle.pipeline.channels
    try:
        return open_for_model(
            path, bundle.config, channel_axis=channel_axis or hint or "auto", allow_stack=True, channels=channels
        )
    except DataError:
        if not hint:
            raise
        return open_for_model(path, bundle.config, channel_axis="auto", allow_stack=True, channels=channels)


def output_stem(path: Path) -> str:
    """The input's name without its last suffix (``a.ome.tif`` -> ``a.ome``; ``run.zarr`` -> ``run``)."""
    return path.name[: -len(path.suffix)] if path.suffix else path.name


def plan_outputs(
    inputs: Sequence[Path],
    bundle: ModelBundle,
    out_dir: Path,
    kinds: Sequence[str],
    file_format: str,
    channel_axis: str | None = None,
) -> list[PlannedInput]:
    """Open every input once and name its outputs; raise on the first bad input or clashing output."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: --out must be a folder, this is a file")
    if file_format == "png" and "logits" in kinds:
        raise DataError("logits are floating point and cannot be PNG; use --format tif, npy or zarr")
    plans = []
    claimed: dict[Path, Path] = {}
    for path in inputs:
        source, _ = open_input(path, bundle, channel_axis)
        if file_format == "png" and source.ndim != 3:
            raise DataError(f"{path}: PNG holds 2D images; this input gives shape {source.shape[1:]}: use --format tif")
        del source
        targets = {kind: out_dir / f"{output_stem(path)}_{kind}.{file_format}" for kind in kinds}
        for target in targets.values():
            if target in claimed:
                raise DataError(f"{path} and {claimed[target]} would both write {target}; use separate --out folders")
            claimed[target] = path
            check_output_path(target)
        plans.append(PlannedInput(path, targets))
    return plans
