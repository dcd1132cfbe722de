"""``biounet predict``: segment images or stacks of any size with a trained model (overlap-tile strategy)."""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path
from typing import Any

from biounet.cli import options
from biounet.inference.outputs import OUTPUT_KINDS, PROBABILITY_DTYPES

FORMATS = ("tif", "zarr", "npy", "png")

DESCRIPTION = """\
Segment images with a trained biounet model, tile by tile (the U-Net paper's overlap-tile strategy):
any image size works, borders are extended by mirroring, and tiles of a valid-padded model join
exactly (the result equals one pass over the whole image).  Input images are read lazily and outputs
are written progressively, so very large images (e.g. 8192 x 8192) need little memory.

MODEL_OR_RUN_DIR is a .safetensors model saved by biounet, or a run directory written by
'biounet train' (containing model.safetensors).  INPUT is any number of image files (PNG, TIFF,
.npy, .zarr), folders (every image inside) or quoted glob patterns ('data/*.tif').  A multi-page TIFF
is a 3D stack for a 3D model; for a 2D model it is predicted slice by slice.

For every input and requested output, DIR gets NAME_OUTPUT.FORMAT (e.g. cell_probabilities.tif) and
a JSON sidecar NAME_OUTPUT.FORMAT.json recording the model (path, SHA-256), the settings, the image
shape and the timings.  Every file is written atomically: after an error no partial file exists.
Bad inputs (unreadable or truncated image, wrong dimensionality or channel count, a file that is not
a biounet model) are reported before anything is predicted, in one line naming the file (exit 2)."""

