"""``biounet evaluate``: score predictions against ground truth with the field's metrics.

PRED and GT are two files or two folders (pairs matched by file-name stem).  Three tasks:

- ``isbi``: ISBI 2012 membrane segmentation.  GT is the ISBI label image (0 = membrane,
  255 = cell interior), PRED the probability of cell interior.  Reports the adapted Rand error of
  grown segments, the variation of information, the warping error and the pixel error, each at its
  best threshold.
- ``instances``: instance label maps (DSB 2018 nuclei).  Reports the DSB average precision, F1,
  precision and recall at IoU > 0.5, and panoptic quality.
- ``semantic``: class maps.  Reports pixel error (binary maps), Dice and IoU per class.

Heavy imports (numpy, scipy, skimage) happen inside :func:`run`, so ``biounet --help`` is fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

TASKS = ("isbi", "instances", "semantic")
PRED_KINDS = ("auto", "probability", "labels", "binary")

DESCRIPTION = """\
Score predictions against ground truth with the metrics of the ISBI 2012 EM challenge, the 2018 Data
Science Bowl, and Dice/IoU.

PRED and GT are either two image files or two folders.  Folders are paired by file name without
extension (pred/7.tif goes with gt/7.png); files present in only one folder are listed on stderr
and skipped.  Images may be PNG, TIFF, .npy or .zarr, 2D (Y, X) or 3D stacks (Z, Y, X).

Predictions may be
  - probability maps: float in [0, 1] (TIFF/.npy), or 8-bit PNG scaled 0..255 -> 0..1 (task isbi);
    these are thresholded at every value of --thresholds and the best value of each metric is
    reported with the threshold that gave it (the ISBI 2012 protocol);
  - label maps: integer instance/segment ids, 0 = background/boundary;
  - binary masks: two values, 0 and one other (objects = connected components).
--pred-kind overrides the automatic choice.

Tasks
  isbi       GT: ISBI label image, 0 = membrane, 255 = cell interior (cells = its 4-connected
             components; a label map of cells with 0 on the membrane also works).
             PRED: probability of cell INTERIOR (the challenge convention; 1 = interior).
             Reports: adapted_rand = adapted Rand error (1 - F-score, SNEMI3D/skimage definition) of
             the predicted cells grown into the predicted boundary, membrane pixels of GT ignored,
             with its split and merge scores; vi = variation of information (bits) with split and
             merge parts; warping_error = topology-aware pixel error (Jain et al. 2010): the
             binary prediction is warped onto GT by flipping only pixels whose flip keeps the
             topology, and the pixels still wrong count (with the number of merges and splits);
             pixel_error = 1 - pixel accuracy.  Lower is better for all.
  instances  GT and PRED: instance label maps (0 = background).  Reports average_precision (the
             DSB 2018 score: mean over IoU thresholds 0.5..0.95 of TP/(TP+FP+FN)), f1, precision
             and recall at IoU > 0.5, panoptic_quality.  A probability PRED is thresholded and its
             connected components are the objects; the threshold with the best AP is used.
  semantic   GT and PRED: class maps (integers; a mask with values {0, 255} counts as classes 0/1).
             Reports pixel_error (1 - accuracy), dice_<c> and iou_<c> per class.  A probability
             PRED is thresholded; the threshold with the best foreground Dice is used.

The last row, "mean", averages over images.  For probability maps it is the ISBI protocol: the
metric is averaged over images at each threshold and the best threshold of that average is
reported (one threshold for the whole set), so it can be worse than the mean of the per-image bests.

