"""Distributed prediction: a generated 16384 x 16384 uint8 zarr image, ``biounet predict`` in one process vs
``biounet predict --dask local:1`` and ``--dask local:2`` (blocks on Dask worker processes).

The model is deliberately tiny (valid U-Net, depth 2, base 2 channels, random weights) so that the section runs
in minutes on 2 cores: it measures the distribution (reading blocks with their context, writing one chunk per
block, scheduling), not the network, which the inference section measures.  Every run is a fresh process (or
a fresh cluster): wall seconds including start-up, speed-up against the single process, and the peak resident
memory of the single process and of every worker (``ru_maxrss``).  The 2-worker run is repeated on an image
with a quarter of the pixels: a worker's peak must not grow with the image (blocks of 2048 px, whatever the
image).  ``--quick``: 1024 and 512 px images, blocks of 256 px, no 1-worker run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO

BLOCK = 2048
QUICK_BLOCK = 256


def run(quick: bool = False) -> dict[str, Any]:
    side = 1024 if quick else 16384
    block = QUICK_BLOCK if quick else BLOCK
    with tempfile.TemporaryDirectory(prefix="bench_dask_") as tmp:
        tmp = Path(tmp)
        model = _model(tmp)
        image, small = _image(tmp / "big.zarr", side), _image(tmp / "small.zarr", side // 2)
        single = _single(model, image, tmp / "single")
        rows = [{"method": "biounet predict, 1 process", "image": f"{side}x{side}", "workers": 0,
                 "seconds": single["seconds"], "speed_up": 1.0, "peak_mib_per_process": single["peak_mib"]}]
        for workers in (2,) if quick else (1, 2):
            images = [small, image] if workers == 2 else [image]  # small first: a worker's peak so far, then big
            for result, path in zip(_dask(model, images, tmp, workers, block), images):
                n = side if path == image else side // 2
                rows.append({"method": f"--dask local:{workers}", "image": f"{n}x{n}", "workers": workers,
                             "seconds": result["seconds"],
                             "speed_up": single["seconds"] / result["seconds"] if path == image else "",
                             "peak_mib_per_process": max(result["peaks"])})
    notes = [
        f"Model: valid U-Net depth 2, base 2 channels (random weights), precision auto; blocks of {block} px; "
        "output: probabilities (float16) in an OME-Zarr store (--dask) or a zarr array (one process).",
        "peak_mib_per_process: the single process's peak RSS, or the largest peak RSS of the Dask workers so far "
        "(fresh processes; the 2-worker cluster predicts the image with a quarter of the pixels first, then the "
        "full one: equal peaks mean memory flat in image size). Seconds exclude the cluster's start.",
        "The machine has 2 cores: local:2 runs one PyTorch thread per worker, local:1 and the single process "
        "two threads, so the speed-up measures the cost of distributing, not more hardware.",
    ]
    return {"rows": rows, "notes": notes}


def _model(tmp: Path) -> Path:
    import torch

    from biounet.io.checkpoint import save_model
    from biounet.model import UNet

    torch.manual_seed(0)
    return save_model(UNet(depth=2, base_channels=2, dropout=0.0), tmp / "tiny.safetensors")


def _image(path: Path, side: int) -> Path:
    """A uint8 zarr image of ``side`` x ``side`` written chunk by chunk (never whole in memory)."""
    import zarr

    chunk = 1024
    z = zarr.open_array(str(path), mode="w", shape=(side, side), chunks=(chunk, chunk), dtype=np.uint8)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:chunk, :chunk]
    pattern = (96 + 64 * np.sin(yy / 9.0) * np.cos(xx / 13.0)).astype(np.int16)
    for y in range(0, side, chunk):
        for x in range(0, side, chunk):
            noise = rng.integers(-24, 24, size=(chunk, chunk), dtype=np.int16)
            tile = np.clip(pattern + noise, 0, 255).astype(np.uint8)
            z[y : y + chunk, x : x + chunk] = tile[: side - y, : side - x]
    return path


def _single(model: Path, image: Path, out: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "biounet", "predict", str(model), str(image), "--out", str(out),
               "--format", "zarr", "--quiet"]
    seconds, peak = _timed_child(command)
    return {"seconds": seconds, "peak_mib": peak}


def _timed_child(command: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's own peak RSS in MiB (``wait4``'s rusage of that one child)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def _dask(model: Path, images: list[Path], tmp: Path, workers: int, block: int) -> list[dict[str, Any]]:
    """One fresh LocalCluster of ``workers`` processes predicts ``images`` in turn: wall seconds of each and every
    worker's peak RSS (MiB) after each."""
    import resource

    from distributed import Client, LocalCluster

    from biounet.inference.blockwise import BlockwiseOptions, predict_blockwise
    from biounet.inference.predictor import PredictOptions

    results = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for index, image in enumerate(images):
            start = time.perf_counter()
            predict_blockwise(model, image, tmp / f"dask{workers}_{index}.zarr", ["probabilities"], dask=client,
                              options=PredictOptions(progress=False), blockwise=BlockwiseOptions(block_size=block))
            seconds = time.perf_counter() - start
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            results.append({"seconds": seconds, "peaks": list(peaks.values())})
    return results
