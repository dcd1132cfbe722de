"""How close to the DSB annotation must a segmentation be for the issue's mean AP, and can post-processing get there?

    python benchmarks/dsb_tolerance.py [RUN_DIR ...] [--tta 8]

1. **The truth moved by one pixel.** The validation truth (the last 20 % of the shared DSB images) shifted by
   one pixel, every nucleus grown by one pixel into the background, or shrunk by one pixel, scored against the
   unchanged truth with the DSB mean AP over IoU 0.5..0.95: what a segmentation whose outlines are one pixel off
   everywhere would score. The nuclei are small (median 115 px), so one pixel is much of their IoU.
2. **Post-processing of a trained model** (each ``RUN_DIR``): the validation images' probabilities (``--tta``
   transforms averaged), made into instances over a grid of seed thresholds, smallest seeds, seed heights
   and foreground thresholds wider than validation's: the mean AP of the model's own (validation-chosen)
   setting, of the best single setting of the grid (chosen on these images: optimistic), and of the best setting
   *per image* chosen against its truth (an oracle no real choice can reach: an upper bound of what choosing
   the post-processing can give this model), beside the setting training validation's search
   (:func:`biounet.training.validation.instance_metrics`) chooses on the same images, with and without its
   foreground thresholds.  F1 at IoU 0.5 too, with its own per-image oracle: the most any choice of the
   post-processing can give the detection score.

Scores: :mod:`biounet.metrics`; one table of object overlaps per image and setting (F1 = 2 AP50 / (1 + AP50) per
image: both count the same matches at IoU 0.5).  Measurements in ``docs/recipes.md``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from bench_accuracy import dsb_samples, dsb_split
from bench_specialists import raw_images
from scipy import ndimage

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig, touching_target
from biounet.metrics.matching import DSB_IOU_THRESHOLDS, average_precision_dsb

THRESHOLDS = (0.1, 0.2, 0.3, 0.5, 0.7)
MIN_SIZES = (16, 32, 48, 64)
SEED_HEIGHTS = (0.0, 0.3, 0.5)
FOREGROUND = (0.4, 0.5, 0.6)
"""The grid of part 2: seed threshold, smallest seed (px), seed height, foreground threshold."""


def per_threshold(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``TP / (TP + FP + FN)`` at each DSB IoU threshold, ``(10,)``."""
    return np.array(average_precision_dsb(gt, np.asarray(pred, dtype=np.int32)).per_threshold)


def shifted(labels: np.ndarray) -> np.ndarray:
    """Every object moved one pixel right (the image's last column wraps to its first)."""
    return np.roll(labels, 1, axis=1)


def grown(labels: np.ndarray) -> np.ndarray:
    """Every object grown by one pixel (4-neighbours) into the background; objects keep their pixels."""
    dilated = ndimage.grey_dilation(labels, footprint=ndimage.generate_binary_structure(2, 1))
    return np.where(labels > 0, labels, dilated)


def shrunk(labels: np.ndarray) -> np.ndarray:
    """Every object without its outer pixel ring: the interior class of the 3-class training target (a pixel with
    a 4-neighbour of another label is boundary; the image edge is not)."""
    return np.where(touching_target(labels, 1) == 1, labels, 0)


def f1_scores(scores: np.ndarray) -> np.ndarray:
    """F1 at IoU 0.5 per image (and setting) of the per-threshold scores ``(..., 10)``: ``2 a / (1 + a)`` of
    AP50 ``a = TP / (TP + FP + FN)``, which is ``2 TP / (2 TP + FP + FN)``."""
    return 2 * scores[..., 0] / (1 + scores[..., 0])


def table_row(name: str, scores: np.ndarray) -> str:
    """A markdown row: F1 at IoU 0.5, the mean AP and the AP at each IoU threshold of ``scores`` ``(images, 10)``."""
    per = scores.mean(axis=0)
    return (f"| {name} | {f1_scores(scores).mean():.3f} | **{per.mean():.3f}** | "
            + " | ".join(f"{v:.2f}" for v in per) + " |")


