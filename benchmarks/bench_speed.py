"""Speed where users spend their time: the default recipe's model on images, on a folder, and its training step.

Three tables, all with the model that ``biounet train`` makes by default (``TrainConfig().model``: 32 base
channels, depth 4, padding same, batch norm; random weights saved once), in bfloat16 where the CPU has it
(``biounet info``) and float32 otherwise:

- **images**: ``biounet.predict`` beside MONAI's ``sliding_window_inference`` with its defaults (overlap
  0.25, constant blending, one window per batch; window 512 px, channels_last, same weights and precision)
  and beside one plain forward of the whole image (channels_last + softmax: the floor, where it fits in
  memory), on 512, 2048 and 8192 px EM-like images.  Each in a fresh child process, timed after a warm-up
  call; up to 2048 px three rounds that alternate the methods, the median of the rounds (one run at 8192);
  peak RSS.  The probabilities of the three are compared too (max and mean
  absolute difference to the plain pass, away from a 64 px border), so "faster" is at equal output.
- **folder**: 84 DSB images of 256 x 256 px: ``biounet predict`` (one process, the model loaded once, every
  input checked first, float16 TIFF probabilities and sidecars written) vs a MONAI loop over the same files
  (read, normalise, sliding window of the image's size, softmax, the same TIFF written) and the floor (the
  network's forward + softmax of each image alone): images per second, imports and model loading not timed.
- **training step**: the default recipe's step (256 px tiles x 4, AdamW) split into data (tile sampling with
  elastic deformation, cutting the cached eq. 2 weight map with it), forward, backward and optimiser, and its
  training GFLOP/s against this run's peak (the best of matrix products and convolutions of the U-Net's widths).
  The trainer produces the batches in a background thread (``data.dataset.BatchProducer``), so a step waits for
  its data at most the "data" share.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_compute import gemm_peaks
from bench_inference import make_image
from common import SHARED_DATA, have, run_child

from biounet import UNet
from biounet.io.checkpoint import save_model
from biounet.runtime import cpu_has_bf16
from biounet.training.config import TrainConfig

CHILD = """
import json, resource, statistics, sys, time
import numpy as np, torch
from biounet.io.checkpoint import load_bundle
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.runtime import autocast, memory_format
args = json.loads(sys.argv[1] if len(sys.argv) > 1 else {args!r})
bundle = load_bundle(args["model"])
image = np.load(args["image"], mmap_mode="r")
device = torch.device("cpu")
precision = args["precision"]
fmt = memory_format(precision, device, 2)

def monai(image):
    from monai.inferers import sliding_window_inference
    model = bundle.model.eval().to(memory_format=fmt)
    x = torch.from_numpy(normalize(np.asarray(image)[None], NormalizationConfig()))[None]
    with torch.inference_mode(), autocast(precision, device):
        logits = sliding_window_inference(x, (args["roi"],) * 2, 1, lambda t: model(t.contiguous(memory_format=fmt)))
    return torch.softmax(logits.float(), dim=1)[0].numpy()

def plain(image):
    model = bundle.model.eval().to(memory_format=fmt)
    x = torch.from_numpy(normalize(np.asarray(image)[None], NormalizationConfig()))[None]
    with torch.inference_mode(), autocast(precision, device):
        logits = model(x.contiguous(memory_format=fmt))
    return torch.softmax(logits.float(), dim=1)[0].numpy()

def biounet(image):
    from biounet import predict
    return predict(bundle, image, precision=precision, progress=False)

method = {{"monai": monai, "plain": plain, "biounet": biounet}}[args["method"]]
times = []
for _ in range(args["repeats"]):
    start = time.perf_counter()
    probabilities = method(image)
    times.append(time.perf_counter() - start)
if args.get("save"):
    np.save(args["save"], probabilities[1].astype(np.float32))
