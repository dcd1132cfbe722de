"""bioimage.io model packages as biounet models, so ``biounet predict`` runs them through its tiler.

A package is a ``.zip`` (or a folder, or its ``rdf.yaml`` / ``*.bioimageio.yaml``) described by the
bioimage.io spec; :mod:`biounet.io.checkpoint` (``load_bundle``) hands every package path to this module:

- a package biounet made (:mod:`biounet.export.bioimageio`) carries biounet's own ``model.safetensors``
  (weights + typed pipeline) as an attachment: :func:`biounet_model_file` extracts it and it loads as any
  biounet model, so the prediction is biounet's own (same network, normalisation, instance settings);
- any other package runs through :class:`PackagedNetwork`: its ONNX weights (onnxruntime; loading runs no
  code from the file) or else its TorchScript weights (``torch.jit.load``, which runs the file's code:
  only for a package the user passed explicitly), with the sizes, halo, pre- and post-processing of
  its description (see :func:`load_foreign`).

Never loaded: ``pytorch_state_dict`` weights (a pickle; ``torch.load(weights_only=True)`` would be the
safe loader, but biounet has no need for it) and Keras/TensorFlow weights.  The description is read with
``bioimageio.spec`` (``pip install "biounet[bioimageio]"``), without I/O checks, so nothing is fetched.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biounet.data.normalization import NormalizationConfig
from biounet.errors import ModelFileError
from biounet.model.config import UNetConfig
from biounet.pipeline import Pipeline, TargetDescription

DESCRIPTION_NAMES = ("rdf.yaml", "bioimageio.yaml")
BIOUNET_ATTACHMENT = "model.safetensors"
#: Context per side (pixels) a tiler keeps around a foreign model's tiles when its description gives no halo.
DEFAULT_HALO = 32


def is_package(path: str | os.PathLike) -> bool:
    """True for a bioimage.io package: a zip holding a description, a folder with one, or the description file."""
    p = Path(path)
    if p.is_dir():
        return any((p / name).is_file() for name in DESCRIPTION_NAMES)
    if p.name in DESCRIPTION_NAMES or p.name.endswith(".bioimageio.yaml"):
        return p.is_file()
    if p.suffix.lower() == ".zip" and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as archive:
            return any(_is_description(n) for n in archive.namelist())
    return False


def _is_description(name: str) -> bool:
    return "/" not in name and (name in DESCRIPTION_NAMES or name.endswith(".bioimageio.yaml"))


@contextlib.contextmanager
def biounet_model_file(path: str | os.PathLike) -> Iterator[Path | None]:
    """The package's attached biounet ``model.safetensors`` (extracted to a temporary folder), or ``None``."""
    descr = read_description(path)
    names = [Path(str(getattr(a.source, "path", a.source))).name for a in getattr(descr, "attachments", [])]
    if BIOUNET_ATTACHMENT not in names:
        yield None
        return
    with _local_files(path, [BIOUNET_ATTACHMENT]) as files:
        yield files[0]


def read_description(path: str | os.PathLike) -> Any:
    """The package's model description as ``bioimageio.spec`` 0.5 (older formats converted), checked offline."""
    try:
        from bioimageio.spec import InvalidDescr, load_model_description
    except ImportError as error:
        raise ModelFileError(f'{path}: bioimage.io packages need pip install "biounet[bioimageio]"') from error
    source = Path(path)
    if source.is_dir():
        source = next(source / n for n in DESCRIPTION_NAMES if (source / n).is_file())
    try:
        descr = load_model_description(source, perform_io_checks=False, format_version="latest")
    except Exception as error:  # the spec raises many kinds for a bad package  # noqa: BLE001
        raise ModelFileError(f"{path}: not a valid bioimage.io model package ({_first_line(error)})") from error
    if isinstance(descr, InvalidDescr) or not hasattr(descr, "weights"):
        raise ModelFileError(f"{path}: not a valid bioimage.io model package ({_summary_error(descr)})")
    return descr


