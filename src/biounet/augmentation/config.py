"""What the training-time augmentation does: a plain dataclass (defaults follow the U-Net paper)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

#: Settings that must be finite and >= 0 (standard deviations, sizes, pixels).
_NON_NEGATIVE = ("elastic_std", "section_jitter_std", "misalign_max_shift")
_NON_NEGATIVE += ("brightness", "noise_std", "blur_sigma", "intensity_range")
#: The per-section defect probabilities (3D stacks only).
_SECTION_PROBS = ("missing_section_prob", "slip_section_prob", "shift_section_prob")


@dataclass(frozen=True)
class AugmentationConfig:
    """Random changes applied to every training tile.

    Geometry (one coordinate mapping per tile, applied alike to image, label and weight map; for 3D
    stacks ``(Z, Y, X)``, which are usually anisotropic, everything but the flips acts in-plane on the
    last two axes and is the same for every section, so sections stay aligned unless the section
    options below add per-section changes):

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

    Serial sections (3D stacks only; ignored for 2D images). Sections of ssTEM stacks are cut, imaged
    and aligned one by one: each is deformed a little on its own, some are lost, some are misaligned.
    All are off by default (and then draw nothing from the random generator, so tiles stay as before);
    each is drawn per section of the tile (sections counted in the tile's order, after a z flip).

    Attributes:
        section_jitter_std: standard deviation in pixels of an extra smooth elastic displacement drawn
            independently for every section (coarse ``elastic_grid`` grid, as ``elastic_std``) and added
            to the tile's shared one: sections are deformed together and each on its own. Image, label
            and weight of a section are sampled through the same coordinates, so labels stay aligned.
        missing_section_prob: probability that a section's image is replaced by the image tile's mean
            (per channel): a lost or blank section. Label and weight stay, so the network learns to
            infer the section from its neighbours. The intensity changes below come afterwards, so
            such a section gets the tile's brightness, contrast and noise too.
        slip_section_prob: probability that only a section's image is shifted in-plane (a section
            misaligned in the stack); its label and weight stay where the truth is.
        shift_section_prob: probability that a section's image, label and weight and those of all
            following sections are shifted by one offset (the stack misaligned from there on; labels
            follow). Several shifts in a tile add up.
        misalign_max_shift: the largest slip or shift in pixels: offsets are drawn uniformly from
            ``[-misalign_max_shift, misalign_max_shift]`` per in-plane axis (sub-pixel, in the tile's
            frame). Shifts move the sampling coordinates, so no extra resampling pass is made.

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
    section_jitter_std: float = 0.0
    missing_section_prob: float = 0.0
    slip_section_prob: float = 0.0
    shift_section_prob: float = 0.0
    misalign_max_shift: float = 10.0
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
        for name in _NON_NEGATIVE:
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, not {getattr(self, name)}")
        for name in ("contrast", "gamma"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), not {getattr(self, name)}")
        for name in ("intensity_prob", "blur_prob", *_SECTION_PROBS):
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

    @property
    def changes_sections(self) -> bool:
        """Whether any per-section change of 3D stacks (jitter or a section defect) is enabled."""
        return self.section_jitter_std > 0 or any(getattr(self, name) > 0 for name in _SECTION_PROBS)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scale"] = list(self.scale)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> AugmentationConfig:
        return cls(**(data or {}))
