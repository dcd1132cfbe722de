"""The U-Net (Ronneberger, Fischer and Brox, MICCAI 2015, arXiv:1505.04597), in 2D and 3D."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from biounet.model import sizes
from biounet.model.blocks import ConvBlock, Down, Up, center_crop, he_init_, reflect_pad_to_multiple
from biounet.model.config import UNetConfig


class UNet(nn.Module):
    """The U-Net: a contracting path, a bottleneck with dropout, and an expansive path with skips.

    ``UNet()`` is the paper's network (Fig. 1): 1 input channel, 2 classes, 64..1024 channels, unpadded
    3x3 convolutions, 23 convolution layers, 31,030,658 parameters, 572x572 -> 388x388.  Pass a
    :class:`UNetConfig` or its fields as keyword arguments::

        UNet()                                                    # the paper
        UNet(spatial_dims=3, in_channels=1, num_classes=3, base_channels=16,
             pool_factors=[(1, 2, 2), (1, 2, 2), 2, 2],
             kernel_sizes=[(1, 3, 3), (1, 3, 3), 3, 3, 3])       # anisotropic ssTEM stack
        UNet(padding="same", norm="batch", base_channels=32)     # any input size

    Why valid padding (the paper's choice): no output pixel depends on invented border values, so tiles
    predicted alone join without seams and equal a whole-image pass (see :mod:`biounet.tiling`); the
    price is an output smaller than the input and the size rule of :mod:`biounet.model.sizes`, which
    this class checks with a clear error.  Weights use He initialisation (std ``sqrt(2/N)``).

    ``forward`` takes ``(B, in_channels, *S)`` and returns logits ``(B, num_classes, *S_out)``: no softmax
    inside the model.  ``S_out = sizes.output_shape(config, S)`` (``S`` itself in "same" mode).
    """

    def __init__(self, config: UNetConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        if config is None:
            config = UNetConfig(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        d, ch = config.spatial_dims, config.channels

        def block(cin: int, cout: int, level: int) -> ConvBlock:
            return ConvBlock(d, cin, cout, config.kernel_sizes[level], config.padding, config.norm,
                             config.group_norm_groups)

        self.encoder_first = block(config.in_channels, ch[0], 0)
        self.down = nn.ModuleList(
            Down(d, config.pool_factors[level], block(ch[level], ch[level + 1], level + 1))
            for level in range(config.depth)
        )
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.up = nn.ModuleList(
            Up(d, ch[level + 1], config.pool_factors[level], config.upsampling, block(ch[level + 1], ch[level], level))
            for level in reversed(range(config.depth))
        )
        self.head = (nn.Conv2d if d == 2 else nn.Conv3d)(ch[0], config.num_classes, 1)
        self._pad_multiple = sizes.total_pool_factor(config)
        self._same = config.padding == "same"
        he_init_(self)

    @property
    def spatial_dims(self) -> int:
        return self.config.spatial_dims

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape (see :func:`biounet.model.sizes.output_shape`)."""
        return sizes.output_shape(self.config, input_shape)

    @property
    def halo(self) -> tuple[int, ...]:
        """Context per side and axis in pixels (92 for the paper); see :func:`biounet.model.sizes.halo`."""
        return sizes.halo(self.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *S)`` -> logits ``(B, num_classes, *S_out)``."""
        if not torch.jit.is_scripting() and not torch.jit.is_tracing():
            self._check_input(x)
        if self._same:
            padded, pads = reflect_pad_to_multiple(x, self._pad_multiple)
            logits = self.forward_unpadded(padded)
            return _unpad(logits, pads)
        return self.forward_unpadded(x)

    def forward_unpadded(self, x: torch.Tensor) -> torch.Tensor:
        """The network on ``x`` as it is: no input check, no padding to the pooling grid (sizes must fit)."""
        x = self.encoder_first(x)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        from biounet.errors import InvalidInputSizeError

        expected = 2 + self.config.spatial_dims
        if x.dim() != expected:
            raise InvalidInputSizeError(
                f"the U-Net is {self.config.spatial_dims}D and expects a {expected}D tensor "
                f"(B, C, {', '.join('ZYX'[-self.config.spatial_dims:])}), got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.config.in_channels:
            raise InvalidInputSizeError(
                f"the U-Net expects {self.config.in_channels} input channel(s), got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        sizes.check_input_shape(self.config, tuple(x.shape[2:]))


def _unpad(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Undo :func:`reflect_pad_to_multiple` on the spatial axes of ``x``."""
    if not any(pads):
        return x
    shape = [int(s) - pads[2 * a] - pads[2 * a + 1] for a, s in enumerate(x.shape[2:])]
    slices = [slice(None), slice(None)] + [slice(pads[2 * a], pads[2 * a] + n) for a, n in enumerate(shape)]
    return x[tuple(slices)]


__all__ = ["UNet", "UNetConfig", "center_crop"]
