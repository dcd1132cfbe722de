"""Synthetic microscopy with exact instance labels, generated in the package (no downloads).

Two styles, each a small physical-ish image formation model, deterministic from a seed:

``"nuclei"`` (fluorescence, like DAPI/Hoechst-stained nuclei, the DSB 2018 look)
    Elliptical nuclei of 8-20 px radius with irregular outlines, many in touching clusters that share a
    border, chromatin texture and dark nucleoli, heterogeneous brightness, blurred by a Gaussian PSF,
    multiplied by an uneven illumination field and recorded by a camera model (Poisson shot noise,
    Gaussian read noise, offset).  Image: ``uint16`` camera counts.  Labels: one id per nucleus.

``"membrane"`` (electron microscopy, like the ISBI 2012 ssTEM stack)
    A tessellation of irregular cells (a relaxed Voronoi diagram sampled through a smooth warp, so
    borders are curved, plus merged cells for size variety) separated by dark membranes 2-4 px wide,
    grey textured cytoplasm with dark organelle-like blobs and vesicles, blur, uneven illumination and
    noise.  Image: ``uint8``.  Labels: one id per cell, membrane pixels are 0 (ISBI: membrane vs
    interior is ``labels > 0``).

Both work in 2D ``(Y, X)`` and 3D ``(Z, Y, X)`` (isotropic voxels).  Everything is vectorised
(FFT-filtered random fields, one Euclidean distance transform for the Voronoi diagram); nuclei are
drawn one bounding box at a time.  A 2048 x 2048 image takes 1.5-2 s on two CPU cores.

Example::

    image, labels = generate("nuclei", (512, 512), seed=0)
    generate_dataset(Path("synthetic"), "membrane", count=20, shape=(512, 512), seed=0)
    # -> synthetic/images/membrane_000.tif ... and synthetic/masks/membrane_000.tif ...
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi

Style = Literal["nuclei", "membrane"]
STYLES: tuple[str, ...] = ("nuclei", "membrane")

#: Default image dtype of each style (what the real data look like).
DEFAULT_DTYPE = {"nuclei": "uint16", "membrane": "uint8"}


@dataclass(frozen=True)
class SyntheticConfig:
    """All knobs of the generator.  Lengths are in pixels; intensities are relative (0..1) before the
    camera model.  The defaults give realistic-looking images; only ``style`` is required.

    Attributes (common):
        style: ``"nuclei"`` (fluorescence) or ``"membrane"`` (EM).
        shape: ``(Y, X)`` or ``(Z, Y, X)`` in pixels.
        dtype: ``"uint8"``, ``"uint16"`` or ``"float32"`` (``[0, 1]``); ``None`` -> uint16 for nuclei,
            uint8 for membrane.
        blur_sigma: standard deviation of the Gaussian point spread function.
        illumination: relative amplitude of the smooth gain field (0.3 -> gain roughly 0.7..1.3).

    Attributes (nuclei):
        radius_range: nucleus mean radius range.
        fill_fraction: fraction of the image covered by nuclei.
        touching_fraction: probability that a new nucleus is placed against an existing one.
        max_aspect: largest ratio of the longest to the shortest ellipse axis.
        irregularity: amplitude of the outline wobble (relative to the radius).
        texture: amplitude of the chromatin texture (relative brightness).
        border_dimming: relative darkening along borders shared by touching nuclei.
        background: background level relative to the mean nucleus brightness.
        photons: expected photon count of an average nucleus pixel (lower -> noisier).
        read_noise: camera read noise (counts, standard deviation).
        camera_offset: camera baseline (counts).

    Attributes (membrane):
        cell_diameter: typical cell diameter before merging.
        membrane_width: range of membrane thickness (varies smoothly along the membranes).
        warp: amplitude of the smooth displacement that curves the cell borders.
        relax_iterations: Lloyd iterations that make cells more regular (0 = raw Voronoi).
        merge_fraction: fraction of Voronoi seeds removed after relaxation (merges neighbours into larger,
            non-convex cells).
        organelle_density: how many dark blobs (0 = none, 1 = default).
        noise_sigma: Gaussian noise standard deviation (relative intensity).
    """

    style: Style
    shape: tuple[int, ...] = (256, 256)
    dtype: str | None = None
    blur_sigma: float = 1.0
    illumination: float = 0.3
    # nuclei
    radius_range: tuple[float, float] = (8.0, 20.0)
    fill_fraction: float = 0.3
    touching_fraction: float = 0.6
    max_aspect: float = 1.7
    irregularity: float = 0.08
    texture: float = 0.18
    border_dimming: float = 0.25
    background: float = 0.06
    photons: float = 150.0
    read_noise: float = 3.0
    camera_offset: float = 100.0
    # membrane
    cell_diameter: float = 40.0
    membrane_width: tuple[float, float] = (2.0, 4.0)
    warp: float = 5.0
    relax_iterations: int = 2
    merge_fraction: float = 0.25
    organelle_density: float = 1.0
    noise_sigma: float = 0.06

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"unknown synthetic style {self.style!r} (use {', '.join(STYLES)})")
        if len(self.shape) not in (2, 3) or min(self.shape) < 8:
            raise ValueError(f"shape must be (Y, X) or (Z, Y, X) with every side >= 8 px, got {self.shape}")
        if self.dtype not in (None, "uint8", "uint16", "float32"):
            raise ValueError(f"dtype must be uint8, uint16 or float32, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def generate(
    style: str,
    shape: tuple[int, ...] = (256, 256),
    rng_or_seed: np.random.Generator | int | None = 0,
    **knobs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Generate one synthetic image and its instance labels.

    Args:
        style: ``"nuclei"`` or ``"membrane"``.
        shape: ``(Y, X)`` or ``(Z, Y, X)`` in pixels.
        rng_or_seed: a NumPy ``Generator`` or an integer seed (same seed -> identical output).
        **knobs: any other :class:`SyntheticConfig` field, e.g. ``fill_fraction=0.4``.

    Returns:
        ``(image, labels)``: image of ``shape`` (uint16 for nuclei, uint8 for membrane unless ``dtype``
        says otherwise), labels ``int32`` of ``shape`` with 0 = background (nuclei) or membrane
        (membrane) and 1..N one id per object.
    """
    config = SyntheticConfig(style=style, shape=tuple(int(s) for s in shape), **knobs)  # type: ignore[arg-type]
    return generate_from_config(config, rng_or_seed)


