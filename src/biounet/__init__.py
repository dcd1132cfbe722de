"""biounet: the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015) for biomedical image segmentation.

The public API, imported lazily so that ``import biounet`` and ``biounet --help`` stay fast:

- :class:`UNet`, :class:`UNetConfig`: the paper's network in 2D and 3D (valid or same padding).
- :func:`save_model`, :func:`load_model`: safetensors weights with a JSON config, never pickle.
- :func:`predict`: overlap-tile inference on images of any size.
- :mod:`biounet.metrics`: Rand error, variation of information, warping error, object matching.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "UNet": "biounet.model.unet",
    "UNetConfig": "biounet.model.config",
    "save_model": "biounet.io.checkpoint",
    "load_model": "biounet.io.checkpoint",
    "predict": "biounet.inference.predictor",
    "metrics": "biounet.metrics",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if name == "metrics" else getattr(module, name)
    raise AttributeError(f"module 'biounet' has no attribute {name!r}")
