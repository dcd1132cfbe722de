"""Inference: overlap-tile prediction of images of any size, test-time augmentation, instance separation.

- :func:`predict` (also ``biounet.predict``): probabilities, labels, logits or instances of one image,
  in memory or written progressively to ``.zarr`` / ``.tif`` / ``.npy``.
- :func:`instances_from_probabilities`: touching cells separated by a seeded watershed.
"""

from biounet.inference.instances import instances_from_probabilities
from biounet.inference.predictor import OUTPUT_KINDS, PredictionResult, PredictOptions, predict, predict_to

__all__ = [
    "OUTPUT_KINDS",
    "PredictOptions",
    "PredictionResult",
    "instances_from_probabilities",
    "predict",
    "predict_to",
]
