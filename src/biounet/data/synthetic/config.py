"""The settings of the synthetic generator: :class:`SyntheticConfig` and the default image dtype of each style."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

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
