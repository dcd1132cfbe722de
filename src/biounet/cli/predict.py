"""``biounet predict``: segment images or stacks of any size with a trained model (overlap-tile strategy)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from biounet.cli import options
from biounet.data.finite import NAN_POLICIES
from biounet.inference.outputs import OUTPUT_KINDS, PROBABILITY_DTYPES

FORMATS = ("tif", "zarr", "npy", "png")

DESCRIPTION = """\
Segment images with a trained biounet model, tile by tile (the U-Net paper's overlap-tile strategy):
any image size works, borders are extended by mirroring, and tiles of a valid-padded model join
exactly (the result equals one pass over the whole image); a same-padded model (the default recipe's)
takes an image that fits in memory in one pass.  Input images are read lazily and outputs are written
progressively, so very large images (e.g. 8192 x 8192) need little memory.  Folders of small images go
through the network in batches of same-shape images under one progress bar.  Larger than one machine:
--dask predicts block by block on a Dask cluster into OME-Zarr (docs/cluster.md).

MODEL_OR_RUN_DIR is a .safetensors model saved by biounet, or a run directory written by
'biounet train' (containing model.safetensors).  INPUT is any number of image files (PNG, TIFF,
.npy, .zarr), folders (every image inside) or quoted glob patterns ('data/*.tif').  A multi-page TIFF
is a 3D stack for a 3D model; for a 2D model it is predicted slice by slice, and for a 2.5D model (trained
with --z-context k) each section with the k sections on either side as extra channels (mirrored at the
stack's ends; a single 2D image is refused).  --spacing gives the voxel size when the model's is not
the inputs' (the cells of membrane models are made in 3D with it).

For every input and requested output, DIR gets NAME_OUTPUT.FORMAT (e.g. cell_probabilities.tif) and
a JSON sidecar NAME_OUTPUT.FORMAT.json recording the model (path, SHA-256), the settings, the image
shape and the timings.  Every file is written atomically: after an error no partial file exists.
Bad inputs (unreadable or truncated image, wrong dimensionality or channel count, NaN or infinite
pixels, a file that is not a biounet model) are all reported before anything is predicted, in one line
naming each file (exit 2); --skip-bad predicts the good ones and exits 1 with the list. An output never
replaces a folder it did not write."""

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
  biounet predict runs/nuclei nuclei/ --out pred --output instances --tta 8
  biounet predict runs/vnc stack.tif --out pred --output instances --spacing 50,4.6,4.6
  biounet predict model.safetensors big.zarr --out big_pred.zarr --dask local:4 --output instances"""


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
    _add_speed_arguments(parser)
    _add_output_format_arguments(parser)
    _add_stack_arguments(parser)
    _add_dask_arguments(parser)
    parser.set_defaults(func=run)


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--spacing",
        type=options.spacing,
        metavar="Z,Y,X",
        help="the inputs' voxel size Z,Y,X (or pixel size Y,X) in any one unit, e.g. 50,4.6,4.6 for ssTEM sections "
        "10x thicker than their pixels (default: the model's, from its training data); membrane models' cells use "
        "it: a 3D model's in 3D, a 2D or 2.5D model's on a stack in 3D over the whole stack when it has 3 values "
        "(cells continue across sections), else section by section; the sidecar records the spacing used",
    )


def _add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed prediction (Dask)")
    group.add_argument(
        "--dask",
        metavar="CLUSTER",
        help="predict in blocks on a Dask cluster: local:N (N worker processes here) or a scheduler address "
        "(tcp://host:8786); the output is one OME-Zarr store per input (--out X.zarr for one input, else "
        "DIR/NAME.ome.zarr) with probabilities as the image and labels/instances as OME-Zarr labels; the "
        "workers must see the input, the model and the output folder",
    )
    group.add_argument(
        "--block-size",
        type=options.tile_size,
        metavar="N",
        help="--dask: block edge in pixels, N or Z,Y,X, rounded to whole tiles (default: 2048 in 2D, 256 in 3D)",
    )


def _add_speed_arguments(parser: argparse.ArgumentParser) -> None:
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


def _add_output_format_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--seed-height",
        type=options.threshold,
        metavar="H",
        help="instances of touching objects: split seeds at the maxima of the distance map that stand this high "
        "(0..1; the model's distance output, else the interior's distance transform); 0: the paper's seeds "
        "(default: the model's, as for --threshold; else 0)",
    )
    parser.add_argument(
        "--foreground-threshold",
        type=options.threshold,
        metavar="F",
        help="instances of touching objects: objects cover the pixels whose foreground probability exceeds this "
        "(0..1; higher draws tighter outlines; default: the model's, as for --threshold; else 0.5)",
    )
    parser.add_argument("--threads", type=options.positive_int, help="CPU threads (default: all cores available)")
    parser.add_argument(
        "--context",
        choices=("halo", "exact"),  # biounet.tiling.SAME_CONTEXTS, spelt here to keep torch out of --help
        default="halo",
        help="same-padded models, images too large for one pass: the tiles' margin, halo (default: the halo on "
        "the pooling grid, 80 px for depth 4, as exact as bfloat16) or exact (112 px: equals a whole-image pass)",
    )
    parser.add_argument(
        "--nan-policy",
        choices=NAN_POLICIES,
        default="refuse",
        help="NaN or infinite pixels in an input: refuse (default: an error naming the file and the count) or "
        "fill (replace them by the image's median)",
    )
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="predict the good inputs when some are bad, then list the bad ones and exit with status 1 "
        "(default: check every input first and predict nothing if any is bad)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no messages")