def model_rows(run_dir: str, images: list[np.ndarray], samples: list[Sample], tta: int
               ) -> tuple[list[str], list[str]]:
    """Part 2 for the model of ``run_dir``: its table rows, and lines with the best mean AP at each value of each
    setting (the other settings free), which show where the grid's best lies."""
    from biounet.inference.instances import foreground_mask, instance_target, instances_from_interior
    from biounet.inference.predictor import predict
    from biounet.io.checkpoint import load_bundle
    from biounet.pipeline import DEFAULT_FOREGROUND_THRESHOLD
    from biounet.training.validation import FOREGROUND_THRESHOLDS, instance_metrics

    bundle, model_name = load_bundle(run_dir), Path(run_dir).name
    target = instance_target(bundle)  # the model's settings, as biounet predict resolves them
    probs = [predict(bundle, image, output="probabilities", channel_axis="none", tta=tta, progress=False)
             for image in images]
    own = (target.threshold, target.min_size, target.seed_height, target.foreground_threshold)
    searched = []
    for foreground_thresholds in ((DEFAULT_FOREGROUND_THRESHOLD,), FOREGROUND_THRESHOLDS):  # validation's search
        chosen, _, _ = instance_metrics(samples, probs, TargetConfig("instances"),
                                        foreground_thresholds=foreground_thresholds)
        searched.append(tuple(chosen[k] for k in ("threshold", "min_size", "seed_height", "foreground_threshold")))
    grid = [own, *searched, *itertools.product(THRESHOLDS, MIN_SIZES, SEED_HEIGHTS, FOREGROUND)]
    truths = [sample.target.instances for sample in samples]
    scores = np.zeros((len(grid), len(images), len(DSB_IOU_THRESHOLDS)))
    for i, (p, gt) in enumerate(zip(probs, truths, strict=True)):
        interior = p[target.interior_class]
        masks = {fg: foreground_mask(p, target.foreground_classes, fg) for fg in {g[3] for g in grid}}
        for g, (threshold, min_size, height, fg) in enumerate(grid):
            labels = instances_from_interior(interior, masks[fg], threshold=threshold, min_size=min_size,
                                             seed_height=height)
            scores[g, i] = per_threshold(gt, labels)
    means = scores.mean(axis=2)  # (settings, images)
    overall = means.mean(axis=1)
    best = int(np.argmax(overall))
    oracle = scores[np.argmax(means, axis=0), np.arange(len(images))]
    f1_oracle = scores[np.argmax(f1_scores(scores), axis=0), np.arange(len(images))]
    t, m, h, f = grid[best]
    axes = [(setting, values, [g[k] for g in grid]) for k, (setting, values) in
            enumerate((("seed threshold", THRESHOLDS), ("smallest seed", MIN_SIZES), ("seed height", SEED_HEIGHTS),
                       ("foreground threshold", FOREGROUND)))]
    notes = []
    for setting, values, column in axes:
        best_with = [max(overall[g] for g in range(3, len(grid)) if column[g] == v) for v in values]
        notes.append(f"{model_name}: best mean AP by {setting}: " + ", ".join(f"{v}: {b:.3f}" for v, b in
                                                                       zip(values, best_with)))

    def described(values: tuple) -> str:
        threshold, min_size, height, foreground = values
        return f"{threshold:g}, {min_size} px, height {height:g}, foreground {foreground:g}"

    return [table_row(f"{model_name}, TTA {tta}: its own setting ({described(own)})", scores[0]),
            table_row(f"validation's search, foreground 0.5 ({described(searched[0])})", scores[1]),
            table_row(f"validation's search with its foreground thresholds ({described(searched[1])})", scores[2]),
            table_row(f"the best single setting of the grid ({described((t, m, h, f))})", scores[best]),
            table_row("the best setting per image by mean AP, chosen against its truth (an upper bound)", oracle),
            table_row("the best setting per image by F1, chosen against its truth (an upper bound)", f1_oracle),
            ], notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", help="run folders of DSB models (part 2)")
    parser.add_argument("--tta", type=int, default=1, choices=(1, 2, 4, 8))
    args = parser.parse_args(argv)
    _, names = dsb_split(False)
    samples, _ = dsb_samples(names)
    truths = [sample.target.instances for sample in samples]
    print("| segmentation | F1 | mean AP | " + " | ".join(f"{t:.2f}" for t in DSB_IOU_THRESHOLDS) + " |")
    print("|---|---|---|" + "---|" * len(DSB_IOU_THRESHOLDS))
    for name, change in (("the truth shifted by 1 px", shifted), ("every nucleus grown by 1 px", grown),
                         ("every nucleus shrunk by 1 px", shrunk)):
        print(table_row(name, np.array([per_threshold(gt, change(gt)) for gt in truths])), flush=True)
    images = raw_images(names) if args.runs else []
    notes = []
    for run_dir in args.runs:
        rows, more = model_rows(run_dir, images, samples, args.tta)
        print("\n".join(rows), flush=True)
        notes += more
    print("\n" + "\n".join(notes) if notes else "")
    sizes = np.concatenate([np.bincount(gt.ravel())[1:] for gt in truths])
    sizes = sizes[sizes > 0]
    print(f"\n{len(names)} validation images, {len(sizes)} nuclei; area (px) median {np.median(sizes):.0f}, "
          f"10th-90th percentile {np.percentile(sizes, 10):.0f}-{np.percentile(sizes, 90):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
