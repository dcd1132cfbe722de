"""Inference: overlap-tile prediction of images of any size, test-time augmentation, instance separation.

- :func:`predict` (also ``biounet.predict``): probabilities, labels, logits or instances of one image,
  in memory or written progressively to ``.zarr`` / ``.tif`` / ``.npy``.
- :func:`instances_from_probabilities`: touching cells separated by a seeded watershed.

Names are imported lazily, so that light modules of this package (:mod:`biounet.inference.outputs`)
can be used by ``biounet --help`` without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "OUTPUT_KINDS": "biounet.inference.outputs",
    "PredictOptions": "biounet.inference.predictor",
    "PredictionResult": "biounet.inference.predictor",
    "instances_from_probabilities": "biounet.inference.instances",
    "predict": "biounet.inference.predictor",
    "predict_to": "biounet.inference.predictor",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'biounet.inference' has no attribute {name!r}")