Exit status: 0 on success, 2 on bad input (missing, empty or unreadable files, shape mismatch,
float values where integer ids are needed), with a one-line message naming the file.
"""

EPILOG = """\
examples:
  biounet evaluate predictions/ ../shared/data/isbi2012_em/train/label/ --task isbi --json scores.json
  biounet evaluate pred.tif gt.png --task isbi --thresholds 0.3:0.7:0.1 --no-warping
  biounet evaluate nuclei_pred/ nuclei_gt/ --task instances --csv scores.csv
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against ground truth (ISBI 2012 Rand/warping/pixel error, DSB 2018 AP, Dice/IoU)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pred", metavar="PRED", type=Path, help="prediction image file or folder")
    parser.add_argument("gt", metavar="GT", type=Path, help="ground-truth image file or folder")
    parser.add_argument(
        "--task", choices=TASKS, default="isbi", help="what to evaluate (see above; default: %(default)s)"
    )
    parser.add_argument(
        "--thresholds",
        nargs="+",
        metavar="T",
        help="thresholds for probability maps: a list (0.3 0.5 0.7) or START:STOP:STEP (0.1:0.9:0.1); "
        "foreground is prob > T (default: 0.1 0.2 ... 0.9)",
    )
    parser.add_argument(
        "--pred-kind",
        choices=PRED_KINDS,
        default="auto",
        help="how to read PRED: auto (default) = float -> probability; two values -> binary; 8-bit "
        "-> probability/255 for --task isbi, labels otherwise; other integers -> labels",
    )
    parser.add_argument(
        "--no-warping", action="store_true", help="skip the warping error (task isbi; it is the slowest metric)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write all results to FILE as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write one row per image (and the mean) to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")
    parser.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class Pairing:
    """Prediction/ground-truth file pairs and the files without a partner."""

    pairs: list[tuple[str, Path, Path]]
    unmatched_pred: list[Path] = field(default_factory=list)
    unmatched_gt: list[Path] = field(default_factory=list)


def pair_files(pred: Path, gt: Path) -> Pairing:
    """Pair two files, or the image files of two folders by name stem."""
    from biounet.errors import DataError, ImageReadError

    for path, role in ((pred, "PRED"), (gt, "GT")):
        if not path.exists():
            raise ImageReadError(f"{path}: no such file or directory ({role})")
    if _is_folder(pred) != _is_folder(gt):
        folder, single = (pred, gt) if _is_folder(pred) else (gt, pred)
        raise DataError(f"{folder} is a folder but {single} is a file: give two files or two folders")
    if not _is_folder(pred):
        return Pairing([(pred.stem, pred, gt)])
    pred_files, gt_files = _images_by_stem(pred), _images_by_stem(gt)
    common = sorted(set(pred_files) & set(gt_files), key=_natural_key)
    pairing = Pairing(
        pairs=[(stem, pred_files[stem], gt_files[stem]) for stem in common],
        unmatched_pred=[pred_files[s] for s in sorted(set(pred_files) - set(gt_files), key=_natural_key)],
        unmatched_gt=[gt_files[s] for s in sorted(set(gt_files) - set(pred_files), key=_natural_key)],
    )
    if not pairing.pairs:
        raise DataError(
            f"no prediction in {pred} has a ground-truth file of the same name in {gt} "
            f"({len(pred_files)} vs {len(gt_files)} image files)"
        )
    return pairing


def _is_folder(path: Path) -> bool:
    return path.is_dir() and path.suffix.lower() != ".zarr"


#: Suffixes that ``biounet predict`` adds to its output names; PRED files pair with GT without them.
PREDICT_SUFFIXES = ("_probabilities", "_instances", "_labels", "_logits")


def _images_by_stem(folder: Path) -> dict[str, Path]:
    from biounet.errors import DataError
    from biounet.io.images import is_image_file

    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not is_image_file(path):
            continue
        stem = next((path.stem[: -len(s)] for s in PREDICT_SUFFIXES if path.stem.endswith(s)), path.stem)
        if stem in files:
            raise DataError(f"{folder}: two images with the name {stem!r} ({files[stem].name}, {path.name})")
        files[stem] = path
    return files


