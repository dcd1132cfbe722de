"""Data-parallel training on one machine: 2 processes (torchrun, gloo) against 1, in training steps per second.

Every row is a real ``biounet train`` command on the same synthetic nuclei (``biounet.data.synthetic``), the
default recipe's network at this machine's width with group norm (batch norm becomes group norm in a CPU
data-parallel run, so all rows use it), fp32, no validation. The rate is the trainer's own ``steps_per_s``
of its history rows (training only; checkpoints and start-up excluded), the median of the rows after the
first. Rows:

- 1 process, all cores as threads, batch B (the single-process way to use the machine);
- 2 processes (``--nproc 2``), cores / 2 threads each, batch B / 2 each: the same global batch B;
- 1 process, cores / 2 threads, batch B / 2: one rank alone (the per-rank baseline; not in ``--quick``).

"global tiles/s" = steps/s x global batch: 2 ranks win when it exceeds the first row's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def write_data(root: Path, count: int, size: int) -> None:
    from biounet.data.synthetic import generate
    from biounet.io.images import write_image

    for index in range(count):
        image, labels = generate("nuclei", (size, size), index)
        write_image(root / "images" / f"n{index}.tif", image.astype(np.float32))
        write_image(root / "masks" / f"n{index}.tif", labels.astype(np.uint16))


def rate(root: Path, name: str, *, nproc: int, batch: int, threads: int, steps: int, tile: int, channels: int) -> float:
    """Median steps/s of one ``biounet train`` run (history rows after the first)."""
    run_dir = root / name
    command = [sys.executable, "-m", "biounet", "train", "--images", str(root / "images"), "--masks",
               str(root / "masks"), "--target", "instances", "--out", str(run_dir), "--steps", str(steps),
               "--batch-size", str(batch), "--tile-size", str(tile), "--base-channels", str(channels),
               "--norm", "group", "--precision", "fp32", "--device", "cpu", "--threads", str(threads),
               "--val-split", "0", "--set", f"log_every={max(1, steps // 6)}", "--no-progress", "--quiet"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: biounet train failed: {done.stderr[-2000:]}")
    rows = json.loads((run_dir / "history.json").read_text())["rows"]
    rates = [row["steps_per_s"] for row in rows if row["kind"] == "train"][1:]
    return statistics.median(rates)


def run(quick: bool = False) -> dict:
    cores = os.cpu_count() or 1
    half = max(1, cores // 2)
    steps, tile, channels, batch = (6, 60, 4, 4) if quick else (60, 256, 16, 4)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_data(root, 4, 64 if quick else 384)
        settings = [
            ("1 process", 1, batch, cores),
            ("2 processes (--nproc 2)", 2, batch // 2, half),
            ("1 process, one rank's share", 1, batch // 2, half),
        ][: 2 if quick else 3]
        for name, nproc, local, threads in settings:
            steps_per_s = rate(root, name.split(" (")[0].replace(" ", "_").replace(",", "").replace("'", ""),
                               nproc=nproc, batch=local, threads=threads, steps=steps, tile=tile,
                               channels=channels)
            rows.append({"training": name, "processes x threads": f"{nproc} x {threads}",
                         "batch per process": local, "global batch": local * nproc, "steps/s": steps_per_s,
                         "global tiles/s": steps_per_s * local * nproc})
    reference = rows[0]["global tiles/s"]
    for row in rows:
        row["tiles/s vs 1 process"] = row["global tiles/s"] / reference
    return {"rows": rows, "notes": [
        f"{tile}x{tile} tiles, base {channels} channels, group norm, fp32, {steps} steps a run, {cores} cores; "
        "2 ranks x 1 thread against 1 process x 2 threads is the question on a small machine: do processes use "
        "the cores better than PyTorch's intra-op threads?"]}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
