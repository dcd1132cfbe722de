"""Export a trained U-Net for use outside biounet: TorchScript and ONNX.

Both exports take a fixed input tile shape; the tiling around them (mirroring, tile grid,
normalisation) is described by the ``pipeline`` saved next to the model and written next to the export
as JSON, so another runtime can reproduce biounet's overlap-tile inference.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from biounet.io.atomic import atomic_path, write_json_atomic
from biounet.model import sizes
from biounet.model.unet import UNet


class SizeGeneralForward(torch.nn.Module):
    """``UNet`` without its input check and same-mode padding, so that one trace runs at every valid size.

    ``UNet.forward`` checks the input with Python ints and pads a same-padded input to the pooling grid, which
    a trace would freeze to the traced tile; the network itself (:meth:`UNet.forward_unpadded`, whose skip
    crops keep the traced sizes) does not, so the TorchScript and ONNX graphs of a bioimage.io package take
    every size ``min + n * step``.  Inputs must be sizes the network takes without padding: for a same-padded
    network a multiple of the total pooling factor (the package declares exactly those).  It owns no weights.
    ``(B, C, *S)`` -> logits ``(B, K, *S_out)``.
    """

    def __init__(self, net: UNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_unpadded(x)


def trace_size_general(model: UNet, example: torch.Tensor) -> torch.jit.ScriptModule:
    """A TorchScript trace of ``model`` (eval mode) that takes every valid size (see :class:`SizeGeneralForward`)."""
    wrapper = SizeGeneralForward(model).eval()
    with torch.inference_mode(), _tracing_quietly():
        return torch.jit.trace(wrapper, example)


def export_onnx_size_general(model: UNet, path: str | os.PathLike, example: torch.Tensor, opset: int = 17) -> Path:
    """ONNX (input ``image``, output ``logits``) with batch and spatial axes dynamic, atomically."""
    wrapper = SizeGeneralForward(model).eval()
    spatial = {a: f"s{a}" for a in range(2, example.dim())}
    axes = {"image": {0: "batch", **spatial}, "logits": {0: "batch", **spatial}}
    with atomic_path(path) as tmp, torch.inference_mode(), _tracing_quietly():
        torch.onnx.export(
            wrapper, (example,), str(tmp), input_names=["image"], output_names=["logits"],
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )
    return Path(path)


def _example_input(model: UNet, input_shape: tuple[int, ...] | None) -> torch.Tensor:
    shape = tuple(input_shape) if input_shape else sizes.valid_input_shape(model.config, (256,) * model.spatial_dims)
    sizes.check_input_shape(model.config, shape)
    return torch.zeros(1, model.config.in_channels, *shape)


def export_onnx(
    model: UNet,
    path: str | os.PathLike,
    *,
    input_shape: tuple[int, ...] | None = None,
    dynamic_batch: bool = True,
    opset: int = 17,
) -> Path:
    """Write ``model`` as ONNX (input ``image`` ``(B, C, *input_shape)``, output ``logits``), atomically."""
    model = model.eval()
    example = _example_input(model, input_shape)
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with atomic_path(path) as tmp, torch.inference_mode(), _tracing_quietly():
        torch.onnx.export(
            model, (example,), str(tmp), input_names=["image"], output_names=["logits"],
            dynamic_axes=axes, opset_version=opset, dynamo=False,
        )
    return Path(path)


def export_torchscript(model: UNet, path: str | os.PathLike, *, input_shape: tuple[int, ...] | None = None) -> Path:
    """Write ``model`` as a traced TorchScript module for a fixed tile shape, atomically."""
    model = model.eval()
    example = _example_input(model, input_shape)
    with torch.inference_mode(), _tracing_quietly():
        traced = torch.jit.trace(model, example)
    with atomic_path(path) as tmp:
        traced.save(str(tmp))
    return Path(path)


@contextlib.contextmanager
def _tracing_quietly() -> Iterator[None]:
    """Silence the tracer's warnings that sizes become constants: an export is for one tile shape on purpose
    (the JSON beside it says which), so they are expected and would only bury the command's own messages."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        yield


def write_export_description(
    path: str | os.PathLike, model: UNet, pipeline: dict[str, Any], input_shape: tuple[int, ...]
) -> Path:
    """JSON beside an export: tile input/output shapes, halo, pooling stride, and the pipeline."""
    description = {
        "config": model.config.to_dict(),
        "input_shape": list(input_shape),
        "output_shape": list(sizes.output_shape(model.config, input_shape)),
        "halo": list(sizes.halo(model.config)),
        "tile_stride_multiple": list(sizes.total_pool_factor(model.config)),
        "border": "mirror (reflect) the image by the halo before tiling, as in the paper",
        "pipeline": pipeline,
    }
    return write_json_atomic(path, description)