def class_probabilities_to_map(pred: np.ndarray, gt: np.ndarray, task: str, path: Path) -> np.ndarray:
    """A ``(K, *S)`` class-probability output of ``biounet predict`` as the map the task scores.

    isbi: the probability of the interior class (from the sidecar ``PATH.json`` that predict writes, else
    class 1 of 2); semantic: the arg-max classes. Instances need ``biounet predict --output instances``.
    """
    import json

    import numpy as np

    from biounet.errors import DataError

    if pred.ndim != gt.ndim + 1 or pred.shape[1:] != gt.shape or pred.dtype.kind != "f":
        return pred
    if task == "semantic":
        return np.argmax(pred, axis=0).astype(np.int32)
    if task == "instances":
        raise DataError(f"{path}: class probabilities, not instances; predict with --output instances")
    sidecar = Path(str(path) + ".json")
    target = {}
    if sidecar.is_file():
        target = json.loads(sidecar.read_text()).get("model", {}).get("target") or {}
    interior = target.get("interior_class", 1 if pred.shape[0] == 2 else None)
    if interior is None:
        raise DataError(f"{path}: {pred.shape[0]} class probabilities and no sidecar saying which is the interior")
    return np.asarray(pred[interior], dtype=np.float32)


def _natural_key(stem: str) -> tuple:
    import re

    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", stem))


# ----------------------------------------------------------------------------------------- reading


def parse_thresholds(values: list[str] | None) -> tuple[float, ...]:
    """``["0.1:0.9:0.1"]`` or ``["0.3", "0.5"]`` → thresholds; None → the ISBI default 0.1..0.9."""
    from biounet.errors import DataError
    from biounet.metrics import DEFAULT_THRESHOLDS

    if not values:
        return DEFAULT_THRESHOLDS
    try:
        if len(values) == 1 and ":" in values[0]:
            start, stop, step = (float(v) for v in values[0].split(":"))
            if step <= 0:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            thresholds = tuple(round(start + i * step, 10) for i in range(count))
        else:
            thresholds = tuple(float(v) for v in values)
    except ValueError:
        raise DataError(f"--thresholds {' '.join(values)}: give numbers or START:STOP:STEP with STEP > 0") from None
    if not thresholds or any(not 0.0 <= t < 1.0 for t in thresholds):
        raise DataError(f"--thresholds {' '.join(values)}: thresholds must lie in [0, 1)")
    return thresholds


def read_plane_image(path: Path) -> np.ndarray:
    """Read an image; an RGB(A) PNG with equal channels becomes its first channel."""
    import numpy as np

    from biounet.errors import DataError
    from biounet.io.images import PIL_SUFFIXES, image_suffix, read_image

    array = read_image(path)
    if image_suffix(path) in PIL_SUFFIXES and array.ndim == 3:
        if array.shape[-1] == 4:
            array = array[..., :3]
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise DataError(f"{path}: colour image; labels and probabilities must be single-channel")
        array = array[..., 0]
    return array


def _is_binary(array: np.ndarray) -> bool:
    """True when the array holds at most two values, one of them 0 (a mask such as {0, 255})."""
    foreground = array[array != 0]
    return foreground.size == 0 or bool((foreground == foreground.flat[0]).all())


def prediction_kind(array: np.ndarray, task: str, requested: str, path: Path) -> str:
    """Decide how to read a prediction: ``probability``, ``labels`` or ``binary``."""
    from biounet.errors import DataError

    if array.dtype.kind == "f":
        if requested in ("labels", "binary") and not _is_binary(array):
            raise DataError(
                f"{path}: float values where integer {'instance ids' if requested == 'labels' else 'mask values'} "
                "are needed (save label maps as an integer type)"
            )
        if requested in ("labels", "binary"):
            return "binary"
        return "probability"
    if array.dtype.kind not in "uib":
        raise DataError(f"{path}: unsupported pixel type {array.dtype}")
    if requested != "auto":
        return requested
    if _is_binary(array):
        return "binary"
    if task == "isbi" and array.dtype.kind == "u" and array.dtype.itemsize == 1:
        return "probability"
    return "labels"


