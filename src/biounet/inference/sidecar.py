"""The JSON sidecar written beside every prediction file: which model, settings, image and timings made it.

``OUTPUT.json`` (e.g. ``cell_probabilities.tif.json``) records the model (path and SHA-256 of its
safetensors file, configuration), the settings (tile and batch size, TTA, precision, device, threads,
normalisation), the input (path, shape) and the timings, and the biounet version, so that any result
can be traced and reproduced.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from biounet.io.atomic import write_json_atomic
from biounet.io.hashing import sha256_file


def sidecar_path(output: str | os.PathLike) -> Path:
    """``OUTPUT.json`` beside ``output``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def build_sidecar(
    *,
    output_kind: str,
    output_path: Path,
    model_path: Path | None,
    model_config: dict[str, Any],
    settings: dict[str, Any],
    image: dict[str, Any],
    timings: dict[str, Any],
    target: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sidecar's content as a JSON-ready dict (``target``: what the classes mean, from the pipeline)."""
    from biounet import __version__

    return {
        "biounet_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "output": {"kind": output_kind, "file": output_path.name},
        "model": {
            "path": str(model_path) if model_path is not None else None,
            "sha256": sha256_file(model_path, cached=True) if model_path is not None else None,
            "config": model_config,
            "target": target or {},
        },
        "image": image,
        "settings": settings,
        "timings": timings,
    }


def write_sidecar(output_path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` atomically to ``OUTPUT.json``; returns its path."""
    return write_json_atomic(sidecar_path(output_path), content)
