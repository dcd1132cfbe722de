"""The U-Net model: configuration, size arithmetic, building blocks and the network."""

from biounet.model.config import UNetConfig
from biounet.model.sizes import (
    halo,
    input_shape_for_output,
    is_valid_input_shape,
    min_input_shape,
    nearest_valid_sizes,
    output_shape,
    total_pool_factor,
    valid_input_shape,
)
from biounet.model.unet import UNet

__all__ = [
    "UNet",
    "UNetConfig",
    "halo",
    "input_shape_for_output",
    "is_valid_input_shape",
    "min_input_shape",
    "nearest_valid_sizes",
    "output_shape",
    "total_pool_factor",
    "valid_input_shape",
]