def as_probability(array: np.ndarray, path: Path) -> np.ndarray:
    """Float32 probability in [0, 1]: floats as they are, integers scaled by their type's maximum."""
    import numpy as np

    from biounet.errors import DataError

    if array.dtype.kind == "f":
        prob = array.astype(np.float32, copy=False)
        if not np.isfinite(prob).all():
            raise DataError(f"{path}: probability map contains NaN or infinite values")
        low, high = float(prob.min()), float(prob.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{path}: float values {low:g}..{high:g} lie outside [0, 1]: not a probability map, and "
                "float labels cannot be instance ids (save label maps as an integer type)"
            )
        return prob
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype.kind == "i" and array.min() < 0:
        raise DataError(f"{path}: negative values in an integer probability map")
    return (array.astype(np.float32) / float(np.iinfo(array.dtype).max)).astype(np.float32)


def ground_truth_labels(array: np.ndarray, task: str, path: Path) -> np.ndarray:
    """Integer ground truth: cells (isbi), instances, or classes (semantic); binary masks labelled."""
    import numpy as np

    from biounet.errors import DataError
    from biounet.metrics import label_components

    if array.dtype.kind == "f":
        if not _is_binary(array):
            needed = {"isbi": "cell ids or a 0/255 label", "instances": "instance ids", "semantic": "class ids"}[task]
            raise DataError(f"{path}: float ground truth where integer {needed} are needed")
        array = array != 0
    if array.dtype.kind not in "uib":
        raise DataError(f"{path}: unsupported pixel type {array.dtype}")
    if _is_binary(array):
        mask = array != 0
        return mask.astype(np.int32) if task == "semantic" else label_components(mask)
    return array


# -------------------------------------------------------------------------------------- evaluation


@dataclass
class ImageResult:
    """Metric values of one image at each threshold, and which threshold each metric reports.

    ``curves[m]`` holds metric ``m`` at every threshold (one value when nothing was swept),
    ``parts[m]`` the secondary numbers of ``m`` (split/merge scores, defect counts, ...) at every
    threshold, ``selection[m]`` the index reported in the image's row.
    """

    name: str
    pred_kind: str
    thresholds: tuple[float, ...] | None
    curves: dict[str, tuple[float, ...]]
    parts: dict[str, list[dict[str, float]]]
    selection: dict[str, int]

    @property
    def part_names(self) -> list[str]:
        return list(dict.fromkeys(k for per_threshold in self.parts.values() for k in per_threshold[0]))

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"image": self.name, "pred_kind": self.pred_kind}
        for metric, values in self.curves.items():
            index = self.selection[metric]
            row[metric] = values[index]
            if self.thresholds is not None:
                row[f"{metric}_threshold"] = self.thresholds[index]
        for metric, per_threshold in self.parts.items():
            row.update(per_threshold[self.selection[metric]])
        return row


TASK_METRICS = {
    "isbi": ("adapted_rand", "vi", "warping_error", "pixel_error"),
    "instances": ("average_precision", "f1", "panoptic_quality"),
    "semantic": ("pixel_error", "dice", "iou"),
}
# Which metric chooses the threshold (None: every metric at its own best, the ISBI way).
TASK_SELECTOR = {"isbi": None, "instances": "average_precision", "semantic": "dice"}


def evaluate_pair(
    name: str,
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    task: str,
    pred_kind: str,
    thresholds: tuple[float, ...],
    warping: bool,
    pred_path: Path,
) -> ImageResult:
    """All metrics of one prediction/ground-truth pair."""
    from biounet.metrics import METRICS, score_metrics, sweep_metrics
    from biounet.metrics.sweep import best_index

    if task == "semantic" and pred_kind == "labels":
        return _semantic_classes(name, pred, gt)
    metrics = tuple(m for m in TASK_METRICS[task] if warping or m != "warping_error")
    if pred_kind == "probability":
        prob = as_probability(pred, pred_path)
        sweeps = sweep_metrics(prob, gt, metrics, thresholds)
        curves = {m: sweeps[m].values for m in metrics}
        details = {m: sweeps[m].details for m in metrics}
        used: tuple[float, ...] | None = thresholds
    else:
        components = pred if pred_kind == "labels" else None
        results = score_metrics(gt, pred != 0, metrics, components=components)
        curves = {m: (float(METRICS[m].value(results[m])),) for m in metrics}
        details = {m: (results[m],) for m in metrics}
        used = None
    selector = TASK_SELECTOR[task]
    if selector is None:
        selection = {m: best_index(curves[m], METRICS[m].higher_is_better) for m in metrics}
    else:
        index = best_index(curves[selector], METRICS[selector].higher_is_better)
        selection = dict.fromkeys(metrics, index)
    parts = {m: [_parts(m, d) for d in details[m]] for m in metrics}
    return ImageResult(name, pred_kind, used, curves, parts, selection)


