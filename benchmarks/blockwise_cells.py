"""Cells of a large EM volume, blockwise on a Dask cluster: a 3D membrane model on an N^3 volume (N = 1024 by default).

The volume is the shared ssTEM stack (15 sections of 1024 x 1024) mirrored along z to N sections and cropped or
mirrored in-plane to N x N (real EM texture, not noise; the content repeats), written once as a zarr array in
chunks of 64 x 256 x 256. :func:`biounet.inference.blockwise.predict_blockwise` predicts it block by block on a
``LocalCluster`` and makes the cells per block (seeded watershed, agglomeration: :mod:`biounet.inference.cells`,
with the model's spacing) with an overlap, merged across block faces. The model is any 3D membrane model, e.g.
a short run of ``biounet train --preset vnc --dims 3``. Reported: wall time per phase (from the result's
timings), blocks, cells, the largest resident memory of this process and of the workers. Run by hand::

    .venv/bin/python benchmarks/blockwise_cells.py runs/vnc3d-membranes --data ../shared/data/drosophila_vnc_sstem \\
        --work runs/vnc1024 --size 1024 --workers 2
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def build_volume(data: Path, path: Path, size: int) -> Path:
    """The stack mirrored to ``size`` sections and ``size x size`` pixels, as a uint8 zarr array (written once)."""
    import tifffile
    import zarr

    if (path / "zarr.json").exists() or (path / ".zarray").exists():
        return path
    sections = np.stack([tifffile.imread(p) for p in sorted((data / "stack1" / "raw").glob("*.tif"))])
    from biounet.augmentation.geometry import mirror_index

    rows = mirror_index(np.arange(size), sections.shape[1])
    cols = mirror_index(np.arange(size), sections.shape[2])
    array = zarr.create_array(str(path), shape=(size, size, size), chunks=(64, 256, 256), dtype="uint8")
    for start in range(0, size, 64):
        z = mirror_index(np.arange(start, min(size, start + 64)), sections.shape[0])
        array[start:start + len(z)] = sections[z][:, rows][:, :, cols]
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a 3D membrane model (run folder or model.safetensors)")
    parser.add_argument("--data", type=Path, required=True, help="the drosophila_vnc_sstem folder")
    parser.add_argument("--work", type=Path, required=True, help="folder for the volume and the output")
    parser.add_argument("--size", type=int, default=1024, help="edge of the volume in voxels")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--block-size", default="64,512,512", help="block edge per axis (Z,Y,X)")
    parser.add_argument("--overlap", default="4,64,64", help="voxels of neighbouring blocks the cells see (Z,Y,X)")
    args = parser.parse_args(argv)
    from biounet.inference.blockwise import BlockwiseOptions, predict_blockwise
    from biounet.inference.predictor import PredictOptions

    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    volume = build_volume(args.data, args.work / f"vnc-{args.size}.zarr", args.size)
    print(f"volume {args.size}^3 ready in {time.perf_counter() - started:.0f} s", flush=True)
    out = args.work / f"cells-{args.size}.ome.zarr"
    block = [int(v) for v in args.block_size.split(",")]
    overlap = [int(v) for v in args.overlap.split(",")]
    result = predict_blockwise(args.model, volume, out, ["instances"], dask=f"local:{args.workers}",
                               options=PredictOptions(progress=True),
                               blockwise=BlockwiseOptions(block_size=block, overlap=overlap))
    import zarr

    cells = zarr.open_array(result.arrays["instances"], mode="r")
    largest = 0
    for start in range(0, args.size, 64):
        largest = max(largest, int(np.asarray(cells[start:start + 64]).max()))
    report = {"size": args.size, "blocks": result.blocks, "workers": args.workers, "timings_s": result.timings,
              "settings": result.settings, "largest_cell_id": largest,
              "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "workers_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}
    print(json.dumps(report, indent=2))
    (args.work / f"cells-{args.size}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
