"""The eq.-2 weight maps of the training images: computed once per image, kept in memory and on disk.

The maps come from :class:`biounet.losses.WeightMapCache` (class term + border term, keyed here by a hash
of the image's targets and the loss settings, so identical targets share one map). Computing them takes
seconds per large image, so ``RUN_DIR/cache/weights-<hash>.npy`` keeps them across runs and resumes.

Without the class-frequency term (``loss.class_balance = False``, the default recipe) ``w = 1 + border term``.

With ``data.spacing`` the distances ``d1``, ``d2`` are measured in the data's spacing normalised so the
in-plane pixel is 1 (:func:`biounet.model.anisotropy.relative_spacing`): ``sigma`` stays in in-plane pixels,
and a gap across z in a ``(50, 4.6, 4.6)`` stack counts about 11 pixels per section. A 2D section of a
stack uses the in-plane part of the spacing (isotropic there: no change).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from biounet.data.readers import Sample
from biounet.io.atomic import atomic_path
from biounet.losses import WeightMapCache
from biounet.model.anisotropy import relative_spacing
from biounet.training.config import TrainConfig


def weight_instances(sample: Sample, config: TrainConfig) -> np.ndarray:
    """The cells whose gaps the eq.-2 border term weights: interiors (touching), cells (membrane), components."""
    from scipy import ndimage as ndi

    target = config.data.target
    if target.kind == "instances" and target.style == "touching":
        return np.where(sample.target.classes == 1, sample.target.instances, 0)
    if sample.target.instances is not None:
        return sample.target.instances
    labels, _ = ndi.label(sample.target.classes > 0)
    return labels


def weight_sampling(sample: Sample, config: TrainConfig) -> tuple[float, ...] | None:
    """The spacing the sample's distances are measured in: ``data.spacing`` in in-plane pixels, per spatial axis
    of the sample (``None``: isotropic)."""
    return relative_spacing(config.data.spacing, sample.target.classes.ndim)


def weight_cache(config: TrainConfig, sampling: tuple[float, ...] | None = None) -> WeightMapCache:
    """The in-memory cache for ``config.loss``, the target's classes and ``sampling`` (:func:`weight_sampling`)."""
    loss = config.loss
    return WeightMapCache(config.data.target.num_classes, loss.w0, loss.sigma, sampling=sampling,
                          class_balance=loss.class_balance)


def compute_weight_map(sample: Sample, config: TrainConfig, cache: WeightMapCache | None = None) -> np.ndarray:
    """``(*S)`` float32 eq.-2 weights: class balance (or 1) plus ``w0 exp(-(d1 + d2)^2 / 2 sigma^2)``.

    ``cache`` must have the sample's :func:`weight_sampling` (by default one is made for it).
    """
    cache = cache or weight_cache(config, weight_sampling(sample, config))
    return cache.get(weight_key(sample, config), sample.target.classes, weight_instances(sample, config))


def weight_key(sample: Sample, config: TrainConfig) -> str:
    """A hash of the sample's targets and the settings the map depends on, the spacing included (the cache
    file's name: a changed spacing is not served a stale map)."""
    loss = config.loss
    key = hashlib.sha1()
    for array in (sample.target.classes, sample.target.instances):
        if array is not None:
            key.update(np.ascontiguousarray(array).tobytes())
    settings = (loss.w0, loss.sigma, loss.class_balance, config.data.target.to_dict(), weight_sampling(sample, config))
    key.update(repr(settings).encode())
    return key.hexdigest()[:20]


def attach_weight_maps(samples: list[Sample], config: TrainConfig, cache_dir: Path | None) -> None:
    """Set ``sample.weight`` of every sample without one, reusing ``cache_dir/weights-*.npy`` when present."""
    caches: dict[int, WeightMapCache] = {}  # one per number of spatial axes (its sampling)
    for sample in samples:
        if sample.weight is not None:
            continue
        ndim = sample.target.classes.ndim
        cache = caches.setdefault(ndim, weight_cache(config, weight_sampling(sample, config)))
        path = cache_dir / f"weights-{weight_key(sample, config)}.npy" if cache_dir else None
        if path is not None and path.is_file():
            try:
                weight = np.load(path, allow_pickle=False)
                if weight.shape == sample.target.classes.shape:
                    sample.weight = weight
                    continue
            except (OSError, ValueError):
                pass
        sample.weight = compute_weight_map(sample, config, cache)
        if path is not None:
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, sample.weight, allow_pickle=False)


__all__ = ["attach_weight_maps", "compute_weight_map", "weight_cache", "weight_instances", "weight_key",
           "weight_sampling"]
