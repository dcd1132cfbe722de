"""2D, 2.5D and 3D U-Nets on the ssTEM VNC stack at the same CPU budget, scored on 3D cells and per-class Dice.

The shared stack (``drosophila_vnc_sstem/stack1``: 15 sections of 1024 x 1024 pixels, about 4.6 x 4.6 x 50 nm)
is split as the issue says: sections 0-11 train, 12-14 validate. Every variant trains the four-class semantic
target of ``--preset vnc-classes`` (background, membrane, mitochondria, synapse) for the same wall-clock minutes on
this machine, one run after the other, for each seed:

* ``2d``: a 2D network on single sections (the default recipe, 256 px tiles, batch 4);
* ``2.5d``: the same with the sections above and below as two more input channels (``--z-context 1``);
* ``3d``: a 3D network whose layout follows the spacing (x-y pooling and 3x3x1 kernels where z is coarse,
  :mod:`biounet.model.anisotropy`) on tiles of 8 x 128 x 128 voxels, batch 2: as many voxels a step as the 2D
  tiles have pixels.

Each run's best model predicts the whole stack (a 2D model section by section; inputs of the training sections
may serve as context, as they would for any new section of a stack: no labels are used), and the validation block
(sections 12-14) is scored:

* per-class Dice of the arg-max classes against the semantic truth (:func:`biounet.data.sections` conventions);
* cells in 3D from the membrane class: ``P(interior) = 1 - P(membrane)`` through :mod:`biounet.inference.cells`
  with the stack's spacing, one setting of a small grid chosen on the block itself for every run alike (so the
  numbers are each variant's best case, equally optimistic), against the neurons of
  :func:`biounet.data.sections.neuron_labels`: adapted Rand error and variation of information (split, merge).

Run by hand (about ``3 x len(seeds) x minutes`` plus a minute a run for prediction)::

    .venv/bin/python benchmarks/vnc_compare.py train --data ../shared/data/drosophila_vnc_sstem --runs runs/vnc \\
        --minutes 4 --seeds 0 1 2
    .venv/bin/python benchmarks/vnc_compare.py score --data ../shared/data/drosophila_vnc_sstem --runs runs/vnc \\
        --out docs/vnc-comparison.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS: dict[str, list[str]] = {
    "2d": [],
    "2.5d": ["--z-context", "1"],
    "3d": ["--dims", "3", "--tile-size", "8,128,128", "--batch-size", "2"],
}
VALIDATION = (12, 13, 14)
#: Cell settings tried on the block: seeds above this P(interior) ...
INTERIOR_THRESHOLDS = (0.5, 0.7, 0.9)
#: ... farther than this from the membrane (in-plane pixels) ...
SEED_DISTANCES = (2.0, 4.0, 8.0)
#: ... and merging below this mean membrane probability.
MERGE_THRESHOLDS = (0.2, 0.3, 0.4, 0.5)


def train(data: Path, runs: Path, minutes: float, seeds: list[int], variants: list[str]) -> None:
    """Train every variant and seed one after the other (a run with a model already is kept)."""
    for seed in seeds:
        for variant in variants:
            out = runs / f"{variant}-seed{seed}"
            if (out / "model.safetensors").exists():
                print(f"{out}: trained already, kept", flush=True)
                continue
            command = [sys.executable, "-m", "biounet", "train", "--preset", "vnc-classes", "--images", str(data),
                       "--out", str(out), "--max-minutes", str(minutes), "--seed", str(seed), "--no-progress",
                       "--overwrite", *VARIANTS[variant]]
            print(" ".join(command[1:]), flush=True)
            started = time.perf_counter()
            subprocess.run(command, check=True)
            print(f"{out}: {time.perf_counter() - started:.0f} s", flush=True)


def stack_file(data: Path, work: Path) -> Path:
    """The stack's raw sections as one multi-page TIFF ``(Z, Y, X)`` uint8 (written once)."""
    import tifffile

    path = work / "stack1-raw.tif"
    if not path.exists():
        sections = sorted((data / "stack1" / "raw").glob("*.tif"))
        tifffile.imwrite(path, np.stack([tifffile.imread(p) for p in sections]))
    return path


