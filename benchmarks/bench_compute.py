"""Effective GFLOP/s of biounet's forward pass and training step, as a fraction of this machine's GEMM peak.

The peak is measured in the same run: a square matrix product through ``torch.mm`` (MKL) and a 1x1
convolution in channels_last layout (oneDNN, the library behind PyTorch's CPU convolutions), in
float32 and bfloat16. FLOPs of the U-Net are counted with ``torch.utils.flop_counter`` (a multiply-add
counts as 2 FLOPs).
"""

from __future__ import annotations

import torch
from common import median_seconds
from torch.utils.flop_counter import FlopCounterMode

from biounet import UNet
from biounet.runtime import cpu_has_bf16


def gemm_peaks(n: int) -> dict[str, float]:
    """GFLOP/s of an n x n x n matrix product (torch.mm) and of the same GEMM as a 1x1 conv (oneDNN)."""
    out: dict[str, float] = {}
    dtypes = {"fp32": torch.float32}
    if cpu_has_bf16():
        dtypes["bf16"] = torch.bfloat16
    flops = 2 * n**3
    for name, dtype in dtypes.items():
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        out[f"mm_{name}"] = flops / median_seconds(lambda a=a, b=b: torch.mm(a, b), repeats=5) / 1e9
        side = int(n**0.5)
        x = torch.randn(1, n, side, side, dtype=dtype).to(memory_format=torch.channels_last)
        w = torch.randn(n, n, 1, 1, dtype=dtype).to(memory_format=torch.channels_last)
        conv_flops = 2 * n * n * side * side
        out[f"conv1x1_{name}"] = conv_flops / median_seconds(
            lambda x=x, w=w: torch.nn.functional.conv2d(x, w), repeats=5
        ) / 1e9
    return out


def unet_throughput(size: int, repeats: int) -> dict[str, float]:
    """Forward and training-step GFLOP/s of the padded paper U-Net on a ``size``^2 tile, per precision."""
    model = UNet(padding="same")
    x = torch.randn(1, 1, size, size)
    target = torch.randint(0, 2, (1, size, size))
    with FlopCounterMode(display=False) as counter:
        model(x)
    forward_flops = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), target).backward()
    train_flops = counter.get_total_flops()
    results = {"forward_gflop": forward_flops / 1e9, "train_gflop": train_flops / 1e9}
    variants = [("fp32", None)] + ([("bf16", torch.bfloat16)] if cpu_has_bf16() else [])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.99)
    for name, dtype in variants:
        fmt = torch.channels_last if dtype is not None else torch.contiguous_format
        model = model.to(memory_format=fmt)
        xin = x.to(memory_format=fmt)

        def forward(dtype=dtype, xin=xin, model=model):
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                model.eval()(xin)

        def step(dtype=dtype, xin=xin, model=model):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                logits = model(xin)
            torch.nn.functional.cross_entropy(logits.float(), target).backward()
            optimizer.step()

        results[f"forward_s_{name}"] = median_seconds(forward, repeats=repeats)
        results[f"train_s_{name}"] = median_seconds(step, repeats=repeats)
        results[f"forward_gflops_{name}"] = forward_flops / results[f"forward_s_{name}"] / 1e9
        results[f"train_gflops_{name}"] = train_flops / results[f"train_s_{name}"] / 1e9
    return results


def run(quick: bool = False) -> dict:
    torch.manual_seed(0)
    peaks = gemm_peaks(512 if quick else 4096)
    unet = unet_throughput(64 if quick else 512, repeats=2 if quick else 5)
    rows = []
    for name in ("fp32", "bf16"):
        if f"forward_s_{name}" not in unet:
            continue
        peak = max(peaks[f"mm_{name}"], peaks[f"conv1x1_{name}"])
        rows.append({
            "precision": name,
            "forward GFLOP/s": unet[f"forward_gflops_{name}"],
            "forward % of peak": 100 * unet[f"forward_gflops_{name}"] / peak,
            "train GFLOP/s": unet[f"train_gflops_{name}"],
            "train % of peak": 100 * unet[f"train_gflops_{name}"] / peak,
            "GEMM peak GFLOP/s (mm / oneDNN)": f"{peaks[f'mm_{name}']:.0f} / {peaks[f'conv1x1_{name}']:.0f}",
        })
    return {"peaks": peaks, "unet": unet, "rows": rows}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
