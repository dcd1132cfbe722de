"""Inference: ``biounet predict`` vs MONAI's ``sliding_window_inference``, same network weights.

The network is the paper-sized U-Net (base 64, depth 4, 31 M parameters) with random weights saved
once.  biounet runs it as the paper does (valid padding, overlap-tile with mirrored borders; output
written progressively to a float16 ``.npy``) and also with padding "same" (the same weights, halo
crop).  MONAI's sliding window needs windows whose output has the input's size, so it runs the same
weights with padding "same", with its defaults (overlap 0.25, Gaussian blending) and a window of the
size biounet's memory budget picks for the valid model, holding image and output in memory (its
design).  Every measurement runs in a fresh subprocess: seconds (median of 3 for 512 px, else one
run, model loading excluded), megapixels per second and the child's peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import SHARED_DATA, have, run_child

from biounet import UNet
from biounet.io.checkpoint import save_model
from biounet.model import UNetConfig
from biounet.runtime import cpu_has_bf16
from biounet.tiling import context_margin, max_input_shape, plan_grid

CHILD_PREAMBLE = """
import json, resource, statistics, sys, time
import numpy as np, torch
from biounet.io.checkpoint import load_bundle
from biounet.model import UNet
args = json.loads(sys.argv[1] if len(sys.argv) > 1 else {args!r})
bundle = load_bundle(args["model"])
if args["padding"] == "same":
    same = UNet(bundle.config.replace(padding="same"))
    same.load_state_dict(bundle.model.state_dict())
    bundle.model = same.eval()
image = np.load(args["image"], mmap_mode="r")
def report(times, **extra):
    print(json.dumps({{"seconds": statistics.median(times),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}}))
"""

BIOUNET_CHILD = """
from biounet import predict
times = []
for _ in range(args["repeats"]):
    start = time.perf_counter()
    predict(bundle, image, precision=args["precision"], out=args["out"], progress=False)
    times.append(time.perf_counter() - start)
sidecar = json.load(open(args["out"] + ".json"))
report(times, tile=sidecar["settings"]["tile_input_shape"][0], batch=sidecar["settings"]["batch_size"])
"""

MONAI_CHILD = """
from monai.inferers import sliding_window_inference
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.runtime import autocast, memory_format
device = torch.device("cpu")
fmt = memory_format(args["precision"], device, 2)
model = bundle.model.to(memory_format=fmt)
def forward(x):
    return model(x.contiguous(memory_format=fmt))
times = []
for _ in range(args["repeats"]):
    start = time.perf_counter()
    x = torch.from_numpy(normalize(np.asarray(image)[None], NormalizationConfig()))[None]
    with torch.inference_mode(), autocast(args["precision"], device):
        logits = sliding_window_inference(x, (args["roi"], args["roi"]), 1, forward, overlap=0.25, mode="gaussian")
    probs = torch.softmax(logits.float(), dim=1)[0].numpy()
    times.append(time.perf_counter() - start)
report(times, tile=args["roi"], batch=1)
"""


def make_image(size: int, path: Path) -> None:
    """A ``size x size`` uint8 EM-like image: the ISBI slice 0 mirrored to size (random if the data are absent)."""
    source = SHARED_DATA / "isbi2012_em" / "train" / "image" / "0.png"
    if source.is_file():
        from biounet.io.images import read_image

        tile = read_image(source)
        reps = -(-size // tile.shape[0])
        image = np.pad(
            tile,
            [(0, reps * tile.shape[0] - tile.shape[0]), (0, reps * tile.shape[1] - tile.shape[1])],
            mode="symmetric",
        )[:size, :size]
    else:
        image = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size, size))
    out[:] = image
    out.flush()


def measure(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    code = CHILD_PREAMBLE.format(args=json.dumps(args)) + (BIOUNET_CHILD if kind == "biounet" else MONAI_CHILD)
    return run_child(code, timeout=7200)


def run(quick: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    config = UNetConfig(base_channels=8, depth=3) if quick else UNetConfig()
    sizes = [192] if quick else [512, 2048, 8192]
    if os.environ.get("BIOUNET_BENCH_INFERENCE_SIZES") and not quick:  # e.g. "512,2048": skip the long 8192 rows
        sizes = [int(n) for n in os.environ["BIOUNET_BENCH_INFERENCE_SIZES"].split(",")]
    precisions = ["fp32"] + (["bf16"] if cpu_has_bf16() else [])
    rows: list[dict[str, Any]] = []
    notes = [
        "Network: "
        + ("a small U-Net (quick mode)" if quick else "the paper's U-Net (base 64, depth 4, 31 M parameters)")
        + ", random weights, 1 input channel, 2 classes.",
        "biounet valid = the paper's overlap-tile strategy (tiled result equals one pass over the whole mirrored "
        "image), output written progressively to a float16 .npy; biounet same = same weights, padding 'same', "
        "halo crop; MONAI = sliding_window_inference, same weights with padding 'same', overlap 0.25, Gaussian "
        "blending, window = biounet's tile, image and output in memory.",
        "Peak RSS: of a fresh child process per row (includes Python, torch and the model, ~0.35 GB).",
    ]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model_path = save_model(UNet(config).eval(), tmp / "model.safetensors")
        for size in sizes:
            image = tmp / f"image_{size}.npy"
            make_image(size, image)
            big = size >= 8192
            for precision in precisions:
                if big and len(precisions) > 1 and precision == "fp32":
                    continue  # 8192 px in fp32 takes ~20 min per row on 2 cores; bf16 shows the memory bound
                tile = plan_grid(
                    config,
                    (size, size),
                    max_input_shape(config, (size, size), context_margin(config), precision, torch.device("cpu")),
                ).input_shape[0]
                args = {
                    "model": str(model_path),
                    "image": str(image),
                    "precision": precision,
                    "repeats": 3 if size <= 512 else 1,
                    "out": str(tmp / "out.npy"),
                }
                methods = [("biounet valid", "biounet", "valid")]
                if not big:
                    methods.append(("biounet same", "biounet", "same"))
                if have("monai"):
                    methods.append(("MONAI sliding window", "monai", "same"))
                for name, kind, padding in methods:
                    roi = min(size, tile // 16 * 16)
                    result = measure(kind, {**args, "padding": padding, "roi": roi})
                    rows.append(
                        {
                            "image": f"{size}x{size}",
                            "method": name,
                            "precision": precision,
                            "tile": result.get("tile", roi),
                            "seconds": result["seconds"],
                            "MPix/s": size * size / 1e6 / result["seconds"],
                            "peak RSS MiB": result["peak_rss_mib"],
                        }
                    )
        if not have("monai"):
            notes.append("MONAI is not installed: its rows are missing (make bench installs monai==1.6.1).")
    _add_ratios(rows)
    return {"rows": rows, "notes": notes}


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """Speed of each row relative to MONAI at the same size and precision (>1: faster than MONAI)."""
    for row in rows:
        peer = next(
            (
                r
                for r in rows
                if r["method"].startswith("MONAI") and r["image"] == row["image"] and r["precision"] == row["precision"]
            ),
            None,
        )
        row["speed vs MONAI"] = peer["seconds"] / row["seconds"] if peer else ""


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
