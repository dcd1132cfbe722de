"""The demo: biounet's whole job on synthetic microscopy, offline, in a few minutes on a CPU.

:func:`run_demo` generates data with :mod:`biounet.data.synthetic`, trains with
:mod:`biounet.training`, segments a large image with :func:`biounet.inference.predictor.predict`,
evaluates with :mod:`biounet.metrics` and writes a report with :mod:`biounet.report`.  Every stage is
the same code a user runs on real data; only the data are synthetic.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from biounet.pipeline import TargetDescription

log = logging.getLogger("biounet.demo")

#: The demo's differences from the default recipe: a network small enough to learn in minutes on a CPU,
#: with the paper's valid padding (the overlap-tile inference it shows off) and without the weight average
#: (``optim.ema``), as the demo's numbers in the README were measured; the time budget is the only end.
DEMO_OVERRIDES: dict[str, Any] = {
    "model": {"depth": 3, "base_channels": 16, "padding": "valid"},
    "tile_shape": [252],
    "steps": None,
    "val_every": 150,
    "optim": {"lr": 2e-3, "warmup_steps": 50, "ema": None},
}

STYLE_TARGETS: dict[str, dict[str, Any]] = {
    "nuclei": {"kind": "instances", "style": "touching", "boundary_width": 1},
    "membrane": {"kind": "instances", "style": "membrane", "membrane_value": 0},
}


@dataclass
class DemoSettings:
    """What the demo does; see ``biounet demo --help``.

    Attributes:
        out: output folder.
        minutes: training budget per style, wall-clock minutes.
        size: side of the large test image, pixels.
        styles: ``"nuclei"`` and/or ``"membrane"``.
        train_images: training images per style (256 x 256 each); validation uses 3 more.
        seed: seeds data and training.
        progress: show progress bars.
    """

    out: Path = Path("demo-output")
    minutes: float = 3.0
    size: int = 2048
    styles: tuple[str, ...] = ("nuclei", "membrane")
    train_images: int = 16
    seed: int = 0
    progress: bool = True


@dataclass
class StyleResult:
    """One style's outcome: metrics, timings, pictures."""

    style: str
    metrics: dict[str, float]
    timings: dict[str, float]
    history: list[dict[str, Any]]
    image: np.ndarray
    ground_truth: np.ndarray
    prediction: np.ndarray
    instances: np.ndarray
    run_dir: Path
    extra: dict[str, Any] = field(default_factory=dict)


def run_demo(settings: DemoSettings) -> Path:
    """Run the demo; returns the path of the HTML report (biounet's log on stderr meanwhile, then as before)."""
    from biounet.runtime import console_logging

    with console_logging(fmt="%(message)s"):
        return _run_demo(settings)


