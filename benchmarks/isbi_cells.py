"""Cells from membranes against the threshold protocol, with the same trained models, slice by slice.

For each ISBI run directory (``biounet train --preset isbi2012 ... --val-names 18,19,20,21``): predict the
validation slices with the best model, then score them as training validation does
(:func:`biounet.training.validation.membrane_metrics`): the challenge's protocol (threshold the interior
probability, cells = connected interiors, one threshold for the whole set) and the cells of
:mod:`biounet.inference.cells` (seeded watershed + agglomeration, one setting of its grid for the whole set,
at that threshold). Both are chosen on the same slices, so neither has an advantage. Run by hand::

    .venv/bin/python benchmarks/isbi_cells.py runs/isbi-seed0 runs/isbi-seed1 runs/isbi-seed2 --out cells.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def score_run(run_dir: Path) -> tuple[dict[str, float], list[tuple[str, float, float]]]:
    """(set metrics, [(slice, threshold-protocol error, cells error)]) of one run's best model."""
    from biounet import predict
    from biounet.data.readers import read_folder_pairs
    from biounet.io.checkpoint import load_bundle
    from biounet.metrics import names
    from biounet.training.config import TrainConfig
    from biounet.training.validation import membrane_metrics

    config = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    data = config.data
    samples = read_folder_pairs(data.images, data.masks, data.target, normalization=data.normalization,
                                names=data.val_names).samples
    bundle = load_bundle(run_dir)
    probabilities = [predict(bundle, s.image, pipeline={"normalization": {"method": "none"}}, progress=False)
                     for s in samples]  # the samples are normalised already, as in validation
    metrics, per_image, _ = membrane_metrics(samples, probabilities)
    rows = [(s.name, r[names.ADAPTED_RAND_ERROR], r[names.CELLS_ADAPTED_RAND_ERROR])
            for s, r in zip(samples, per_image)]
    return metrics, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="ISBI run directories (one per training seed)")
    parser.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    args = parser.parse_args(argv)
    from biounet.metrics import names

    lines = ["| run | slice | threshold + connected components | cells (watershed + agglomeration) |",
             "|---|---|---|---|"]
    means = []
    for run in args.runs:
        metrics, rows = score_run(run)
        for name, plain, cells in rows:
            lines.append(f"| {run.name} | {name} | {plain:.4f} | {cells:.4f} |")
        plain_mean, cells_mean = metrics[names.ADAPTED_RAND_ERROR], metrics[names.CELLS_ADAPTED_RAND_ERROR]
        lines.append(f"| {run.name} | **mean** (threshold {metrics['threshold']:g}; cells: seeds above "
                     f"{metrics['cells_interior_threshold']:g}, {metrics['cells_seed_distance']:g} px from the "
                     f"membrane, merged below {metrics['cells_merge_threshold']:g}) "
                     f"| **{plain_mean:.4f}** | **{cells_mean:.4f}** |")
        means.append((plain_mean, cells_mean))
    plain_median = statistics.median(m[0] for m in means)
    cells_median = statistics.median(m[1] for m in means)
    lines.append(f"\nMedian over the runs: threshold protocol {plain_median:.4f}, cells {cells_median:.4f} "
                 f"({100 * (1 - cells_median / plain_median):.0f} % lower).")
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
