"""Effective GFLOP/s of biounet's forward pass and training step, as a fraction of this machine's peak.

The peak is measured in the same run, as the fastest of several dense products on all threads after
warm-up: matrix products through ``torch.mm`` (MKL) of three sizes, and 1x1 and 3x3 convolutions of the
widths and sizes the U-Net's levels use, in channels_last layout through oneDNN, the library behind
PyTorch's CPU convolutions; each in float32 and bfloat16 (:data:`CONV_SHAPES`). oneDNN's 3x3 convolution is
usually the fastest of the three, so a U-Net cannot read above 100 % of a peak that only counted
``torch.mm``. FLOPs of the U-Net are counted with ``torch.utils.flop_counter`` (a multiply-add counts
as 2 FLOPs).
"""

from __future__ import annotations

import torch
from common import median_seconds
from torch.utils.flop_counter import FlopCounterMode

from biounet import UNet
from biounet.runtime import cpu_has_bf16

#: Shapes whose fastest run is this machine's peak: matrix products, and convolutions of the widths the U-Net
#: uses at the sizes its levels see (32 channels at 512 px ... 512 at 32 px), plus a wide 3x3 and a 1x1.
MM_SIZES = (1024, 2048, 4096)
CONV_SHAPES = ((3, 32, 512), (3, 64, 256), (3, 128, 128), (3, 256, 64), (3, 512, 32), (3, 256, 256), (1, 1024, 128))
QUICK_MM_SIZES, QUICK_CONV_SHAPES = (256, 512), ((3, 32, 64), (3, 64, 32), (1, 128, 32))


def gemm_peaks(quick: bool) -> dict[str, float]:
    """GFLOP/s of the best matrix product (``mm_*``), 1x1 (``conv1x1_*``) and 3x3 convolution (``conv3x3_*``).

    Each kind is the best over several shapes, each after two warm-up calls and taken as the median of five:
    on a shared machine one shape alone read from 334 to 871 GFLOP/s on different days, the best of several
    taken in the same run is the honest divisor for a figure measured in that run.
    """
    out: dict[str, float] = {}
    dtypes = {"fp32": torch.float32}
    if cpu_has_bf16():
        dtypes["bf16"] = torch.bfloat16
    mm_sizes, conv_shapes = (QUICK_MM_SIZES, QUICK_CONV_SHAPES) if quick else (MM_SIZES, CONV_SHAPES)

    def gflops(flops: float, fn) -> float:
        return flops / median_seconds(fn, repeats=5, warmup=2) / 1e9

    for name, dtype in dtypes.items():
        for n in mm_sizes:
            a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
            best = max(out.get(f"mm_{name}", 0.0), gflops(2 * n**3, lambda a=a, b=b: torch.mm(a, b)))
            out[f"mm_{name}"] = best
        for kernel, channels, side in conv_shapes:
            x = torch.randn(1, channels, side, side, dtype=dtype).to(memory_format=torch.channels_last)
            w = torch.randn(channels, channels, kernel, kernel, dtype=dtype).to(memory_format=torch.channels_last)
            flops = 2 * channels * channels * kernel * kernel * side * side
            key = f"conv{kernel}x{kernel}_{name}"
            measured = gflops(flops, lambda x=x, w=w, pad=kernel // 2: torch.nn.functional.conv2d(x, w, padding=pad))
            out[key] = max(out.get(key, 0.0), measured)
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
    peaks = gemm_peaks(quick)
    unet = unet_throughput(64 if quick else 512, repeats=2 if quick else 5)
    rows = []
    for name in ("fp32", "bf16"):
        if f"forward_s_{name}" not in unet:
            continue
        peak = max(peaks[f"mm_{name}"], peaks[f"conv1x1_{name}"], peaks[f"conv3x3_{name}"])
        rows.append({
            "precision": name,
            "forward GFLOP/s": unet[f"forward_gflops_{name}"],
            "forward % of peak": 100 * unet[f"forward_gflops_{name}"] / peak,
            "train GFLOP/s": unet[f"train_gflops_{name}"],
            "train % of peak": 100 * unet[f"train_gflops_{name}"] / peak,
            "peak GFLOP/s (mm / 1x1 / 3x3 conv)": " / ".join(
                f"{peaks[f'{op}_{name}']:.0f}" for op in ("mm", "conv1x1", "conv3x3")
            ),
        })
    return {"peaks": peaks, "unet": unet, "rows": rows}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
