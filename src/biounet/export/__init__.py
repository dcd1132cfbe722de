"""Export a trained U-Net for use outside biounet.

- :mod:`biounet.export.formats`: ONNX and TorchScript files for a fixed tile shape, with a JSON
  description of the tiling (``biounet export RUN_DIR model.onnx``).
- :mod:`biounet.export.bioimageio`: a bioimage.io model package (``biounet export RUN_DIR model.zip
  --format bioimageio``): TorchScript, ONNX and state-dict weights for any valid size, the
  normalisation as the spec's own operations, test tensors, cover, README; for Fiji (deepImageJ),
  napari, ilastik and ``bioimageio.core``.

Names are imported lazily: the package export needs ``bioimageio.spec`` (``pip install "biounet[bioimageio]"``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "export_onnx": "biounet.export.formats",
    "export_torchscript": "biounet.export.formats",
    "write_export_description": "biounet.export.formats",
    "SizeGeneralForward": "biounet.export.formats",
    "export_bioimageio": "biounet.export.bioimageio",
    "PackageInfo": "biounet.export.bioimageio",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'biounet.export' has no attribute {name!r}")