EPILOG = """\
outputs:
  probabilities  class probabilities (C, [Z,] Y, X), float16 on disk by default (--probability-dtype)
  labels         the most probable class per pixel ([Z,] Y, X), uint8
  instances      one label per cell ([Z,] Y, X), int32, touching cells separated (seeded watershed);
                 only for models trained for instances; needs ~30 bytes per pixel of RAM (global pass)
  logits         raw network outputs (C, [Z,] Y, X), float32

examples:
  biounet predict runs/isbi data/em/*.png --out predictions --output labels --output probabilities
  biounet predict model.safetensors big_slide.tif --out pred --format zarr --precision bf16
  biounet predict runs/nuclei nuclei/ --out pred --output instances --tta 8"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images of any size with a trained model (overlap-tile inference)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "model", metavar="MODEL_OR_RUN_DIR", help="a biounet .safetensors model or a training run directory"
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or quoted glob patterns")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the outputs (created if missing)")
    parser.add_argument(
        "--output",
        action="append",
        dest="outputs",
        choices=OUTPUT_KINDS,
        metavar="KIND",
        help="what to write: probabilities (default), labels, instances, logits; repeat for several",
    )
    parser.add_argument(
        "--tile-size",
        type=options.tile_size,
        metavar="N",
        help="largest network input tile in pixels, N or Z,Y,X (default: from the available memory, "
        "about 700 px for the paper's network in float32 and 1020 px in bf16)",
    )
    parser.add_argument(
        "--batch-size", type=options.positive_int, metavar="N", help="tiles per forward pass (default: from memory)"
    )
    parser.add_argument(
        "--tta",
        type=int,
        choices=(1, 4, 8),
        default=1,
        help="test-time augmentation: average over 1 (none), 4 (flips) or 8 (flips and 90-degree rotations) "
        "versions of every tile (default: 1)",
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="auto (default): bfloat16 on CPUs that have it (about 3x faster), float16/bfloat16 on CUDA, else float32",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tif",
        help="output file format (default: tif). tif/npy/zarr are written progressively with bounded memory; "
        "png (2D only) writes labels/instances as 8/16-bit PNG and probabilities as one uint8 PNG per class",
    )
    parser.add_argument(
        "--channel-axis",
        choices=("auto", "first", "last", "none"),
        default=None,
        help="where the channels are in the input files (default: as in the model's training data, else "
        "auto: a leading axis of the model's channel count, else a trailing one; PNG/JPEG: last)",
    )
    parser.add_argument(
        "--probability-dtype",
        choices=PROBABILITY_DTYPES,
        default="float16",
        help="how probabilities are stored (default: float16; uint8 maps 0..1 to 0..255)",
    )
    parser.add_argument(
        "--threshold",
        type=options.threshold,
        help="instances: seed threshold on P(interior) (default: the model's, chosen on its validation images "
        "when it was trained; 0.5 for a model without one)",
    )
    parser.add_argument(
        "--min-size",
        type=options.positive_int,
        help="instances: smallest seed in pixels (default: the model's, as for --threshold; else 8)",
    )
    parser.add_argument("--threads", type=options.positive_int, help="CPU threads (default: all cores available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no messages")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from biounet.errors import DataError
    from biounet.inference.instances import instance_target
    from biounet.inference.predictor import PredictOptions, predict_to
    from biounet.inference.sources import open_for_model
    from biounet.inference.tta import tta_transforms
    from biounet.io.checkpoint import load_bundle
    from biounet.runtime import resolve_device, resolve_precision

    started = time.perf_counter()
    device = resolve_device(args.device)
    bundle = load_bundle(args.model, device=device)
    config = bundle.config
    try:
        resolve_precision(args.precision, device)
        tta_transforms(args.tta, config)
    except ValueError as error:
        raise DataError(f"{args.model}: {error}") from error
    if isinstance(args.tile_size, tuple) and len(args.tile_size) != config.spatial_dims:
        raise DataError(f"--tile-size needs 1 or {config.spatial_dims} numbers for this {config.spatial_dims}D model")
    kinds = list(dict.fromkeys(args.outputs or ["probabilities"]))
    if "instances" in kinds:
        instance_target(bundle, args.threshold, args.min_size)
    if args.format == "png" and "logits" in kinds:
        raise DataError("logits are floating point and cannot be PNG; use --format tif, npy or zarr")
    inputs = collect_inputs(args.inputs)
    hint = bundle.pipeline.channel_axis if args.channel_axis is None else None
    channels = bundle.pipeline.channels

    def open_input(path: Path) -> tuple:
        """The input as a source; the training data's channel axis is a hint, ``auto`` the fallback."""
        try:
            return open_for_model(path, config, channel_axis=args.channel_axis or hint or "auto", allow_stack=True,
                                  channels=channels)
        except DataError:
            if not hint:
                raise
            return open_for_model(path, config, channel_axis="auto", allow_stack=True, channels=channels)

    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir}: --out must be a folder, this is a file")

    plans = []
    claimed: dict[Path, Path] = {}
    for path in inputs:  # check everything before predicting anything: no partial outputs
        source, info = open_input(path)
        if args.format == "png" and source.ndim != 3:
            raise DataError(f"{path}: PNG holds 2D images; this input gives shape {source.shape[1:]}: use --format tif")
        targets = {kind: out_dir / f"{_stem(path)}_{kind}.{args.format}" for kind in kinds}
        for target in targets.values():
            if target in claimed:
                raise DataError(f"{path} and {claimed[target]} would both write {target}; use separate --out folders")
            claimed[target] = path
        del source
        plans.append((path, targets))

    for path, targets in plans:
        source, info = open_input(path)
        options = PredictOptions(
            tile_size=args.tile_size,
            batch_size=args.batch_size,
            tta=args.tta,
            precision=args.precision,
            device=device,
            num_threads=args.threads,
            probability_dtype="uint8" if args.format == "png" else args.probability_dtype,
            threshold=args.threshold,
            min_size=args.min_size,
            progress=not args.quiet,
            description=path.name,
        )
        result = predict_to(bundle, source, targets, options, image_info=info)
        if not args.quiet:
            for written in result.outputs.values():
                for item in written if isinstance(written, list) else [written]:
                    print(f"wrote {item}", file=sys.stderr)
    if not args.quiet:
        count = len(plans)
        print(
            f"biounet predict: {count} image{'s' if count != 1 else ''} -> {out_dir} "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return 0


def collect_inputs(patterns: list[str]) -> list[Path]:
    """Image files from files, folders (their images, sorted) and glob patterns, without duplicates."""
    from biounet.errors import ImageReadError
    from biounet.io.images import is_image_file

    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            images = sorted(p for p in path.iterdir() if is_image_file(p))
            if not images:
                raise ImageReadError(f"{path}: no image files in this folder (PNG, TIFF, .npy, .zarr)")
            found += images
        elif path.exists():
            found.append(path)
        elif glob.has_magic(pattern):
            images = sorted(Path(p) for p in glob.glob(pattern) if is_image_file(p))
            if not images:
                raise ImageReadError(f"{pattern}: no image files match this pattern")
            found += images
        else:
            raise ImageReadError(f"{path}: no such file or folder")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)] if path.suffix else path.name


