"""Models on disk: safetensors weights with the configuration as JSON, never pickle.

A saved model is two files written atomically::

    model.safetensors   weights + metadata {"format": "biounet.unet", "config": ..., "pipeline": ...}
    model.json          a readable copy of that metadata, for people and other tools

``pipeline`` is what inference needs besides the network (:class:`biounet.pipeline.Pipeline`:
normalisation, what the classes mean, the post-processing validation chose, the tile size).  Loading
reads only the safetensors header and tensors, so it never executes code from the file, and it refuses
pickle files (``torch.save``) and safetensors files that are not biounet models.

The ``.safetensors`` file is the model; ``model.json`` is never read for loading.  It is a copy rather
than a second source of truth, because two sources can disagree and a model must not change meaning
when a text file beside it is edited; the loader therefore compares the two and logs a one-line warning
when ``model.json`` was edited (the edit has no effect).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biounet.errors import ModelFileError
from biounet.io import bioimageio as packages
from biounet.io.atomic import atomic_path, write_json_atomic
from biounet.model.config import UNetConfig
from biounet.model.unet import UNet
from biounet.pipeline import Pipeline

FORMAT = "biounet.unet"
FORMAT_VERSION = 1
MODEL_FILE_NAMES = ("model.safetensors", "best.safetensors", "checkpoints/best.safetensors")

log = logging.getLogger("biounet.io")


@dataclass
class ModelBundle:
    """A loaded model with what inference needs to use it (``pipeline``) and where it came from."""

    model: UNet
    pipeline: Pipeline = field(default_factory=Pipeline)
    path: Path | None = None

    @property
    def config(self) -> UNetConfig:
        return self.model.config


def save_model(
    model: UNet, path: str | os.PathLike, *, pipeline: Pipeline | Mapping[str, Any] | None = None
) -> Path:
    """Save ``model`` as safetensors + JSON; return the ``.safetensors`` path.

    ``path`` is either a ``*.safetensors`` file (the JSON goes beside it with the same stem) or a
    directory (``model.safetensors`` and ``model.json`` inside it).  ``pipeline`` is a
    :class:`~biounet.pipeline.Pipeline` or its dict form (``None``: a bare network).  Both files are
    written atomically; a crash leaves the previous files intact.
    """
    from biounet import __version__

    target = Path(path)
    if target.suffix != ".safetensors":
        target = target / "model.safetensors"
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    description = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "biounet_version": __version__,
        "config": model.config.to_dict(),
        "pipeline": _as_pipeline(pipeline).to_dict(),
    }
    metadata = {key: json.dumps(value) for key, value in description.items()}
    with atomic_path(target) as tmp:
        save_safetensors(state, tmp, metadata, name=target)
    write_json_atomic(target.with_suffix(".json"), description)
    return target


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: Mapping[str, str] | None = None,
    *, name: str | os.PathLike | None = None,
) -> None:
    """``safetensors.torch.save_file``, with a write failure as an ``OSError`` naming ``name`` (default ``path``).

    safetensors reports a full disk as its own ``SafetensorError``; every biounet writer of tensors goes
    through here so that it becomes the one-line error the command line prints for operating-system errors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata is not None else None)
    except SafetensorError as error:
        code = errno.ENOSPC if "No space left" in str(error) else errno.EIO
        raise OSError(code, os.strerror(code), str(name or path)) from error


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The ``.safetensors`` file for ``path``: the file itself, or a model inside a directory (a run dir)."""
    p = Path(path)
    if p.is_dir():
        for name in MODEL_FILE_NAMES:
            if (p / name).is_file():
                return p / name
        raise ModelFileError(f"{p}: no biounet model in this directory (looked for {', '.join(MODEL_FILE_NAMES)})")
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file")
    return p


def load_bundle(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> ModelBundle:
    """Load a model saved by :func:`save_model` (a file or a directory holding one), with its pipeline.

    The configuration is checked against the tensors the file declares before any weights are allocated,
    so a damaged or edited configuration (a huge depth or channel count) is refused, not built.
    A bioimage.io package (``.zip``, its folder or ``rdf.yaml``) loads through :mod:`biounet.io.bioimageio`.
    """
    if packages.is_package(path):
        return _load_package(Path(path), device)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = resolve_model_path(path)
    tensors, metadata = _read_header(p)
    config = _checked_config(p, metadata, tensors)
    try:  # before the weights are read: a bad description needs no tensors to be refused
        pipeline = Pipeline.from_dict(metadata.get("pipeline"))
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as error:
        raise ModelFileError(f"{p}: invalid pipeline description ({_first_line(error)})") from error
    try:
        state = load_file(str(p), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(f"{p}: corrupt or truncated safetensors file ({_first_line(error)})") from error
    model = UNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError) as error:
        raise ModelFileError(f"{p}: weights do not match the configuration ({_first_line(error)})") from error
    model.to(device).eval()
    _warn_if_copy_edited(p, metadata)
    return ModelBundle(model=model, pipeline=pipeline, path=p)


def _load_package(path: Path, device: str | torch.device) -> ModelBundle:
    """A package biounet made loads its attached biounet model; any other runs its ONNX/TorchScript weights."""
    with packages.biounet_model_file(path) as inner:
        if inner is not None:
            bundle = load_bundle(inner, device=device)
            bundle.path = path
            return bundle
    network, pipeline = packages.load_foreign(path, device)
    return ModelBundle(network, pipeline, path)  # type: ignore[arg-type]  # a UNet's interface, not its class


def _checked_config(p: Path, metadata: Mapping[str, Any], tensors: Mapping[str, Any]) -> UNetConfig:
    """The model's configuration, refused unless the network it builds has exactly the file's tensor shapes.

    The network is first built on the ``meta`` device (shapes, no memory); a depth beyond the number of
    tensors is refused before even that, since every level has its own convolutions.
    """
    raw = metadata.get("config")
    if not isinstance(raw, dict):
        raise ModelFileError(f"{p}: invalid model configuration (no 'config' object in the metadata)")
    depth = raw.get("depth", 0)
    if isinstance(depth, int) and depth > len(tensors):
        raise ModelFileError(f"{p}: invalid model configuration (depth {depth} for {len(tensors)} tensors)")
    try:
        config = UNetConfig.from_dict(raw)
        with torch.device("meta"):
            expected = {name: list(t.shape) for name, t in UNet(config).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, OverflowError, IndexError, KeyError) as error:
        raise ModelFileError(f"{p}: invalid model configuration ({_first_line(error)})") from error
    found = {name: list(entry["shape"]) for name, entry in tensors.items()}
    if expected != found:
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        differ = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
        what = (
            f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected
            else f"{differ[0]} has shape {found[differ[0]]}, the configuration needs {expected[differ[0]]}"
        )
        raise ModelFileError(f"{p}: weights do not match the configuration ({what})")
    return config


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def _as_pipeline(pipeline: Pipeline | Mapping[str, Any] | None) -> Pipeline:
    if isinstance(pipeline, Pipeline):
        return pipeline
    return Pipeline.from_dict(pipeline)


def _warn_if_copy_edited(model_path: Path, metadata: Mapping[str, Any]) -> None:
    """Log one line when the readable copy ``model.json`` no longer matches the model's own metadata."""
    copy = model_path.with_suffix(".json")
    try:
        text = copy.read_text(encoding="utf-8")
    except OSError:
        return  # no copy (or unreadable): nothing to compare
    try:
        edited = {k: v for k, v in json.loads(text).items() if k in metadata} != dict(metadata)
    except (ValueError, AttributeError, RecursionError):
        edited = True
    if edited:
        log.warning(
            f"{copy}: differs from the description inside {model_path.name}; model.json is a readable copy "
            "and edits to it have no effect (the .safetensors file is the model)"
        )


