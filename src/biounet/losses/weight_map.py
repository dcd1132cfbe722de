"""The U-Net paper's pixel-wise loss weights (eq. 2), computed with a few distance transforms per image.

``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))``

where ``w_c`` balances the class frequencies, and ``d1``/``d2`` are the distances (pixels, or physical
units with ``sampling``) from ``x`` to the border of the nearest and second-nearest cell. The border term
is applied to pixels outside the cells (the background and the thin gaps between touching cells, as in
the paper's Fig. 3d) and is zero inside cells.

Method (:func:`border_weights`): the cells are coloured so that any two cells closer than a cutoff
``D = sigma * sqrt(2 * ln(1 / tolerance))`` get different colours, and one Euclidean distance transform
is run per colour. The number of transforms is the number of colours (about the number of cells within
``D`` of one another, typically 5-15), not the number of cells. ``d1`` and ``d2`` are the two smallest
distances over the colours.

Exactness: ``d1`` is always exact. Wherever ``d1 + d2 <= D`` the two nearest cells are at most ``D`` apart
(triangle inequality), so they have different colours and ``d2`` is exact too. Elsewhere the computed
``d2`` can only be larger than the true one, and both the true and the computed border term are below
``tolerance * w0``. Hence ``|border_weights - exact| < tolerance * w0`` everywhere (1e-5 for the defaults).
Conflicting cells are found from their bounding boxes (box distance <= D), which is conservative: it may
add colours, never errors.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import ndimage as ndi

from biounet.errors import DataError


def class_balance_weights(target: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights ``(num_classes,)`` float32 that balance the class frequencies of ``target``.

    Inverse frequency, normalised so that the mean weight over the pixels of ``target`` with a valid
    class (``0 <= value < num_classes``) is 1: with ``K`` classes present, each class carries ``1/K`` of
    the total weight. Classes absent from ``target`` get 0 (no pixel carries them).
    """
    target = np.asarray(target)
    valid = (target >= 0) & (target < num_classes)
    counts = np.bincount(target[valid].astype(np.intp, copy=False), minlength=num_classes)[:num_classes]
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def border_cutoff(sigma: float, tolerance: float = 1e-6) -> float:
    """The distance ``D`` beyond which ``exp(-D**2 / (2 sigma**2)) < tolerance`` (same units as sigma)."""
    return sigma * math.sqrt(2.0 * math.log(1.0 / tolerance))


