"""What the anisotropic layout of a 3D U-Net buys on ssTEM spacing: parameters, step time, context in z.

    python benchmarks/anisotropic_layout.py [DEPTH] [BASE]

For the spacing of the shared VNC stack, ``(50, 4.6, 4.6)`` nm, the plain 3D layout (pool 2 and 3-voxel
kernels on every axis) against :func:`biounet.model.anisotropy.anisotropic_layout`: parameters, the total
pooling per axis, the mean seconds of a training step (forward and backward, same padding, group norm, fp32,
one ``12x128x128`` tile: 128 in-plane pixels and about as many nm in z), and for valid padding the smallest
input and the halo per axis (a plain valid network needs more sections than a 12-section stack holds).
"""

from __future__ import annotations

import sys
import time

import torch

from biounet.model import UNet, UNetConfig, sizes
from biounet.model.anisotropy import anisotropic_layout

SPACING = (50.0, 4.6, 4.6)
TILE = (12, 128, 128)


def step_seconds(net: torch.nn.Module, repeats: int = 3) -> float:
    x = torch.randn(1, 1, *TILE)
    net(x).sum().backward()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        net.zero_grad()
        net(x).sum().backward()
    return (time.perf_counter() - started) / repeats


def main(depth: int = 3, base: int = 8) -> None:
    pools, kernels = anisotropic_layout(SPACING, depth)
    for name, layout in (("plain", {}), ("anisotropic", {"pool_factors": pools, "kernel_sizes": kernels})):
        config = UNetConfig(spatial_dims=3, depth=depth, base_channels=base, padding="same", norm="group", **layout)
        net = UNet(config)
        valid = config.replace(padding="valid")
        print(f"{name:12s} {sum(p.numel() for p in net.parameters()):>9,} parameters, pooling "
              f"{'x'.join(map(str, sizes.total_pool_factor(config)))}, {step_seconds(net):.2f} s/step "
              f"({'x'.join(map(str, TILE))}, {torch.get_num_threads()} threads); valid padding: smallest input "
              f"{'x'.join(map(str, sizes.valid_input_shape(valid, (1, 1, 1))))}, halo "
              f"{'x'.join(map(str, sizes.halo(valid)))}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
