"""Training-time augmentation: elastic deformation (the paper's), rotations, flips, zoom and intensity changes.

3D stacks can also get serial-section changes (per-section elastic jitter, missing, slipped and shifted
sections; :mod:`biounet.augmentation.sections`), off by default.

- :class:`AugmentationConfig`: what to randomise (defaults follow the paper).
- :class:`Augmenter`: cuts one augmented tile (image, label, weight or other float maps) with a single coordinate
  mapping.
- :func:`elastic_deform`: the paper's elastic deformation of a whole array.
- :func:`mirrored_crop`, :func:`mirror_index`: crops that mirror outside the image (``np.pad(mode="reflect")``).
"""

from __future__ import annotations

from biounet.augmentation.augmenter import Augmenter, elastic_deform, plane_coordinates, rotation_matrix
from biounet.augmentation.config import AugmentationConfig
from biounet.augmentation.geometry import (
    elastic_displacement,
    interpolate_planes,
    mirror_index,
    mirrored_crop,
    take_mirrored,
)
from biounet.augmentation.intensity import augment_intensity

__all__ = [
    "AugmentationConfig",
    "Augmenter",
    "augment_intensity",
    "elastic_deform",
    "elastic_displacement",
    "interpolate_planes",
    "mirror_index",
    "mirrored_crop",
    "plane_coordinates",
    "rotation_matrix",
    "take_mirrored",
]