def border_weights(
    instances: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    sampling: Sequence[float] | None = None,
    *,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """The separation term of eq. 2: ``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` outside cells, 0 inside.

    Args:
        instances: ``(*S)`` integer instance map (2D or 3D): 0 = background, each cell a positive id
            (ids need not be consecutive).
        w0: weight of the separation border (paper: 10).
        sigma: width of the border term, in pixels, or in the units of ``sampling`` (paper: 5 pixels).
        sampling: pixel spacing per axis (e.g. ``(10, 1, 1)`` for anisotropic stacks); default 1.
        tolerance: relative accuracy: the result is within ``tolerance * w0`` of the exact term (see
            the module docstring for the method and the bound).

    Returns:
        ``(*S)`` float32 border weights.
    """
    instances = _check_instances(instances)
    sampling = _sampling(sampling, instances.ndim)
    colour_of_id = cell_colouring(instances, border_cutoff(sigma, tolerance), sampling)
    if np.count_nonzero(colour_of_id >= 0) < 2:
        return np.zeros(instances.shape, dtype=np.float32)
    colour_map = colour_of_id[instances]
    masks = (colour_map != colour for colour in range(int(colour_of_id.max()) + 1))
    return _border_term(masks, instances > 0, w0, sigma, sampling)


def cell_colouring(instances: np.ndarray, cutoff: float, sampling: Sequence[float] | None = None) -> np.ndarray:
    """Colours of the cells such that cells closer than ``cutoff`` (units of ``sampling``) differ.

    Args:
        instances: ``(*S)`` instance map (0 = background, cells > 0).
        cutoff: minimum distance between cells of one colour.
        sampling: pixel spacing per axis; default 1.

    Returns:
        ``(max_id + 1,)`` int array: the colour (0, 1, ...) of every cell id, -1 for ids without pixels
        (and for the background 0). The number of colours is ``result.max() + 1``.
    """
    instances = _check_instances(instances)
    sampling = _sampling(sampling, instances.ndim)
    max_id = int(instances.max()) if instances.size else 0
    colour_of_id = np.full(max_id + 1, -1, dtype=np.intp)
    if max_id == 0:
        return colour_of_id
    boxes = ndi.find_objects(instances)
    cell_ids = np.array([i + 1 for i, box in enumerate(boxes) if box is not None], dtype=np.intp)
    colour_of_id[cell_ids] = _colour_cells([boxes[i - 1] for i in cell_ids], sampling, cutoff)
    return colour_of_id


def border_weights_bruteforce(
    instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0, sampling: Sequence[float] | None = None
) -> np.ndarray:
    """Reference for :func:`border_weights`: one distance transform per cell (exact, slow; for tests)."""
    instances = _check_instances(instances)
    sampling = _sampling(sampling, instances.ndim)
    cell_ids = np.unique(instances[instances > 0])
    if cell_ids.size < 2:
        return np.zeros(instances.shape, dtype=np.float32)
    return _border_term((instances != cell for cell in cell_ids), instances > 0, w0, sigma, sampling)


def unet_weight_map(
    target: np.ndarray,
    instances: np.ndarray,
    num_classes: int,
    w0: float = 10.0,
    sigma: float = 5.0,
    sampling: Sequence[float] | None = None,
    class_balance: bool = True,
) -> np.ndarray:
    """The paper's weight map (eq. 2): class balance plus the border term between touching cells.

    Args:
        target: ``(*S)`` integer class map; pixels outside ``[0, num_classes)`` (ignored) get weight 0
            from the class term.
        instances: ``(*S)`` instance map of the cells (0 = background; e.g. ``scipy.ndimage.label`` of
            the cell interiors when only a class map exists).
        num_classes: number of classes.
        w0, sigma, sampling: as in :func:`border_weights`.
        class_balance: include the class-frequency term ``w_c``; ``False``: ``w_c = 1`` everywhere (the
            default recipe: per-image inverse frequencies over-weight thin classes, see docs/recipes.md).

    Returns:
        ``(*S)`` float32 weights.
    """
    target = np.asarray(target)
    if target.shape != np.shape(instances):
        raise DataError(f"the class map has shape {target.shape} but the instance map {np.shape(instances)}")
    if not class_balance:
        return np.float32(1.0) + border_weights(instances, w0, sigma, sampling)
    class_weights = np.append(class_balance_weights(target, num_classes), np.float32(0.0))
    valid = (target >= 0) & (target < num_classes)
    class_term = class_weights[np.where(valid, target, num_classes).astype(np.intp, copy=False)]
    return class_term + border_weights(instances, w0, sigma, sampling)


class WeightMapCache:
    """Weight maps computed once per training image and kept in memory, keyed by any hashable id.

    Example: ``cache.get(image_path, target, instances)`` computes :func:`unet_weight_map` the first time
    and returns the stored map afterwards (the caller must not modify it).
    """

    def __init__(
        self,
        num_classes: int,
        w0: float = 10.0,
        sigma: float = 5.0,
        sampling: Sequence[float] | None = None,
        class_balance: bool = True,
    ) -> None:
        self.num_classes = num_classes
        self.w0 = w0
        self.sigma = sigma
        self.sampling = sampling
        self.class_balance = class_balance
        self._maps: dict[Hashable, np.ndarray] = {}

    def get(self, key: Hashable, target: np.ndarray, instances: np.ndarray) -> np.ndarray:
        """The weight map of the image ``key`` (``target`` and ``instances`` are used on the first call only)."""
        if key not in self._maps:
            self._maps[key] = unet_weight_map(
                target, instances, self.num_classes, self.w0, self.sigma, self.sampling, self.class_balance
            )
        return self._maps[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def clear(self) -> None:
        self._maps.clear()


def _border_term(
    outside_masks, inside_cells: np.ndarray, w0: float, sigma: float, sampling: tuple[float, ...]
) -> np.ndarray:
    """``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` from the distance transforms of ``outside_masks``.

    Each mask is True outside one cell or one group of cells; ``d1``/``d2`` are the two smallest of
    their distance transforms at every pixel.
    """
    shape = inside_cells.shape
    nearest = np.full(shape, np.inf)
    second = np.full(shape, np.inf)
    for outside in outside_masks:
        distance = ndi.distance_transform_edt(outside, sampling=sampling)
        np.minimum(second, np.maximum(nearest, distance), out=second)
        np.minimum(nearest, distance, out=nearest)
    total = nearest + second
    weights = w0 * np.exp(-(total * total) / (2.0 * sigma * sigma))
    weights[inside_cells] = 0.0
    return weights.astype(np.float32)


def _colour_cells(boxes: list[tuple[slice, ...]], sampling: tuple[float, ...], cutoff: float) -> np.ndarray:
    """Greedy colours ``(n,)`` of the cells so that cells whose bounding boxes are within ``cutoff`` differ.

    Largest-degree-first greedy colouring (Welsh-Powell); the box distance is a lower bound of the
    distance between the cells' pixels, so every pair closer than ``cutoff`` is separated.
    """
    low = np.array([[s.start for s in box] for box in boxes], dtype=np.float64)
    high = np.array([[s.stop - 1 for s in box] for box in boxes], dtype=np.float64)
    spacing = np.asarray(sampling)
    neighbours: list[np.ndarray] = []
    chunk = max(1, 4_000_000 // (len(boxes) * len(spacing)))  # rows per block: a few tens of MB at most
    for begin in range(0, len(boxes), chunk):
        gap = np.maximum(low[None, :, :] - high[begin : begin + chunk, None, :], 0.0)
        gap = np.maximum(gap, low[begin : begin + chunk, None, :] - high[None, :, :])
        close = ((gap * spacing) ** 2).sum(axis=2) <= cutoff * cutoff
        for row, cell in enumerate(range(begin, min(begin + chunk, len(boxes)))):
            close[row, cell] = False
            neighbours.append(np.flatnonzero(close[row]))
    colours = np.full(len(boxes), -1, dtype=np.intp)
    for cell in sorted(range(len(boxes)), key=lambda c: -neighbours[c].size):
        taken = colours[neighbours[cell]]
        used = np.zeros(taken.size + 1, dtype=bool)
        used[taken[(taken >= 0) & (taken <= taken.size)]] = True
        colours[cell] = int(np.argmin(used))
    return colours


def _check_instances(instances: np.ndarray) -> np.ndarray:
    instances = np.asarray(instances)
    if not np.issubdtype(instances.dtype, np.integer) and instances.dtype != bool:
        raise DataError(f"an instance map must hold integer cell ids, not {instances.dtype}")
    if instances.ndim not in (2, 3):
        raise DataError(f"an instance map must be 2D or 3D, not of shape {instances.shape}")
    if instances.size and instances.min() < 0:
        raise DataError("an instance map must not hold negative ids (0 = background, cells > 0)")
    return instances.astype(np.intp, copy=False)


def _sampling(sampling: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if sampling is None:
        return (1.0,) * ndim
    if len(sampling) != ndim or any(s <= 0 for s in sampling):
        raise ValueError(f"sampling needs {ndim} positive spacings, not {tuple(sampling)}")
    return tuple(float(s) for s in sampling)