def _parts(metric: str, result: Any) -> dict[str, float]:
    """The secondary numbers of a metric worth a column: split/merge scores, defects, counts."""
    if metric == "adapted_rand":
        return {"rand_split": result.split, "rand_merge": result.merge}
    if metric == "vi":
        return {"vi_split": result.split, "vi_merge": result.merge}
    if metric == "warping_error":
        return {"merges": result.merges, "splits": result.splits, "defects": result.n_defects}
    if metric == "f1":
        return {"precision": result.precision, "recall": result.recall, "n_gt": result.n_gt, "n_pred": result.n_pred}
    if metric == "panoptic_quality":
        return {"sq": result.sq, "rq": result.rq}
    return {}


def _semantic_classes(name: str, pred: np.ndarray, gt: np.ndarray) -> ImageResult:
    import numpy as np

    from biounet.metrics import dice_per_class, iou_per_class

    classes = sorted(set(np.unique(gt).tolist()) | set(np.unique(pred).tolist()))
    curves: dict[str, tuple[float, ...]] = {"pixel_error": (float(np.mean(gt != pred)),)}  # 1 - accuracy
    dice, iou = dice_per_class(gt, pred, classes), iou_per_class(gt, pred, classes)
    curves.update({f"dice_{c}": (dice[c],) for c in classes})
    curves.update({f"iou_{c}": (iou[c],) for c in classes})
    return ImageResult(name, "labels", None, curves, {}, dict.fromkeys(curves, 0))


def summarise(results: list[ImageResult], task: str) -> dict[str, Any]:
    """The "mean" row over images.

    When every image was swept over the same thresholds this is the ISBI protocol: each metric is
    averaged over images at every threshold and the best threshold of that average is reported.
    The secondary numbers (split/merge, defect counts) are averaged at the same threshold as their metric.
    Otherwise it is the plain mean of the per-image values.
    """
    import numpy as np

    from biounet.metrics import METRICS
    from biounet.metrics.sweep import best_index

    mean: dict[str, Any] = {"image": "mean", "pred_kind": ""}
    metrics = list(dict.fromkeys(m for r in results for m in r.curves))
    sweeps = {r.thresholds for r in results}
    if len(sweeps) == 1 and None not in sweeps:
        thresholds = results[0].thresholds
        curves = {m: np.nanmean([r.curves[m] for r in results], axis=0) for m in metrics}
        selector = TASK_SELECTOR[task]
        for m in metrics:
            chooser = m if selector is None else selector
            index = best_index(curves[chooser], METRICS[chooser].higher_is_better)
            mean[m] = float(curves[m][index])
            mean[f"{m}_threshold"] = thresholds[index]
            for key in dict.fromkeys(k for r in results for k in (r.parts[m][index] if m in r.parts else {})):
                mean[key] = _nanmean([r.parts[m][index].get(key) for r in results if m in r.parts])
        return mean
    rows = [r.row() for r in results]
    keys = metrics + list(dict.fromkeys(k for r in results for k in r.part_names))
    mean.update({key: _nanmean([row.get(key) for row in rows]) for key in keys})
    return mean


def _nanmean(values: list[Any]) -> float:
    finite = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(finite) / len(finite) if finite else float("nan")


# ------------------------------------------------------------------------------------------- output