def score_run(run: Path, stack: Path, truth_classes: np.ndarray, neurons: np.ndarray, spacing) -> dict:
    """Dice per class and the 3D cells' scores of one run on the validation block."""
    from biounet import predict
    from biounet.inference.cells import cells_over_grid
    from biounet.io.checkpoint import load_bundle
    from biounet.metrics.overlap import dice_per_class
    from biounet.metrics.rand import adapted_rand_error, variation_of_information

    bundle = load_bundle(run)
    started = time.perf_counter()
    probabilities = np.asarray(predict(bundle, str(stack), progress=False), dtype=np.float32)
    seconds = time.perf_counter() - started
    block = probabilities[:, list(VALIDATION)]
    classes = block.argmax(axis=0)
    dice = dice_per_class(truth_classes, classes, classes=range(block.shape[0]))
    interior = 1.0 - block[1]
    best = None
    for threshold in INTERIOR_THRESHOLDS:
        for settings, cells in cells_over_grid(interior, threshold, SEED_DISTANCES, MERGE_THRESHOLDS,
                                               spacing=spacing):
            error = adapted_rand_error(neurons, cells).error
            if best is None or error < best[0]:
                best = (error, settings, cells)
    error, settings, cells = best
    vi = variation_of_information(neurons, cells)
    steps = json.loads((run / "model.json").read_text()).get("pipeline", {}).get("training", {}).get("steps")
    return {"dice": dice, "rand": error, "vi_split": vi.split, "vi_merge": vi.merge, "settings": settings,
            "steps": steps, "predict_seconds": seconds}


def score(data: Path, runs: Path, out: Path | None) -> str:
    from biounet.data.sections import neuron_labels, semantic_labels
    from biounet.model.anisotropy import relative_spacing

    spacing = relative_spacing((50.0, 4.6, 4.6), 3)
    stack = stack_file(data, runs)
    truth_classes = semantic_labels(data, VALIDATION)
    neurons = neuron_labels(data, VALIDATION)
    rows = {}
    for run in sorted(p for p in runs.iterdir() if (p / "model.safetensors").exists()):
        rows[run.name] = score_run(run, stack, truth_classes, neurons, spacing)
        print(run.name, {k: v for k, v in rows[run.name].items() if k != "settings"}, flush=True)
    names = ["background", "membrane", "mitochondria", "synapse"]
    lines = ["| run | steps | adapted Rand error (3D cells) | VI split | VI merge | "
             + " | ".join(f"Dice {n}" for n in names) + " | cells setting |",
             "|---|---|---|---|---|" + "---|" * len(names) + "---|"]
    for name, row in rows.items():
        s = row["settings"]
        lines.append(f"| {name} | {row['steps']} | {row['rand']:.4f} | {row['vi_split']:.3f} | {row['vi_merge']:.3f} | "
                     + " | ".join(f"{row['dice'].get(k, float('nan')):.3f}" for k in range(len(names)))
                     + f" | {s.interior_threshold:g} / {s.seed_distance:g} / {s.merge_threshold:g} |")
    lines += ["", "| variant | runs | median adapted Rand error | median VI (split + merge) | "
              + " | ".join(f"median Dice {n}" for n in names[1:]) + " |", "|---|---|---|---|" + "---|" * 3]
    for variant in VARIANTS:
        group = [row for name, row in rows.items() if name.startswith(f"{variant}-")]
        if not group:
            continue
        lines.append(f"| {variant} | {len(group)} | {statistics.median(r['rand'] for r in group):.4f} | "
                     f"{statistics.median(r['vi_split'] + r['vi_merge'] for r in group):.3f} | "
                     + " | ".join(f"{statistics.median(r['dice'].get(k, float('nan')) for r in group):.3f}"
                                  for k in range(1, len(names))) + " |")
    text = "\n".join(lines) + "\n"
    if out:
        out.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "score"])
    parser.add_argument("--data", type=Path, required=True, help="the drosophila_vnc_sstem folder")
    parser.add_argument("--runs", type=Path, required=True, help="folder of the run directories")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, help="write the Markdown tables here (score)")
    args = parser.parse_args(argv)
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.step == "train":
        train(args.data, args.runs, args.minutes, args.seeds, args.variants)
    else:
        print(score(args.data, args.runs, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
