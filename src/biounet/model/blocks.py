"""The U-Net's building blocks, for 2D and 3D through one code path (layer factories by ``spatial_dims``)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_BATCH = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def norm_layer(kind: str | None, channels: int, spatial_dims: int, groups: int = 8) -> nn.Module:
    """A normalisation layer of ``kind`` (``None`` gives an identity)."""
    if kind is None:
        return nn.Identity()
    if kind == "batch":
        return _BATCH[spatial_dims](channels)
    if kind == "instance":
        return _INSTANCE[spatial_dims](channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    raise ValueError(f"unknown norm {kind!r}")


class ConvBlock(nn.Sequential):
    """Two (convolution -> [norm] -> ReLU) layers: one level of the U-Net (Fig. 1, blue arrows).

    Input ``(B, in_channels, *S)``, output ``(B, out_channels, *S')`` with ``S' = S - 2 (k - 1)`` when
    ``padding="valid"`` and ``S' = S`` when ``"same"``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        padding: str,
        norm: str | None,
        groups: int = 8,
    ) -> None:
        pad = tuple(k // 2 for k in kernel_size) if padding == "same" else 0
        layers: list[nn.Module] = []
        for channels_in in (in_channels, out_channels):
            conv = _CONV[spatial_dims](channels_in, out_channels, kernel_size, padding=pad, bias=norm is None)
            layers += [conv, norm_layer(norm, out_channels, spatial_dims, groups), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class Down(nn.Module):
    """Max-pooling by ``factor`` followed by a :class:`ConvBlock` (Fig. 1, red then blue arrows)."""

    def __init__(self, spatial_dims: int, factor: tuple[int, ...], block: ConvBlock) -> None:
        super().__init__()
        self.pool = _POOL[spatial_dims](kernel_size=factor, stride=factor)
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.pool(x))


class Up(nn.Module):
    """Up-sampling that halves the channels, concatenation with the centre-cropped skip, a :class:`ConvBlock`.

    ``mode="transposed"`` is the paper's 2x2 up-convolution; ``"interpolate"`` is linear interpolation
    followed by a 1x1 convolution (no checkerboard artefacts, fewer parameters).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, factor: tuple[int, ...], mode: str, block: ConvBlock
    ) -> None:
        super().__init__()
        out_channels = in_channels // 2
        if mode == "transposed":
            self.up: nn.Module = _CONV_T[spatial_dims](in_channels, out_channels, factor, stride=factor)
        else:
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=factor, mode="bilinear" if spatial_dims == 2 else "trilinear"),
                _CONV[spatial_dims](in_channels, out_channels, 1),
            )
        self.block = block

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.block(torch.cat([center_crop(skip, x.shape[2:]), x], dim=1))


def center_crop(x: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Crop the spatial axes of ``x`` ``(B, C, *S)`` to ``shape``, keeping the centre (the paper's skip crop).

    The sizes are used as they come (no ``int()``), so a ``torch.jit.trace`` keeps them symbolic and one
    trace of the network runs at every valid size (the bioimage.io export relies on it).
    """
    slices = [slice(None), slice(None)]
    for size, target in zip(x.shape[2:], shape):
        start = (size - target) // 2
        slices.append(slice(start, start + target))
    return x[tuple(slices)]


def reflect_pad_to_multiple(x: torch.Tensor, multiple: tuple[int, ...]) -> tuple[torch.Tensor, list[int]]:
    """Pad the spatial axes of ``x`` ``(B, C, *S)`` by mirroring up to multiples of ``multiple``.

    Returns the padded tensor and the padding ``[before_0, after_0, before_1, ...]`` per axis (first
    spatial axis first). Reflection needs the padding to be smaller than the size; tiny inputs are
    padded by repeating the edge instead.
    """
    pads: list[int] = []
    for size, m in zip(x.shape[2:], multiple):
        total = (-int(size)) % m
        pads += [total // 2, total - total // 2]
    if not any(pads):
        return x, pads
    torch_pads: list[int] = []
    for axis in reversed(range(len(multiple))):  # F.pad starts from the last axis
        torch_pads += [pads[2 * axis], pads[2 * axis + 1]]
    reflectable = all(max(pads[2 * a], pads[2 * a + 1]) < int(x.shape[2 + a]) for a in range(len(multiple)))
    mode = "reflect" if reflectable else "replicate"
    return F.pad(x, torch_pads, mode=mode), pads


def he_init_(module: nn.Module) -> None:
    """He initialisation (std ``sqrt(2 / N)``, N the number of inputs of one output unit), zero biases.

    For a convolution N = in_channels x kernel volume.  For the 2x2 up-convolution with stride 2 every
    output unit sees exactly one kernel tap of every input channel, so N = in_channels.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fan_in = m.in_channels * math.prod(m.kernel_size)
        elif isinstance(m, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
            taps = math.prod(math.ceil(k / s) for k, s in zip(m.kernel_size, m.stride))
            fan_in = m.in_channels * taps
        else:
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm2d, nn.InstanceNorm3d)):
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
            continue
        nn.init.normal_(m.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