COLUMN_TITLES = {
    "adapted_rand": "rand_err",
    "vi": "VI",
    "warping_error": "warp_err",
    "pixel_error": "pixel_err",
    "average_precision": "AP_dsb",
    "panoptic_quality": "PQ",
}


def format_table(rows: list[dict[str, Any]], metrics: list[str], extras: list[str]) -> str:
    """A plain-text table: image, each metric (with its threshold when swept), then the extras."""
    columns: list[tuple[str, str]] = [("image", "image")]
    for m in metrics:
        columns.append((COLUMN_TITLES.get(m, m), m))
        if any(f"{m}_threshold" in row for row in rows):
            columns.append(("@t", f"{m}_threshold"))
    columns += [(key, key) for key in extras]

    def cell(value: Any, key: str) -> str:
        if value is None or value == "":
            return "-"
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            if key.endswith("_threshold"):
                return f"{value:.2f}"
            return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        return str(value)

    table = [[title for title, _ in columns]] + [[cell(row.get(key), key) for _, key in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = [
        "  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON-safe value: NaN → None, NumPy scalars → Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from biounet.io.atomic import write_text_atomic

    keys = list(dict.fromkeys(k for row in rows for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if _clean(row.get(k)) is None else _clean(row.get(k))) for k in keys})
    write_text_atomic(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from biounet.errors import DataError
    from biounet.io.atomic import write_json_atomic

    thresholds = parse_thresholds(args.thresholds)
    pairing = pair_files(args.pred, args.gt)
    for files, what in (
        (pairing.unmatched_pred, "prediction(s) without ground truth"),
        (pairing.unmatched_gt, "ground-truth file(s) without prediction"),
    ):
        if files:
            names = ", ".join(p.name for p in files[:10]) + (", ..." if len(files) > 10 else "")
            print(f"biounet evaluate: skipping {len(files)} {what}: {names}", file=sys.stderr)

    results: list[ImageResult] = []
    progress = tqdm(pairing.pairs, desc="evaluate", unit="image", disable=True if args.quiet else None)
    for name, pred_path, gt_path in progress:
        pred, gt = read_plane_image(pred_path), read_plane_image(gt_path)
        pred = class_probabilities_to_map(pred, gt, args.task, pred_path)
        if pred.shape != gt.shape:
            raise DataError(f"{pred_path} has shape {pred.shape} but {gt_path} has shape {gt.shape}")
        kind = prediction_kind(pred, args.task, args.pred_kind, pred_path)
        gt_labels = ground_truth_labels(gt, args.task, gt_path)
        if kind == "binary" and args.task != "semantic":
            pred = pred != 0
        elif kind == "binary":
            pred = (pred != 0).astype("int32")
            kind = "labels"
        results.append(
            evaluate_pair(
                name,
                pred,
                gt_labels,
                task=args.task,
                pred_kind=kind,
                thresholds=thresholds,
                warping=not args.no_warping,
                pred_path=pred_path,
            )
        )

    rows = [r.row() for r in results]
    mean = summarise(results, args.task)
    metrics = list(dict.fromkeys(m for r in results for m in r.curves))
    extras = list(dict.fromkeys(k for r in results for k in r.part_names))
    if not args.quiet:
        print(format_table([*rows, mean], metrics, extras))
    if args.json:
        write_json_atomic(
            args.json,
            {
                "task": args.task,
                "pred": str(args.pred),
                "gt": str(args.gt),
                "thresholds": list(thresholds),
                "mean_protocol": "best common threshold of the image-averaged metric"
                if any(k.endswith("_threshold") for k in mean)
                else "average over images",
                "images": [{k: _clean(v) for k, v in row.items()} for row in rows],
                "mean": {k: _clean(v) for k, v in mean.items()},
                "unmatched_predictions": [str(p) for p in pairing.unmatched_pred],
                "unmatched_ground_truth": [str(p) for p in pairing.unmatched_gt],
            },
        )
    if args.csv:
        write_csv(args.csv, [*rows, mean])
    return 0