def load_model(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> UNet:
    """Load a :class:`UNet` saved by :func:`save_model`, in eval mode.

    Refuses pickle files, truncated files and safetensors files that are not biounet models with a
    :class:`~biounet.errors.ModelFileError` naming the file.
    """
    return load_bundle(path, device=device).model


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the metadata of a biounet ``.safetensors`` file without loading the weights."""
    return _read_header(Path(path))[1]


def _read_header(p: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The tensor entries (name -> dtype, shape, data_offsets) and the decoded biounet metadata of ``p``.

    Every failure, whatever the damage (truncation, flipped bits, edited fields), is a one-line
    :class:`ModelFileError` naming the file; sizes are checked against the file before anything is read.
    """
    try:
        with open(p, "rb") as handle:
            # A safetensors file starts with the little-endian length of its JSON header, then "{"; the
            # length's first byte may be 0x80, like a pickle's, so the "{" decides.
            head = handle.read(9)
            if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
                raise ModelFileError(
                    f"{p}: this is a pickle / torch.save file; biounet loads only safetensors models, "
                    "because unpickling can execute code"
                )
            if len(head) < 9:
                raise ModelFileError(f"{p}: not a safetensors file (only {len(head)} bytes)")
            (header_length,) = struct.unpack("<Q", head[:8])
            size = p.stat().st_size
            if header_length > min(size - 8, 100 * 1024 * 1024):
                raise ModelFileError(f"{p}: not a safetensors file, or truncated (header length {header_length})")
            handle.seek(8)
            header = json.loads(handle.read(header_length))
    except ModelFileError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise ModelFileError(f"{p}: not a readable safetensors file ({_first_line(error)})") from error
    if not isinstance(header, dict):
        raise ModelFileError(f"{p}: not a safetensors file (the header is not a JSON object)")
    raw = header.pop("__metadata__", None) or {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ModelFileError(f"{p}: corrupt safetensors metadata (not an object of strings)")
    if not _is_biounet_format(raw.get("format")):
        raise ModelFileError(f"{p}: a safetensors file, but not a biounet model (no '{FORMAT}' metadata)")
    try:
        metadata = {key: json.loads(value) for key, value in raw.items()}
    except (ValueError, RecursionError) as error:
        raise ModelFileError(f"{p}: corrupt biounet metadata ({_first_line(error)})") from error
    data_end = max((_tensor_end(p, name, entry) for name, entry in header.items()), default=0)
    if 8 + header_length + data_end > size:
        raise ModelFileError(f"{p}: truncated model file ({size} bytes, expected {8 + header_length + data_end})")
    return header, metadata


def _is_biounet_format(value: str | None) -> bool:
    try:
        return value is not None and json.loads(value) == FORMAT
    except (ValueError, RecursionError):  # other tools store plain strings ("pt"), not JSON
        return False


def _tensor_end(p: Path, name: str, entry: Any) -> int:
    """Where tensor ``name``'s data end, after checking that its header entry is well formed."""
    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    ok = isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
    shape, offsets = (entry.get("shape"), entry.get("data_offsets")) if ok else (None, None)
    ok = ok and isinstance(shape, list) and all(count(n) for n in shape) and isinstance(offsets, list)
    if not (ok and len(offsets) == 2 and all(count(n) for n in offsets) and offsets[0] <= offsets[1]):
        raise ModelFileError(f"{p}: corrupt safetensors header (the entry of tensor {name[:80]!r})")
    return offsets[1]