def generate_from_config(
    config: SyntheticConfig, rng_or_seed: np.random.Generator | int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`generate` with a ready :class:`SyntheticConfig`."""
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    if config.style == "nuclei":
        intensity, labels = _nuclei(config, rng)
        image = _camera_counts(intensity, config, rng)
    else:
        intensity, labels = _membrane(config, rng)
        image = np.clip(intensity + rng.normal(0.0, config.noise_sigma, intensity.shape), 0.0, 1.0)
    return _to_dtype(image, config), labels.astype(np.int32, copy=False)


def generate_dataset(
    out_dir: str | Path,
    style: str,
    count: int,
    shape: tuple[int, ...] = (256, 256),
    seed: int = 0,
    *,
    progress: bool = True,
    **knobs: Any,
) -> Path:
    """Write ``count`` image/label pairs in the folder layout that ``biounet train`` reads.

    Files: ``out_dir/images/<style>_NNN.tif`` (the image) and ``out_dir/masks/<style>_NNN.tif`` (the
    instance label map, ``uint16``, same name), plus ``out_dir/synthetic.json`` with the settings.
    Image ``i`` uses an independent random stream derived from ``(seed, i)``, so the dataset is
    reproducible and any single image can be regenerated.  Every file is written atomically.

    Returns:
        ``out_dir``.
    """
    from tqdm import tqdm

    from biounet.io.atomic import write_json_atomic
    from biounet.io.images import write_image

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    out = Path(out_dir)
    config = SyntheticConfig(style=style, shape=tuple(int(s) for s in shape), **knobs)  # type: ignore[arg-type]
    streams = np.random.SeedSequence(seed).spawn(count)
    digits = max(3, len(str(count - 1)))
    names = []
    for index in tqdm(range(count), desc=f"synthetic {style}", unit="image", disable=not progress):
        image, labels = generate_from_config(config, np.random.default_rng(streams[index]))
        if labels.max() > np.iinfo(np.uint16).max:
            raise ValueError(f"{labels.max()} objects do not fit a uint16 label map; use a smaller shape")
        name = f"{style}_{index:0{digits}d}.tif"
        write_image(out / "images" / name, image)
        write_image(out / "masks" / name, labels.astype(np.uint16))
        names.append(name)
    write_json_atomic(
        out / "synthetic.json",
        {
            "generator": "biounet.data.synthetic",
            "seed": seed,
            "count": count,
            "config": config.to_dict(),
            "files": names,
        },
    )
    return out


# --------------------------------------------------------------------------------------------- fields


def smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field of ``shape`` with correlation length ``sigma`` px, mean 0 and std 1.

    White noise filtered with a Gaussian in the Fourier domain (periodic), so the cost does not depend
    on ``sigma``.  Returns ``float32``.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    if sigma <= 0:
        return white
    spectrum = sfft.rfftn(white, workers=-1)
    spectrum = ndi.fourier_gaussian(spectrum, sigma, n=shape[-1])
    field = sfft.irfftn(spectrum, s=shape, workers=-1).astype(np.float32, copy=False)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def _unit_field(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth field in ``[0, 1]`` (the normal CDF of :func:`smooth_noise`, roughly uniform)."""
    from scipy.special import ndtr

    return ndtr(smooth_noise(shape, sigma, rng)).astype(np.float32)


def _illumination(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative gain ``(*shape)`` float32, mean 1: a low-frequency random field times a vignette.

    Computed on a grid of about 64 px per side and interpolated linearly (the field is far smoother than
    that grid, so this is exact to the eye and saves most of the cost on large images).
    """
    if amplitude <= 0:
        return np.ones(shape, np.float32)
    coarse = tuple(min(s, 64) for s in shape)
    field = smooth_noise(coarse, min(coarse) / 5.0, rng)
    centre = rng.uniform(0.3, 0.7, len(shape)) * np.array(coarse)
    grids = np.ogrid[tuple(slice(0, s) for s in coarse)]
    radius2 = sum(((g - c) / max(coarse)) ** 2 for g, c in zip(grids, centre))
    gain = (1.0 + 0.5 * amplitude * field) * (1.0 - 0.8 * amplitude * radius2)
    gain = np.clip(gain / gain.mean(), 0.2, None).astype(np.float32)
    if coarse != tuple(shape):
        gain = ndi.zoom(gain, np.array(shape) / np.array(coarse), order=1, mode="nearest")
    return gain


def _to_dtype(image: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """Convert ``[0, 1]`` intensities (membrane) or camera counts (nuclei) to the requested dtype."""
    dtype = config.dtype or DEFAULT_DTYPE[config.style]
    if config.style == "nuclei":  # camera counts
        if dtype == "uint16":
            return np.clip(np.rint(image), 0, 65535).astype(np.uint16)
        scaled = (image - image.min()) / max(float(np.percentile(image, 99.99) - image.min()), 1e-6)
        image = np.clip(scaled, 0.0, 1.0)
    if dtype == "float32":
        return image.astype(np.float32)
    top = 255 if dtype == "uint8" else 65535
    return np.rint(image * top).astype(dtype)


# --------------------------------------------------------------------------------------------- nuclei


def _random_rotation(ndim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix ``(ndim, ndim)``."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def _place_nuclei(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(N, ndim)`` and mean radii ``(N,)``: random nuclei, many placed against a neighbour.

    Dart throwing with a spatial hash: a candidate is rejected when it would sit closer than 0.7 of the
    summed radii to another nucleus (so neighbours may overlap a little and then share a border).
    """
    shape = np.array(config.shape, float)
    ndim = len(shape)
    r_lo, r_hi = config.radius_range
    ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    mean_volume = ball * float(np.mean(rng.uniform(r_lo, r_hi, 1000) ** ndim))
    target = max(1, round(config.fill_fraction * float(np.prod(shape)) / mean_volume))
    cell = 2.0 * r_hi
    grid: dict[tuple[int, ...], list[int]] = {}
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(30 * target):
        if len(centres) >= target:
            break
        radius = rng.uniform(r_lo, r_hi)
        if centres and rng.random() < config.touching_fraction:
            anchor = int(rng.integers(len(centres)))
            direction = rng.standard_normal(ndim)
            direction /= np.linalg.norm(direction) + 1e-12
            centre = centres[anchor] + direction * (radius + radii[anchor]) * rng.uniform(0.78, 0.95)
        else:
            centre = rng.uniform(-0.3 * radius, shape + 0.3 * radius)
        if np.any(centre < -0.5 * radius) or np.any(centre > shape + 0.5 * radius):
            continue
        key = tuple((centre // cell).astype(int))
        neighbours = [
            j
            for offset in np.ndindex(*(3,) * ndim)
            for j in grid.get(tuple(k + o - 1 for k, o in zip(key, offset)), ())
        ]
        if any(np.linalg.norm(centres[j] - centre) < 0.7 * (radius + radii[j]) for j in neighbours):
            continue
        grid.setdefault(key, []).append(len(centres))
        centres.append(centre)
        radii.append(radius)
    return np.array(centres).reshape(-1, ndim), np.array(radii)


def _nuclei(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relative fluorescence ``(*shape)`` float32 (before noise) and instance labels ``(*shape)`` int32."""
    shape = config.shape
    ndim = len(shape)
    centres, radii = _place_nuclei(config, rng)
    labels = np.zeros(shape, np.int32)
    distance = np.full(shape, np.inf, np.float32)  # ellipse-normalised distance to the owning centre
    wobble = config.irregularity * smooth_noise(shape, 0.5 * config.radius_range[0], rng)
    for index, (centre, radius) in enumerate(zip(centres, radii), start=1):
        log_axes = rng.uniform(-0.5, 0.5, ndim) * math.log(config.max_aspect)
        axes = radius * np.exp(log_axes - log_axes.mean())
        rotation = _random_rotation(ndim, rng)
        reach = axes.max() * (1.0 + 4.0 * config.irregularity) + 2.0
        lo = np.maximum(np.floor(centre - reach).astype(int), 0)
        hi = np.minimum(np.ceil(centre + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        offsets = np.ogrid[box]
        rho2 = 0.0
        for k in range(ndim):  # coordinate along ellipse axis k, scaled by its half-length
            u = sum(rotation[j, k] * (offsets[j] - centre[j]) for j in range(ndim))
            rho2 = rho2 + (u / axes[k]) ** 2
        d = np.sqrt(rho2) + wobble[box]
        wins = (d < 1.0) & (d < distance[box])
        distance[box][wins] = d[wins]
        labels[box][wins] = index
    labels = connected_objects(labels, min_size=0, keep_largest=True)
    count = int(labels.max())

    brightness = np.exp(rng.normal(0.0, 0.3, count + 1)).astype(np.float32)
    brightness[0] = 0.0
    chromatin = 0.6 * smooth_noise(shape, 1.2, rng) + 0.4 * smooth_noise(shape, 3.0, rng)
    nucleoli = smooth_noise(shape, 2.0, rng) > 2.3
    inside = labels > 0
    d_in = np.where(inside, distance, 1.0)
    signal = brightness[labels] * (1.0 - 0.3 * d_in**2) * (1.0 + config.texture * chromatin)
    signal[nucleoli & (d_in < 0.7)] *= 0.6
    if config.border_dimming > 0:
        signal *= 1.0 - config.border_dimming * _shared_borders(labels)
    signal = np.clip(signal, 0.0, None)
    haze = config.background * (1.0 + 0.3 * smooth_noise(shape, max(shape) / 8.0, rng))
    image = ndi.gaussian_filter(signal, config.blur_sigma) if config.blur_sigma > 0 else signal
    image = (image + np.clip(haze, 0.0, None)) * _illumination(shape, config.illumination, rng)
    return image.astype(np.float32), labels


def _shared_borders(labels: np.ndarray) -> np.ndarray:
    """Float mask of pixels where two different objects touch (both sides non-zero), 1 px per side."""
    border = np.zeros(labels.shape, bool)
    for axis in range(labels.ndim):
        a = np.swapaxes(labels, 0, axis)
        b = np.swapaxes(border, 0, axis)
        touch = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        b[1:] |= touch
        b[:-1] |= touch
    return border.astype(np.float32)


def connected_objects(labels: np.ndarray, *, min_size: int, keep_largest: bool) -> np.ndarray:
    """Relabel ``labels`` so that every id is one connected object (face connectivity), ids 1..N.

    A label split into pieces keeps only its largest piece (``keep_largest``) or gives each piece its own
    id; pieces smaller than ``min_size`` pixels become 0.  Returns ``int32`` of the same shape.
    """
    from skimage.measure import label as connected

    pieces = connected(labels, background=0, connectivity=1)
    sizes = np.bincount(pieces.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    if keep_largest:
        owner = np.zeros(len(sizes), labels.dtype)
        owner[pieces.ravel()] = labels.ravel()
        order = np.lexsort((sizes, owner))  # by owner, then size: the last of each owner is its largest piece
        last = np.r_[owner[order][1:] != owner[order][:-1], True]
        largest = np.zeros(len(sizes), bool)
        largest[order[last]] = True
        keep &= largest
    new_ids = np.zeros(len(sizes), np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1)
    return new_ids[pieces]


def _camera_counts(intensity: np.ndarray, config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Camera model: Poisson photons (``photons`` per unit intensity), gain 4, read noise and offset."""
    photons = rng.poisson(np.clip(intensity, 0.0, None) * config.photons).astype(np.float32)
    counts = config.camera_offset + 4.0 * photons
    counts += rng.normal(0.0, config.read_noise, intensity.shape).astype(np.float32)
    return counts


# -------------------------------------------------------------------------------------------- membrane


def _voronoi(seeds: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-seed label map ``(*shape)`` int32 (seed ``i`` -> label ``i + 1``) via one EDT."""
    index = np.clip(np.rint(seeds).astype(int), 0, np.array(shape) - 1)
    seed_image = np.zeros(shape, np.int32)
    seed_image[tuple(index.T)] = np.arange(1, len(seeds) + 1)
    nearest = ndi.distance_transform_edt(seed_image == 0, return_distances=False, return_indices=True)
    return seed_image[tuple(nearest)]


def _relaxed_seeds(config: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Seed points ``(N, ndim)`` in pixels: Poisson points, Lloyd-relaxed on a coarse grid, then thinned."""
    shape = np.array(config.shape, float)
    ndim = len(shape)
    ball = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    count = max(2, round(float(np.prod(shape)) / (ball * (config.cell_diameter / 2) ** ndim)))
    seeds = rng.uniform(0, shape, (count, ndim))
    factor = max(1.0, config.cell_diameter / 10.0)
    coarse_shape = tuple(max(4, int(math.ceil(s / factor))) for s in shape)
    scale = shape / np.array(coarse_shape)
    coords = np.indices(coarse_shape).reshape(ndim, -1)
    for _ in range(config.relax_iterations):
        labels = _voronoi(seeds / scale, coarse_shape).ravel()
        sizes = np.bincount(labels, minlength=count + 1)[1:]
        sums = np.stack([np.bincount(labels, weights=c, minlength=count + 1)[1:] for c in coords], axis=1)
        moved = (sums / np.maximum(sizes, 1)[:, None] + 0.5) * scale
        seeds = moved[sizes > 0]  # a seed that owns no pixel duplicates another one: drop it
        count = len(seeds)
    keep = rng.random(count) >= config.merge_fraction
    keep[rng.integers(count)] = True
    return seeds[keep]


def _membrane(config: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relative EM intensity ``(*shape)`` float32 in about [0, 1] and cell labels (membrane = 0)."""
    shape = config.shape
    ndim = len(shape)
    cells = _voronoi(_relaxed_seeds(config, rng), shape)
    if config.warp > 0:  # curved borders: look the tessellation up through a smooth displacement
        grids = np.indices(shape, dtype=np.float32)
        for axis in range(ndim):
            grids[axis] += config.warp * smooth_noise(shape, config.cell_diameter / 2.0, rng)
        index = tuple(np.clip(np.rint(g), 0, s - 1).astype(np.intp) for g, s in zip(grids, shape))
        cells = cells[index]
        del grids, index

    edges = np.zeros(shape, bool)
    for axis in range(ndim):
        a = np.swapaxes(cells, 0, axis)
        e = np.swapaxes(edges, 0, axis)
        e[1:] |= a[1:] != a[:-1]
    distance = ndi.distance_transform_edt(~edges).astype(np.float32)  # px to the nearest cell border
    lo, hi = config.membrane_width
    half_width = 0.5 * (lo + (hi - lo) * _unit_field(shape, 12.0, rng))
    membrane = distance < half_width
    labels = connected_objects(np.where(membrane, 0, cells), min_size=8, keep_largest=False)

    count = int(cells.max())
    cytoplasm = rng.uniform(0.58, 0.78, count + 1).astype(np.float32)[cells]
    cytoplasm += 0.05 * smooth_noise(shape, 4.0, rng) + 0.06 * smooth_noise(shape, 0.8, rng)
    depth = distance - half_width  # px inside the cell, from the membrane edge
    density = config.organelle_density
    if density > 0:
        blobs = (smooth_noise(shape, 4.0, rng) > 1.7 - 0.4 * math.log(density)) & (depth > 2.0)
        peaks = smooth_noise(shape, 2.5, rng) - (1.6 - 0.4 * math.log(density))
        vesicles = (peaks > 0.0) & (peaks < 0.5) & (depth > 1.5)  # dark rings around the highest peaks
        blob_tone = 0.32 + 0.08 * smooth_noise(shape, 1.0, rng)
        cytoplasm = np.where(blobs, blob_tone, cytoplasm)
        cytoplasm = np.where(vesicles, 0.6 * cytoplasm, cytoplasm)
    dark = 0.18 + 0.05 * smooth_noise(shape, 6.0, rng)
    mix = np.clip(depth + 0.5, 0.0, 1.0)  # one-pixel soft edge between membrane and cytoplasm
    image = dark * (1.0 - mix) + cytoplasm * mix
    if config.blur_sigma > 0:
        image = ndi.gaussian_filter(image, config.blur_sigma)
    image *= _illumination(shape, config.illumination, rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32), labels