def run(args: argparse.Namespace) -> int:
    from biounet.errors import DataError
    from biounet.inference.files import collect_inputs, plan_outputs
    from biounet.inference.folder import predict_files
    from biounet.inference.instances import instance_target, prediction_spacing
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
    if args.tile_size is not None:
        options.tile_shape(args.tile_size, config.spatial_dims)
    kinds = list(dict.fromkeys(args.outputs or ["probabilities"]))
    if "instances" in kinds:
        instance_target(bundle, args.threshold, args.min_size, args.spacing, args.seed_height,
                        args.foreground_threshold)
    prediction_spacing(bundle, args.spacing)  # 2 values for a 3D model: one line, before any work
    if args.dask:
        return _run_dask(bundle, kinds, args, device, started)
    out_dir = Path(args.out)
    plan = plan_outputs(collect_inputs(args.inputs), bundle, out_dir, kinds, args.format, args.channel_axis,
                        skip_bad=args.skip_bad, nan_policy=args.nan_policy)
    done = predict_files(bundle, plan.inputs, _options(args, device), channel_axis=args.channel_axis,
                         skip_bad=args.skip_bad, on_written=None if args.quiet else _print_written)
    plan.bad.extend(done.bad)
    if not args.quiet:
        predicted = len(done.results)
        print(
            f"biounet predict: {predicted} image{'s' if predicted != 1 else ''} -> {out_dir} "
            f"in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    if plan.bad:
        print(f"biounet predict: skipped {plan.bad_summary()}", file=sys.stderr)
        return 1
    return 0


def _options(args: argparse.Namespace, device: Any) -> Any:
    from biounet.inference.predictor import PredictOptions

    return PredictOptions(
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        tta=args.tta,
        precision=args.precision,
        device=device,
        num_threads=args.threads,
        probability_dtype="uint8" if args.format == "png" else args.probability_dtype,
        threshold=args.threshold,
        min_size=args.min_size,
        seed_height=args.seed_height,
        foreground_threshold=args.foreground_threshold,
        nan_policy=args.nan_policy,
        progress=not args.quiet,
        context=args.context,
        spacing=args.spacing,
    )


def _print_written(planned: Any, result: Any) -> None:
    from tqdm.auto import tqdm

    for written in result.outputs.values():
        for item in written if isinstance(written, list) else [written]:
            tqdm.write(f"wrote {item}", file=sys.stderr)


def _run_dask(bundle: Any, kinds: list[str], args: argparse.Namespace, device: Any, started: float) -> int:
    from biounet.errors import DataError
    from biounet.inference.blockwise import BlockwiseOptions, dask_client, predict_blockwise
    from biounet.inference.files import collect_inputs, output_stem

    inputs = collect_inputs(args.inputs)
    out = Path(args.out)
    if out.suffix == ".zarr" and len(inputs) != 1:
        raise DataError(f"{out}: --dask writes one OME-Zarr store per input; give a folder for {len(inputs)} inputs")
    options = _options(args, device)
    with dask_client(args.dask) as (client, dashboard):
        if not args.quiet:
            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            print(f"biounet predict: Dask cluster with {workers} workers; dashboard: {dashboard or 'none'}",
                  file=sys.stderr)
        for path in inputs:
            target = out if out.suffix == ".zarr" else out / f"{output_stem(path)}.ome.zarr"
            result = predict_blockwise(bundle, path, target, kinds, dask=client, options=options,
                                       blockwise=BlockwiseOptions(block_size=args.block_size),
                                       channel_axis=args.channel_axis or "auto")
            if not args.quiet:
                print(f"wrote {result.path} ({result.blocks} blocks of {result.settings['block_shape']}; "
                      f"{', '.join(result.arrays)})", file=sys.stderr)
    if not args.quiet:
        print(f"biounet predict: {len(inputs)} image{'s' if len(inputs) != 1 else ''} -> {out} "
              f"in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0
