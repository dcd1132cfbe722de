"""The U-Net's configuration: a plain dataclass, saved as JSON beside every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Padding = Literal["valid", "same"]
Norm = Literal["batch", "instance", "group"]
Upsampling = Literal["transposed", "interpolate"]


@dataclass(frozen=True)
class UNetConfig:
    """Everything that defines a U-Net's architecture.

    The defaults are the paper's network (Ronneberger et al. 2015, Fig. 1) for one input channel and
    two classes: four 2x2 poolings, 64 channels doubling to 1024, unpadded ("valid") 3x3 convolutions,
    no normalisation, 2x2 transposed-convolution up-sampling and dropout at the end of the contracting
    path.

    Attributes:
        spatial_dims: 2 for images ``(B, C, Y, X)``, 3 for stacks ``(B, C, Z, Y, X)``.
        in_channels: channels of the input image.
        num_classes: channels of the output logits (one per class, softmax outside the model).
        depth: number of poolings (levels below the top); the paper uses 4.
        base_channels: channels at the top level, doubled at every level below (paper: 64).
        padding: ``"valid"`` (the paper: every 3x3 convolution shrinks the map by 2 pixels, so the
            output is smaller than the input and tiles join seamlessly; see :mod:`biounet.model.sizes`)
            or ``"same"`` (zero-padded convolutions; the model reflect-pads the input to a multiple of
            the total pooling factor and crops back, so any size works and the output matches the input).
        norm: ``None`` (paper), ``"batch"``, ``"instance"`` or ``"group"`` after every convolution.
        group_norm_groups: groups for ``norm="group"``.
        dropout: dropout probability at the end of the contracting path (on the bottleneck's output);
            the Caffe model released with the paper uses 0.5.
        upsampling: ``"transposed"`` (paper: 2x2 up-convolution halving the channels) or
            ``"interpolate"`` (linear interpolation followed by a 1x1 convolution halving the channels).
        pool_factors: pooling factor per level, one entry per level, each an int or a per-axis tuple;
            ``None`` means 2 on every axis at every level. For anisotropic stacks (z spacing ~10x xy)
            use e.g. ``((1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2))``.
        kernel_sizes: convolution kernel per level (``depth + 1`` entries: the levels of the
            contracting path and the bottleneck; the expansive path mirrors them), each an odd int or a
            per-axis tuple; ``None`` means 3 everywhere. For anisotropic stacks use e.g. ``(1, 3, 3)``
            at the levels that do not pool in z.
    """

    spatial_dims: int = 2
    in_channels: int = 1
    num_classes: int = 2
    depth: int = 4
    base_channels: int = 64
    padding: Padding = "valid"
    norm: Norm | None = None
    group_norm_groups: int = 8
    dropout: float = 0.5
    upsampling: Upsampling = "transposed"
    pool_factors: tuple[tuple[int, ...], ...] | None = field(default=None)
    kernel_sizes: tuple[tuple[int, ...], ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, not {self.spatial_dims}")
        if self.depth < 0:
            raise ValueError(f"depth must be >= 0, not {self.depth}")
        if self.in_channels < 1 or self.num_classes < 1 or self.base_channels < 1:
            raise ValueError("in_channels, num_classes and base_channels must be positive")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', not {self.padding!r}")
        if self.norm not in (None, "batch", "instance", "group"):
            raise ValueError(f"norm must be None, 'batch', 'instance' or 'group', not {self.norm!r}")
        if self.upsampling not in ("transposed", "interpolate"):
            raise ValueError(f"upsampling must be 'transposed' or 'interpolate', not {self.upsampling!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        object.__setattr__(self, "pool_factors", self._per_level(self.pool_factors, self.depth, 2, "pool_factors"))
        object.__setattr__(
            self, "kernel_sizes", self._per_level(self.kernel_sizes, self.depth + 1, 3, "kernel_sizes")
        )
        for kernel in self.kernel_sizes:
            if any(k < 1 or k % 2 == 0 for k in kernel):
                raise ValueError(f"kernel sizes must be odd and positive, not {kernel}")
        for factor in self.pool_factors:
            if any(f < 1 for f in factor):
                raise ValueError(f"pool factors must be positive, not {factor}")

    def _per_level(self, value: Any, levels: int, default: int, name: str) -> tuple[tuple[int, ...], ...]:
        if value is None:
            value = [default] * levels
        value = list(value)
        if len(value) != levels:
            raise ValueError(f"{name} needs {levels} entries (one per level), got {len(value)}")
        out = []
        for entry in value:
            axes = (int(entry),) * self.spatial_dims if isinstance(entry, int) else tuple(int(v) for v in entry)
            if len(axes) != self.spatial_dims:
                raise ValueError(f"{name} entry {entry} needs {self.spatial_dims} values (one per axis)")
            out.append(axes)
        return tuple(out)

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels per level, top to bottleneck: ``base * 2**level``."""
        return tuple(self.base_channels * 2**level for level in range(self.depth + 1))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a file from another tool)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown UNetConfig fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def replace(self, **changes: Any) -> UNetConfig:
        return dataclasses.replace(self, **changes)


def json_ready(value: Any) -> Any:
    """Turn tuples into lists recursively (JSON has no tuples)."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
