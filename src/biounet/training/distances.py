"""The distance targets of the training images (touching objects with ``data.target.distance``).

Each training image's target for the distance output is computed once, when the run is built, from its
instance map (:func:`biounet.data.targets.distance_target`: each object pixel's distance to the nearest pixel
outside its object over the object's largest, 1 at the centre, 0 on the background) and kept on the sample
(``sample.distance``); the tile sampler cuts it like the weight map. Distances are measured in the data's
spacing in in-plane pixels, as the weight map's (:func:`biounet.training.weights.weight_sampling`), so the
centre of an object of a ``(50, 4.6, 4.6)`` stack is its physical centre and not the middle section's.

Unlike the weight maps they are not kept on disk (``RUN_DIR/cache``): one map costs less than one distance
transform of the whole image, because each object's transform runs on its bounding box alone (a small
fraction of the weight map's cost; docs/recipes.md, "Distance output").
"""

from __future__ import annotations

import numpy as np

from biounet.data.readers import Sample
from biounet.data.targets import distance_target
from biounet.errors import DataError
from biounet.training.config import TrainConfig
from biounet.training.weights import weight_sampling


def compute_distance_map(sample: Sample, config: TrainConfig) -> np.ndarray:
    """``(*S)`` float32 distance target of ``sample``'s instance map, in the spacing of :func:`weight_sampling`."""
    if sample.target.instances is None:
        where = sample.mask_path or sample.image_path
        raise DataError(f"{where}: no instance map to compute the distance target from")
    return distance_target(sample.target.instances, weight_sampling(sample, config))


def attach_distance_maps(samples: list[Sample], config: TrainConfig) -> None:
    """Set ``sample.distance`` of every sample without one (:func:`compute_distance_map`)."""
    for sample in samples:
        if sample.distance is None:
            sample.distance = compute_distance_map(sample, config)


__all__ = ["attach_distance_maps", "compute_distance_map"]