print(json.dumps({{"seconds": times[-1],  # after a warm-up call when there are two
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def default_model(path: Path) -> Path:
    torch.manual_seed(0)
    return save_model(UNet(TrainConfig().model).eval(), path)


def images_table(tmp: Path, model: Path, precision: str, quick: bool) -> list[dict[str, Any]]:
    sizes = [256] if quick else [512, 2048, 8192]
    rows = []
    for size in sizes:
        image = tmp / f"image_{size}.npy"
        make_image(size, image)
        methods = ["biounet", "monai"] if have("monai") else ["biounet"]
        if size <= 2048:
            methods.append("plain")
        rounds: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
        for _ in range(1 if quick or size > 2048 else 3):  # rounds alternate the methods: a load that comes and goes
            for method in methods:                  # on a shared machine falls on all of them alike
                args = {"model": str(model), "image": str(image), "precision": precision, "method": method,
                        "roi": 512, "repeats": 2 if size <= 2048 else 1,
                        "save": str(tmp / f"{method}_{size}.npy") if size <= 2048 else None}
                rounds[method].append(run_child(CHILD.format(args=json.dumps(args)), timeout=7200))
        results = {method: {"seconds": float(np.median([r["seconds"] for r in runs])),
                            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs)} for method, runs in rounds.items()}
        reference = np.load(tmp / f"plain_{size}.npy") if "plain" in results else None
        for method, result in results.items():
            row = {"image": f"{size}x{size}", "method": _METHODS[method], "precision": precision,
                   "seconds": result["seconds"], "peak RSS MiB": result["peak_rss_mib"]}
            if reference is not None:
                p = np.load(tmp / f"{method}_{size}.npy")[64:-64, 64:-64]
                difference = np.abs(p - reference[64:-64, 64:-64])
                row["max / mean abs diff to plain"] = f"{difference.max():.3f} / {difference.mean():.4f}"
            rows.append(row)
        _ratios(rows, f"{size}x{size}")
    return rows


_METHODS = {"biounet": "biounet.predict", "monai": "MONAI sliding_window_inference",
            "plain": "plain forward of the whole image"}


def _ratios(rows: list[dict[str, Any]], image: str) -> None:
    """biounet's speed-up over MONAI and its cost over the plain pass, on the biounet row."""
    here = {row["method"]: row for row in rows if row["image"] == image}
    ours = here[_METHODS["biounet"]]
    if _METHODS["monai"] in here:
        ours["biounet speed-up vs MONAI"] = here[_METHODS["monai"]]["seconds"] / ours["seconds"]
    if _METHODS["plain"] in here:
        ours["biounet time / plain pass"] = ours["seconds"] / here[_METHODS["plain"]]["seconds"]


FOLDER_CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np, tifffile, torch
args = json.loads(sys.argv[1] if len(sys.argv) > 1 else {args!r})
if args["method"] == "monai":
    from monai.inferers import sliding_window_inference  # imported before the clock starts
from biounet.data.normalization import NormalizationConfig, normalize
from biounet.inference.files import plan_outputs
from biounet.inference.folder import predict_files
from biounet.inference.predictor import PredictOptions
from biounet.inference.sources import grey_from_rgb
from biounet.io.checkpoint import load_bundle
from biounet.io.images import read_image
from biounet.runtime import autocast, memory_format
files = [Path(p) for p in args["files"]]
out = Path(args["out"])
bundle = load_bundle(args["model"])  # imports and the model's loading are not timed, for either method
start = time.perf_counter()
if args["method"] == "biounet":
    plan = plan_outputs(files, bundle, out, ["probabilities"], "tif")
    predict_files(bundle, plan.inputs, PredictOptions(precision=args["precision"], progress=False))
elif args["method"] == "floor":  # the network alone: forward + softmax of each image, read and normalised before
    device = torch.device("cpu")
    fmt = memory_format(args["precision"], device, 2)
    model = bundle.model.eval().to(memory_format=fmt)
    images = [read_image(path) for path in files]
    images = [grey_from_rgb(image) if image.ndim == 3 else image for image in images]
    inputs = [torch.from_numpy(normalize(image[None].astype(np.float32), NormalizationConfig()))[None]
              for image in images]
    start = time.perf_counter()
    for x in inputs:
        with torch.inference_mode(), autocast(args["precision"], device):
            torch.softmax(model(x.contiguous(memory_format=fmt)).float(), dim=1)
else:
    device = torch.device("cpu")
    fmt = memory_format(args["precision"], device, 2)
    model = bundle.model.eval().to(memory_format=fmt)
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        image = read_image(path)
        if image.ndim == 3:  # DSB PNGs are RGB(A) of a grey image, as biounet reads them for a 1-channel model
            image = grey_from_rgb(image)
        x = torch.from_numpy(normalize(image[None].astype(np.float32), NormalizationConfig()))[None]
        with torch.inference_mode(), autocast(args["precision"], device):
            logits = sliding_window_inference(x, tuple(image.shape), 1,
                                              lambda t: model(t.contiguous(memory_format=fmt)))
        tifffile.imwrite(out / f"{{path.stem}}_probabilities.tif",
                         torch.softmax(logits.float(), dim=1)[0].numpy().astype(np.float16))
print(json.dumps({{"seconds": time.perf_counter() - start}}))
"""


def folder_table(tmp: Path, model: Path, precision: str, quick: bool) -> list[dict[str, Any]]:
    root = SHARED_DATA / "dsb2018_nuclei_fluo256" / "stage1_train"
    if not root.is_dir():
        return [{"what": f"skipped: {root.name} is not in the shared data"}]
    count = 6 if quick else 84
    files = [str(p) for p in sorted(root.glob("*/images/*.png"))[:count]]
    rows = []
    methods = ["biounet"] + (["monai"] if have("monai") else []) + ["floor"]
    seconds_of: dict[str, list[float]] = {method: [] for method in methods}
    for round_ in range(1 if quick else 3):  # alternating rounds, as for the images
        for method in methods:
            args = {"model": str(model), "precision": precision, "method": method, "files": files,
                    "out": str(tmp / f"folder_{method}_{round_}")}
            seconds_of[method].append(run_child(FOLDER_CHILD.format(args=json.dumps(args)), timeout=3600)["seconds"])
    for method in methods:
        seconds = float(np.median(seconds_of[method]))
        rows.append({"method": _FOLDER_METHODS[method],
                     "images": len(files), "precision": precision, "seconds": seconds,
                     "images/s": len(files) / seconds})
    if "monai" in methods:
        rows[0]["speed vs MONAI loop"] = rows[0]["images/s"] / rows[1]["images/s"]
    return rows


_FOLDER_METHODS = {"biounet": "biounet predict_files (batched)", "monai": "MONAI loop",
                   "floor": "floor: forward + softmax of each image, in memory (no reading, writing or checks)"}


def training_table(precision: str, quick: bool) -> list[dict[str, Any]]:
    """The default recipe's step, split; its training GFLOP/s against the best of this run's dense products."""
    from bench_augment import source_arrays
    from torch.utils.flop_counter import FlopCounterMode

    from biounet.augmentation import Augmenter
    from biounet.model import sizes
    from biounet.runtime import memory_format
    from biounet.training.recipes import recipe

    config = TrainConfig.from_dict(recipe("default"))
    tile = sizes.valid_input_shape(config.model, (64, 64) if quick else config.spatial_tile())
    out = sizes.output_shape(config.model, tile)
    fmt = memory_format(precision, torch.device("cpu"), 2)
    model = UNet(config.model).to(memory_format=fmt).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    image, label, weight = source_arrays()
    augmenter, rng = Augmenter(config.augmentation, spatial_dims=2), np.random.default_rng(0)
    bf16 = precision == "bf16"

    def data() -> tuple[torch.Tensor, torch.Tensor]:
        """The step's tiles: elastic deformation, flips, grey values, with labels and the eq. 2 weights."""
        tiles = [augmenter.sample(image, label, weight, rng.uniform(0, 512, 2), tile, out, rng)
                 for _ in range(config.batch_size)]
        x = torch.from_numpy(np.stack([t[0] for t in tiles])).to(memory_format=fmt)
        return x, torch.from_numpy(np.stack([t[1] for t in tiles]))

    x, y = data()
    parts: dict[str, list[float]] = {"data": [], "forward": [], "backward": [], "optimiser": []}
    for step in range(3 if quick else 8):
        t0 = time.perf_counter()
        x, y = data()
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if step:  # the first step warms up
            for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[name].append(seconds)
    medians = {name: float(np.median(values)) for name, values in parts.items()}
    step_s = sum(medians.values())
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x).float(), y).backward()
    peaks = gemm_peaks(quick)
    peak = max(value for key, value in peaks.items() if key.endswith(precision))
    gflops = counter.get_total_flops() / (step_s - medians["data"] - medians["optimiser"]) / 1e9
    row = {"step": f"default recipe, {tile[0]}x{tile[1]} x {config.batch_size}", "precision": precision,
           "step ms": 1000 * step_s}
    row.update({f"{name} %": 100 * seconds / step_s for name, seconds in medians.items()})
    row.update({"train GFLOP/s (fwd+bwd)": gflops, "peak GFLOP/s": peak, "% of peak": 100 * gflops / peak})
    return [row]


def run(quick: bool = False) -> dict[str, Any]:
    precision = "bf16" if cpu_has_bf16() else "fp32"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = default_model(tmp / "default.safetensors")
        images = images_table(tmp, model, precision, quick)
        folder = folder_table(tmp, model, precision, quick)
    training = training_table(precision, quick)
    notes = [f"Precision {precision}; the default recipe's model (32 base channels, depth 4, padding same, batch "
             "norm), random weights. Ratios > 1: biounet faster. Images: seconds after a warm-up call, the median of 3 "
             "rounds alternating the methods up to 2048 px (one run at 8192), each in a fresh process (peak RSS "
             "includes Python and torch, ~0.35 GB)."]
    return {"rows": images, "notes": notes, "tables": {
        "A folder of DSB images (256 x 256 px), float16 TIFF probabilities written": folder,
        "The default recipe's training step, split (medians of 7 steps after one warm-up)": training}}


if __name__ == "__main__":
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
