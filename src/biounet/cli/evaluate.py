"""``biounet evaluate``: score predictions against ground truth with the field's metrics.

PRED and GT are two files or two folders (pairs matched by file-name stem).  Three tasks:

- ``isbi``: ISBI 2012 membrane segmentation.  GT is the ISBI label image (0 = membrane,
  255 = cell interior), PRED the probability of cell interior.  Reports the adapted Rand error of
  grown segments, the variation of information, the warping error and the pixel error, each at its
  best threshold.
- ``instances``: instance label maps (DSB 2018 nuclei).  Reports the DSB average precision, AP50, F1,
  precision and recall at IoU > 0.5, and panoptic quality.
- ``semantic``: class maps (2D or 3D).  Reports pixel error, Dice and IoU per class per image, and a
  per-class table (mean over images, class names from the sidecar or ``--class-names``).

The work is done by :mod:`biounet.evaluation`; this module parses, calls and prints.  Heavy imports
(numpy, scipy, skimage) happen inside :func:`run`, so ``biounet --help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from biounet.cli import options
from biounet.evaluation.tasks import PRED_KINDS, TASKS

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
             Reports: adapted_rand_error = adapted Rand error (1 - F-score, SNEMI3D/skimage
             definition) of the predicted cells grown into the predicted boundary, membrane pixels of
             GT ignored, with its split and merge scores; variation_of_information (bits) with split
             and merge parts; warping_error = topology-aware pixel error (Jain et al. 2010): the
             binary prediction is warped onto GT by flipping only pixels whose flip keeps the
             topology, and the pixels still wrong count (with the number of merges and splits);
             pixel_error = 1 - pixel accuracy.  Lower is better for all.
             3D stacks (Z, Y, X): Rand error and VI are computed on the volume (3D segments,
             6-connected); the warping error is computed slice by slice in 2D (each Z slice
             warped with the 2D simple-point test, no 3D topology), warping_error = wrong pixels
             of all slices / pixels of the volume, and merges/splits are summed over the slices.
             A probability PRED also gets cells_adapted_rand_error: the Rand error of the cells
             biounet predict --output instances makes (seeds, watershed, agglomeration; the
             model's cell settings from the sidecar).  For volumes these cells are 3D, made with
             the voxel size --spacing Z,Y,X, else the spacing in the prediction's sidecar, else
             isotropic voxels: with --spacing 50,4.6,4.6 a membrane one section thick is as thick
             as 11 pixels in-plane, and seeds do not leak through a hole in it.
  instances  GT and PRED: instance label maps (0 = background).  Reports average_precision (the
             DSB 2018 score: mean over IoU thresholds 0.5..0.95 of TP/(TP+FP+FN)),
             average_precision_50 (AP50: TP/(TP+FP+FN) at IoU > 0.5), f1, precision and recall at
             IoU > 0.5, panoptic_quality (the names of training validation's val_ columns).  A
             probability PRED is thresholded and its connected components are the objects; the
             threshold with the best AP is used.
  semantic   GT and PRED: class maps, 2D or 3D (integers; a mask with values {0, 255} counts as
             classes 0/1).  Reports pixel_error (1 - accuracy), dice_<c> and iou_<c> for every
             class c per image, then a per-class table: each class's name and its Dice and IoU
             averaged over the images where the class is present in GT or PRED (JSON: "per_class").
             PRED may be labels (biounet predict --output labels), or class probabilities
             (K, *S) (biounet predict --output probabilities), scored as their arg-max.  With more
             than two classes the model's sidecar gives the class names and the mask values of
             the classes (GT 0/128/255 -> classes 0/1/2, as training read them); without a sidecar
             --class-names names them, and GT values are the classes.  A single probability map
             is thresholded; the threshold with the best foreground Dice is used.

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
  biounet evaluate vnc_probabilities.tif vnc_cells.tif --task isbi --spacing 50,4.6,4.6 --no-warping
  biounet evaluate nuclei_pred/ nuclei_gt/ --task instances --csv scores.csv
  biounet evaluate tissue_pred/ tissue_gt/ --task semantic --class-names background tumour stroma --json s.json
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
    parser.add_argument(
        "--class-names",
        nargs="+",
        metavar="NAME",
        help="task semantic: the name of class 0, 1, ... (default: the names in the prediction's sidecar); "
        "also declares the number of classes",
    )
    parser.add_argument(
        "--spacing",
        type=options.spacing,
        metavar="Z,Y,X",
        help="task isbi: the voxel size Z,Y,X (or pixel size Y,X) in any one unit for the cells of probability "
        "maps (cells_adapted_rand_error): volumes get 3D cells with it (default: the spacing in the "
        "prediction's sidecar, else isotropic); Rand error and VI of thresholded maps do not depend on it",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write all results to FILE as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write one row per image (and the mean) to FILE")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no table on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from biounet.evaluation.pairing import pair_files
    from biounet.evaluation.scoring import score_files
    from biounet.evaluation.summary import (
        class_table,
        format_class_table,
        format_table,
        json_report,
        summarise,
        write_csv,
    )
    from biounet.evaluation.tasks import parse_thresholds
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

    progress = tqdm(pairing.pairs, desc="evaluate", unit="image", disable=True if args.quiet else None)
    results = [
        score_files(
            name, pred_path, gt_path,
            task=args.task, pred_kind=args.pred_kind, thresholds=thresholds, warping=not args.no_warping,
            class_names=args.class_names or (), spacing=args.spacing,
        )
        for name, pred_path, gt_path in progress
    ]  # fmt: skip

    rows = [r.row() for r in results]
    mean = summarise(results, args.task)
    metrics = list(dict.fromkeys(m for r in results for m in [*r.curves, *r.extras]))
    extras = list(dict.fromkeys(k for r in results for k in r.part_names))
    per_class = class_table(results) if args.task == "semantic" else []
    if not args.quiet:
        print(format_table([*rows, mean], metrics, extras))
        if per_class:
            print(f"\nper class (mean over {len(results)} image{'s' if len(results) != 1 else ''}):")
            print(format_class_table(per_class))
    if args.json:
        report = json_report(
            rows, mean, task=args.task, pred=args.pred, gt=args.gt, thresholds=thresholds,
            unmatched_pred=pairing.unmatched_pred, unmatched_gt=pairing.unmatched_gt, per_class=per_class,
            spacing=args.spacing,
        )  # fmt: skip
        write_json_atomic(args.json, report)
    if args.csv:
        write_csv(args.csv, [*rows, mean])
    return 0