def _run_demo(settings: DemoSettings) -> Path:
    started = time.perf_counter()
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for index, style in enumerate(settings.styles):
        _say(f"[{index + 1}/{len(settings.styles)}] {style}: generating data, training "
             f"{settings.minutes:g} min, segmenting a {settings.size}x{settings.size} image")
        results.append(run_style(style, settings, seed=settings.seed + 1000 * index))
    total = time.perf_counter() - started
    report = write_demo_report(out, results, settings, total)
    _say(f"done in {total / 60:.1f} min")
    for result in results:
        _say(f"{result.style}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()))
    return report


def run_style(style: str, settings: DemoSettings, seed: int) -> StyleResult:
    """Generate, train, segment, separate and evaluate one synthetic style."""
    from biounet.data.synthetic import generate, generate_dataset
    from biounet.io.images import write_image

    timings: dict[str, float] = {}
    data_dir = settings.out / "data" / style
    t = time.perf_counter()
    generate_dataset(data_dir / "train", style, settings.train_images, (256, 256), seed)
    generate_dataset(data_dir / "val", style, 3, (256, 256), seed + 500)
    image, truth = generate(style, (settings.size, settings.size), seed + 900)
    write_image(data_dir / "large" / f"{style}_large.tif", image)
    write_image(data_dir / "large" / f"{style}_large_truth.tif", truth.astype(np.uint32))
    timings["data generation"] = time.perf_counter() - t

    run_dir = settings.out / "runs" / style
    t = time.perf_counter()
    history = train_style(style, data_dir, run_dir, settings, seed)
    timings["training"] = time.perf_counter() - t

    from biounet.inference.instances import instance_target, instances_from_probabilities
    from biounet.inference.predictor import predict
    from biounet.io.checkpoint import load_bundle

    bundle = load_bundle(run_dir)
    t = time.perf_counter()
    probabilities = predict(bundle, image, output="probabilities", progress=settings.progress)
    timings["overlap-tile inference"] = time.perf_counter() - t
    t = time.perf_counter()
    seeds = instance_target(bundle)  # the seed settings validation chose
    instances = instances_from_probabilities(
        probabilities, seeds.interior_class, seeds.foreground_classes, seeds.threshold, seeds.min_size,
        seed_height=seeds.seed_height, distance_channel=seeds.distance_channel,
        foreground_threshold=seeds.foreground_threshold,
    )
    timings["instance separation"] = time.perf_counter() - t
    t = time.perf_counter()
    metrics = evaluate_style(style, truth, probabilities, instances, bundle.pipeline.target)
    timings["evaluation"] = time.perf_counter() - t
    metrics["inference MPix/s"] = image.size / 1e6 / timings["overlap-tile inference"]
    prediction = np.argmax(probabilities[: seeds.distance_channel], axis=0).astype(np.uint8)
    return StyleResult(style, metrics, timings, history, image, truth, prediction, instances, run_dir)


def train_style(style: str, data_dir: Path, run_dir: Path, settings: DemoSettings, seed: int) -> list[dict]:
    """Train the demo network on one style; returns the training history rows."""
    from biounet.training.config import TrainConfig, merge
    from biounet.training.recipes import recipe
    from biounet.training.trainer import clear_run_dir, train

    layers = merge(recipe("default"), DEMO_OVERRIDES)
    layers = merge(layers, {
        "data": {
            "layout": "folders",
            "images": str(data_dir / "train" / "images"),
            "masks": str(data_dir / "train" / "masks"),
            "val_images": str(data_dir / "val" / "images"),
            "val_masks": str(data_dir / "val" / "masks"),
            "target": STYLE_TARGETS[style],
        },
        "max_minutes": settings.minutes,
        "seed": seed,
    })
    config = TrainConfig.from_dict(layers, where=f"demo ({style})")
    clear_run_dir(run_dir)
    result = train(config, run_dir, progress=settings.progress)
    return list(result.history.rows)


def evaluate_style(
    style: str, truth: np.ndarray, probabilities: np.ndarray, instances: np.ndarray, target: TargetDescription
) -> dict[str, float]:
    """The metrics that fit the style: instance matching for both, the ISBI metrics for membranes."""
    from biounet import metrics

    interior = probabilities[target.interior_class]
    if style == "membrane":
        gt_cells = truth.astype(np.int64)
        rand = metrics.adapted_rand_error(gt_cells, instances)
        predicted_interior = interior > 0.5
        return {
            "adapted Rand error": rand.error,
            "Rand split score": rand.split,
            "Rand merge score": rand.merge,
            "warping error": metrics.warping_error(gt_cells > 0, predicted_interior).error,
            "pixel error": metrics.pixel_error(gt_cells > 0, predicted_interior),
            "cell F1 @ IoU 0.5": metrics.match_instances(gt_cells, instances, iou_threshold=0.5).f1,
        }
    gt_foreground = truth > 0
    predicted_foreground = instances > 0
    union = np.logical_or(gt_foreground, predicted_foreground).sum()
    return {
        "foreground IoU": float(np.logical_and(gt_foreground, predicted_foreground).sum() / max(union, 1)),
        "F1 @ IoU 0.5": metrics.match_instances(truth, instances, iou_threshold=0.5).f1,
        "DSB average precision": metrics.average_precision_dsb(truth, instances).value,
        "nuclei in truth": float(len(np.unique(truth)) - 1),
        "nuclei found": float(len(np.unique(instances)) - 1),
    }


def write_demo_report(out: Path, results: list[StyleResult], settings: DemoSettings, total: float) -> Path:
    """One report for all styles, plus ``metrics.json``."""
    from biounet.io.atomic import write_json_atomic
    from biounet.report import OverlayPanel, Report, write_report

    panels = [
        OverlayPanel(name=f"{r.style}: {settings.size}x{settings.size} test image", image=r.image,
                     ground_truth=r.ground_truth, prediction=r.prediction, instances=r.instances)
        for r in results
    ]
    rows = [{"style": r.style, "metric": name, "value": value} for r in results for name, value in r.metrics.items()]
    timings = {f"{r.style}: {name}": seconds for r in results for name, seconds in r.timings.items()}
    timings["total"] = total
    report = Report(
        title="biounet demo: synthetic nuclei and membranes",
        runs={r.style: r.history for r in results},
        panels=panels,
        metrics=rows,
        timings=timings,
        config={"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(settings).items()},
                "overrides of the default recipe": DEMO_OVERRIDES},
        notes=[
            "Data: biounet.data.synthetic (generated, with exact ground truth). "
            f"Training: {settings.minutes:g} min per style on this machine.",
            "Instances: seeds = connected components of P(interior) above the threshold validation chose, grown "
            "by watershed into the predicted foreground (nuclei: the foreground probability above the threshold "
            "validation chose) or over the whole image (membranes, as in ISBI 2012).",
        ],
    )
    write_json_atomic(out / "metrics.json", {"metrics": {r.style: r.metrics for r in results}, "timings": timings})
    return write_report(out, report)


def _say(message: str) -> None:
    print(f"biounet demo: {message}", file=sys.stderr, flush=True)


def load_metrics(out: Path) -> dict[str, Any]:
    """Read the ``metrics.json`` a demo run wrote."""
    return json.loads((out / "metrics.json").read_text())