def load_foreign(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[PackagedNetwork, Pipeline]:
    """A package not made by biounet as a network for biounet's tiler, with the pipeline its description implies.

    One input and one output tensor with batch/channel/space axes; input sizes ``min + n * step`` (or
    fixed, then tiles of exactly that size are made by padding); the output the input's size plus an
    offset.  The first statistics step of the preprocessing (``scale_range``, ``zero_mean_unit_variance``)
    becomes the pipeline's per-image normalisation (biounet computes it once per image, as deepImageJ
    does, not per tile); pointwise steps after it run inside :class:`PackagedNetwork`.  A one-channel
    output is a foreground probability: the model becomes a two-class background/foreground model whose
    foreground instances ``--output instances`` separates.
    """
    descr = read_description(path)
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        raise ModelFileError(f"{path}: biounet runs packages with one input and one output tensor "
                             f"(this one has {len(descr.inputs)} and {len(descr.outputs)})")
    inp, out = descr.inputs[0], descr.outputs[0]
    spatial = _spatial_axes(path, inp)
    rules = _size_rules(path, inp, spatial)
    offsets, halos = _output_geometry(path, out, inp, spatial)
    normalization, pointwise = _preprocessing(path, inp)
    activation = _activation(out)
    runner, weights = _runner(path, descr, device)
    in_channels = _channel_count(inp)
    out_channels = _channel_count(out)
    classes = 2 if out_channels == 1 else out_channels
    config = proxy_config(len(spatial), in_channels, classes, [r[1] for r in rules], halos)
    network = PackagedNetwork(runner, config, [a.id for a in inp.axes], [a.id for a in out.axes], spatial,
                              rules, offsets, pointwise, activation)
    names = _class_names(out, classes)
    target = TargetDescription(kind="instances", style="touching", class_names=names, interior_class=1,
                               foreground_classes=[1]) if classes == 2 else TargetDescription(class_names=names)
    network.weights_format = weights
    return network, Pipeline(normalization=normalization, target=target)


def proxy_config(
    d: int, in_channels: int, classes: int, steps: Sequence[int], halos: Sequence[int]
) -> UNetConfig:
    """A :class:`UNetConfig` whose size rules make biounet's tiler fit a foreign network.

    Same padding (the network wrapper pads each tile to a size the package takes and crops back),
    one pooling level with the package's ``step`` as factor (tiles stay on its grid), and a first
    kernel ``k`` such that :func:`biounet.model.sizes.halo` (``2 (k - 1)``) is at least the package's halo
    ``h`` rounded up to the step, so the tiler's margin (a multiple of the step) covers ``h``.  The channel
    count only feeds the tiler's memory estimate.
    """
    kernels = tuple(2 * math.ceil(math.ceil(max(h, 1) / s) * s / 4) + 1 for h, s in zip(halos, steps))
    return UNetConfig(
        spatial_dims=d, in_channels=in_channels, num_classes=classes, depth=1, base_channels=64, padding="same",
        dropout=0.0, pool_factors=(tuple(int(s) for s in steps),), kernel_sizes=(kernels, (1,) * d),
    )


class PackagedNetwork(nn.Module):
    """A foreign package's network as biounet's tiler calls a UNet: ``(B, C, *S)`` -> logits ``(B, K, *S)``.

    Each tile is padded (mirrored) to the nearest size the package takes (and by the output's negative
    offset, if the network crops), the package's pointwise preprocessing applied, its axes reordered,
    the weights run, and the output cropped back to the tile, turned into logits: probabilities ``p``
    become ``log p`` (softmax restores them); one channel becomes the two classes ``(1 - p, p)``.
    """

    def __init__(self, runner: Any, config: UNetConfig, in_axes: list, out_axes: list, spatial: list[str],
                 rules: list[tuple[int, int]], offsets: list[int], pointwise: list, activation: str) -> None:
        super().__init__()
        self.runner, self.config = runner, config
        self.in_axes, self.out_axes = [str(a) for a in in_axes], [str(a) for a in out_axes]
        self.spatial, self.rules, self.offsets = spatial, rules, offsets
        self.pointwise, self.activation = pointwise, activation
        self.weights_format = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(int(n) for n in x.shape[2:])
        pads = []
        for n, (low, step), offset in zip(shape, self.rules, self.offsets):
            need = n - min(offset, 0)
            size = low if need <= low else low + math.ceil((need - low) / step) * step
            pads.append(size - n)
        torch_pads = [p for total in reversed(pads) for p in (total // 2, total - total // 2)]
        mode = "reflect" if all(p // 2 + p % 2 < n for p, n in zip(pads, shape)) else "replicate"
        padded = nn.functional.pad(x.float(), torch_pads, mode=mode) if any(pads) else x.float()
        for op in self.pointwise:
            padded = op(padded)
        y = self.runner(self._to_package(padded))
        y = self._from_package(y)
        index = [slice(None), slice(None)]
        for axis, (n, pad) in enumerate(zip(shape, pads)):
            start = pad // 2 + (int(y.shape[2 + axis]) - (n + pad)) // 2
            index.append(slice(start, start + n))
        return self._logits(y[tuple(index)])

    def _to_package(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *S)`` in the package's axis order (a missing batch or channel axis dropped)."""
        ours = ["batch", "channel", *self.spatial]
        order = [ours.index(a) for a in self.in_axes]
        dropped = [i for i, a in enumerate(ours) if a not in self.in_axes]
        for i in reversed(dropped):
            x = x.select(i, 0) if x.shape[i] == 1 else _refuse_axis(ours[i])
            order = [o - (o > i) for o in order]
        return x.permute(order).contiguous()

    def _from_package(self, y: torch.Tensor) -> torch.Tensor:
        axes = list(self.out_axes)
        for name in ("batch", "channel"):
            if name not in axes:
                y, axes = y.unsqueeze(0), [name, *axes]
        return y.permute([axes.index(a) for a in ["batch", "channel", *self.spatial]])

    def _logits(self, y: torch.Tensor) -> torch.Tensor:
        if self.activation == "sigmoid":
            y = torch.sigmoid(y)
        elif self.activation == "softmax":
            return y
        if self.activation in ("sigmoid", "probabilities"):
            p = y.clamp(1e-7, 1 - 1e-7)
            return torch.cat([torch.log1p(-p), torch.log(p)], dim=1) if y.shape[1] == 1 else torch.log(p)
        return torch.cat([torch.zeros_like(y), y], dim=1) if y.shape[1] == 1 else y


def _refuse_axis(name: str) -> torch.Tensor:
    raise ModelFileError(f"the package's network has no {name} axis and takes one image of one channel at a time")


class OnnxRunner:
    """Runs ONNX weights with onnxruntime on torch tensors (CPU; loading an ONNX file executes no code)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        (y,) = self.session.run(None, {self.name: x.detach().float().cpu().numpy()})[:1]
        return torch.from_numpy(np.asarray(y, dtype=np.float32)).to(x.device)


def _runner(path: str | os.PathLike, descr: Any, device: str | torch.device) -> tuple[Any, str]:
    weights = descr.weights
    if weights.onnx is not None and _has_onnxruntime():
        with _local_files(path, [_source_name(weights.onnx.source)]) as files:
            return OnnxRunner(files[0]), "onnx"
    if weights.torchscript is not None:
        with _local_files(path, [_source_name(weights.torchscript.source)]) as files:
            module = torch.jit.load(str(files[0]), map_location=device).eval()
        return module, "torchscript"
    raise ModelFileError(f"{path}: biounet runs ONNX or TorchScript weights; this package has none "
                         "(pytorch_state_dict weights are pickles, which biounet does not load)")


def _has_onnxruntime() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _local_files(path: str | os.PathLike, names: list[str]) -> Iterator[list[Path]]:
    """The package files ``names`` as local paths (extracted from a zip into a temporary folder)."""
    p = Path(path)
    if not p.suffix.lower() == ".zip":
        root = p if p.is_dir() else p.parent
        yield [root / n for n in names]
        return
    with tempfile.TemporaryDirectory(prefix="biounet-package-") as tmp, zipfile.ZipFile(p) as archive:
        found = []
        for name in names:
            if name not in archive.namelist():
                raise ModelFileError(f"{p}: the package lists {name} but does not contain it")
            found.append(Path(archive.extract(name, tmp)))
        yield found


def _source_name(source: Any) -> str:
    return str(getattr(source, "path", None) or source).split("/")[-1]


def _spatial_axes(path: Any, tensor: Any) -> list[str]:
    spatial = [str(a.id) for a in tensor.axes if a.type == "space"]
    other = [str(a.id) for a in tensor.axes if a.type not in ("space", "batch", "channel")]
    if other or len(spatial) not in (2, 3):
        raise ModelFileError(f"{path}: biounet runs 2D or 3D image models (batch, channel, space axes); "
                             f"input axes are {[str(a.id) for a in tensor.axes]}")
    return spatial


def _size_rules(path: Any, tensor: Any, spatial: list[str]) -> list[tuple[int, int]]:
    """``(min, step)`` per spatial axis; a fixed size ``s`` is ``(s, huge)``: tiles are padded to exactly ``s``."""
    rules = []
    for axis in (a for a in tensor.axes if str(a.id) in spatial):
        size = axis.size
        if isinstance(size, int):
            rules.append((size, size))
        elif hasattr(size, "step"):
            rules.append((int(size.min), int(size.step)))
        else:
            raise ModelFileError(f"{path}: input axis {axis.id} has a size biounet cannot tile ({size})")
    return rules


def _output_geometry(path: Any, out: Any, inp: Any, spatial: list[str]) -> tuple[list[int], list[int]]:
    offsets, halos = [], []
    by_id = {str(a.id): a for a in out.axes}
    for name in spatial:
        axis = by_id.get(name)
        size = getattr(axis, "size", None)
        if axis is None or not hasattr(size, "offset") or str(size.tensor_id) != str(inp.id):
            raise ModelFileError(f"{path}: output axis {name} must have the input's size (a size reference)")
        offsets.append(int(size.offset))
        halos.append(int(getattr(axis, "halo", 0) or 0) or DEFAULT_HALO)
    return offsets, halos


def _channel_count(tensor: Any) -> int:
    for axis in tensor.axes:
        if axis.type == "channel":
            return len(axis.channel_names)
    return 1


def _class_names(out: Any, classes: int) -> list[str]:
    for axis in out.axes:
        if axis.type == "channel" and len(axis.channel_names) == classes:
            return [str(n) for n in axis.channel_names]
    return ["background", "foreground"] if classes == 2 else [f"class{i}" for i in range(classes)]


def _activation(out: Any) -> str:
    """How to read the output: ``"sigmoid"``/``"softmax"`` (its post-processing), ``"probabilities"``, ``"logits"``."""
    for op in out.postprocessing:
        if op.id in ("sigmoid", "softmax"):
            return op.id
    data = out.data if not isinstance(out.data, (list, tuple)) else out.data[0]
    value_range = tuple(getattr(data, "range", (None, None)) or (None, None))
    return "probabilities" if value_range == (0.0, 1.0) or value_range == (0, 1) else "logits"


def _preprocessing(path: Any, tensor: Any) -> tuple[NormalizationConfig, list]:
    normalization, pointwise = NormalizationConfig(method="none"), []
    for op in tensor.preprocessing:
        kwargs = getattr(op, "kwargs", None)
        per_channel = "channel" not in [str(a) for a in (getattr(kwargs, "axes", None) or ["channel"])]
        if op.id in ("ensure_dtype",):
            continue
        if op.id in ("scale_range", "zero_mean_unit_variance") and normalization.method == "none" and not pointwise:
            if op.id == "scale_range":
                normalization = NormalizationConfig("percentile", float(kwargs.min_percentile),
                                                    float(kwargs.max_percentile), per_channel)
            else:
                normalization = NormalizationConfig("zscore", per_channel=per_channel)
        elif op.id in ("clip", "scale_linear", "fixed_zero_mean_unit_variance"):
            pointwise.append(_pointwise(op.id, kwargs))
        else:
            raise ModelFileError(f"{path}: preprocessing {op.id!r} at this place is not supported by biounet")
    return normalization, pointwise


def _pointwise(name: str, kwargs: Any) -> Any:
    """A pointwise preprocessing step on ``(B, C, *S)`` tiles (per-channel values along the channel axis)."""
    def values(value: Any) -> torch.Tensor:
        return torch.as_tensor(np.atleast_1d(np.asarray(value, dtype=np.float32)))

    if name == "clip":
        low = -math.inf if kwargs.min is None else float(kwargs.min)
        high = math.inf if kwargs.max is None else float(kwargs.max)
        return lambda x: x.clamp(low, high)
    if name == "scale_linear":
        gain, offset = values(kwargs.gain), values(kwargs.offset)
        return lambda x: x * _fit(gain, x) + _fit(offset, x)
    mean, std, eps = values(kwargs.mean), values(kwargs.std), float(getattr(kwargs, "eps", 1e-6))
    return lambda x: (x - _fit(mean, x)) / (_fit(std, x) + eps)


def _fit(value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return value.reshape(1, -1, *([1] * (x.dim() - 2))).to(x.device)


def _first_line(error: BaseException) -> str:
    """The error's message on one line (the spec lists one problem a line)."""
    lines = [line.strip().lstrip("- ") for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return f"{lines[0]} {'; '.join(lines[1:])}".strip()[:300]


def _summary_error(descr: Any) -> str:
    summary = getattr(descr, "validation_summary", None)
    for detail in getattr(summary, "details", []) or []:
        for error in getattr(detail, "errors", []) or []:
            return f"{'.'.join(str(x) for x in error.loc)}: {error.msg}"[:300]
    return "invalid description"


__all__ = ["PackagedNetwork", "biounet_model_file", "is_package", "load_foreign", "proxy_config", "read_description"]
