"""What the training-time augmentation does: a plain dataclass (defaults follow the U-Net paper)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class AugmentationConfig:
    """Random changes applied to every training tile.

    Geometry (one coordinate mapping per tile, applied alike to image, label and weight map; for 3D
    stacks ``(Z, Y, X)``, which are usually anisotropic, everything but the flips acts in-plane on the
    last two axes and is the same for every section, so sections stay aligned):

    Attributes:
        elastic: smooth elastic deformation, as in the paper: random displacement vectors on a coarse
            ``elastic_grid`` x ``elastic_grid`` grid spanning the tile, drawn from a normal distribution
            with ``elastic_std`` pixels standard deviation, interpolated to every pixel with cubic splines.
        elastic_grid: coarse grid points per axis (paper: 3).
        elastic_std: standard deviation of the coarse displacements in pixels (paper: 10).
        rotate: rotation by an angle drawn uniformly from [0, 360) degrees about the tile centre.
        rotate90: rotation by a random multiple of 90 degrees (exact, no interpolation on its own).
        flip: a random flip of every spatial axis (each with probability 1/2).
        scale: range of an isotropic in-plane zoom factor drawn uniformly (> 1 magnifies); (1, 1) is off,
            the default, because the paper's data have a fixed pixel size.
        image_interpolation: the cubic kernel that resamples the image (labels are always sampled
            nearest-neighbour, weights linearly): ``"bicubic"`` (default; Keys' cubic convolution via
            PyTorch's ``grid_sample``: ~5 ms for a 572x572 image tile) or ``"spline"`` (cubic B-spline
            interpolation via ``scipy.ndimage.map_coordinates``: smoother, ~7x slower, so a whole
            augmented tile takes ~2x as long). Both are exact at pixel centres.

    Intensity (image only, after the geometry):

    Attributes:
        intensity_prob: probability that contrast, brightness, gamma and noise are applied to a tile
            (0.8 keeps some tiles unaltered, so the network also sees the true intensity distribution).
        intensity_range: the scale of the normalised intensities that brightness and noise refer to:
            1.0 for :mod:`biounet.data.normalization`'s default (percentiles to [0, 1]) and for z-score
            (one standard deviation).
        brightness: additive shift drawn from ``[-brightness, brightness] * intensity_range``.
        contrast: multiplication about the tile mean by a factor in ``[1 - contrast, 1 + contrast]``.
        gamma: ``x ** g`` with ``g`` in ``[1 - gamma, 1 + gamma]`` on the tile rescaled to [0, 1] by its
            own minimum and maximum, and scaled back afterwards.
        noise_std: additive Gaussian noise whose standard deviation is drawn from
            ``[0, noise_std] * intensity_range``.
        blur_sigma: Gaussian blur (in-plane) with sigma drawn from ``[0, blur_sigma]`` pixels, applied
            with probability ``blur_prob`` (simulates slight defocus).
        blur_prob: probability of the blur.
    """

    elastic: bool = True
    elastic_grid: int = 3
    elastic_std: float = 10.0
    rotate: bool = True
    rotate90: bool = True
    flip: bool = True
    scale: tuple[float, float] = (1.0, 1.0)
    image_interpolation: Literal["bicubic", "spline"] = "bicubic"
    intensity_prob: float = 0.8
    intensity_range: float = 1.0
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: float = 0.2
    noise_std: float = 0.03
    blur_sigma: float = 1.0
    blur_prob: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be a range (low, high) with 0 < low <= high, not {self.scale}")
        if self.image_interpolation not in ("bicubic", "spline"):
            raise ValueError(f"image_interpolation must be 'bicubic' or 'spline', not {self.image_interpolation!r}")
        if self.elastic_grid < 2:
            raise ValueError(f"elastic_grid must be >= 2, not {self.elastic_grid}")
        for name in ("elastic_std", "brightness", "noise_std", "blur_sigma", "intensity_range"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        for name in ("contrast", "gamma"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)}")
        for name in ("intensity_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], not {getattr(self, name)}")

    @classmethod
    def disabled(cls) -> AugmentationConfig:
        """A configuration that changes nothing (tiles are plain mirrored crops)."""
        return cls(elastic=False, rotate=False, rotate90=False, flip=False, intensity_prob=0.0, blur_prob=0.0)

    @property
    def changes_geometry(self) -> bool:
        """Whether any geometric transformation is enabled."""
        zoom = self.scale != (1.0, 1.0)
        return (self.elastic and self.elastic_std > 0) or self.rotate or self.rotate90 or self.flip or zoom

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentationConfig:
        return cls(**(data or {}))
