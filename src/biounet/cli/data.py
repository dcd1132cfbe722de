"""``biounet data``: get training data, public (``fetch``) or synthetic (``synth``), in biounet's layout."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Get data in the layout that 'biounet train --images DIR/images --masks DIR/masks' reads:
DIR/images/<name> and DIR/masks/<name> (an image and its label image share the file name).

  biounet data list                                   the public datasets biounet knows
  biounet data fetch isbi2012 --to data/isbi          download ISBI 2012 (EM membranes)
  biounet data fetch dsb2018 --to data/dsb --from ~/Downloads/stage1_train.zip
                                                      import a copy you already have (no network)
  biounet data synth nuclei --to data/synth --count 20 --shape 512 512
                                                      generate synthetic nuclei (or 'membrane' EM)
"""

FETCH_DESCRIPTION = """\
Download a public dataset, verify it and lay it out as DIR/images + DIR/masks (+ DIR/dataset.json with
the source, checksums, label encoding, citation and licence).

Downloads resume where they stopped (run the command again after an interruption), every file is
checked against its published SHA-256 before it gets its final name (a mismatch is refused and
deleted), and files already present and verified are not downloaded again.  The originals stay in
DIR/raw/.

Datasets:
  isbi2012  ISBI 2012 EM challenge, 30 training slices 512x512 (+30 unlabelled test slices in
            DIR/test/images).  Labels kept as published: 0 = membrane, 255 = cell interior.
  dsb2018   2018 Data Science Bowl stage 1 training nuclei (with community fixes): each image becomes
            DIR/images/<id>.tif (channel 0, uint8) and DIR/masks/<id>.tif (uint16 instance labels made
            from the per-nucleus mask PNGs).

--from imports a local copy instead (a folder or .zip with the original files, e.g. a Kaggle
stage1_train.zip, the ISBI train-volume.tif/train-labels.tif, or a folder of per-slice PNGs).
Set BIOUNET_DATA_MIRROR=URL (or --mirror URL) to download URL/<dataset>/<file> from a mirror.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="get training data: download public datasets or generate synthetic ones",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=lambda args: _usage(parser))
    actions = parser.add_subparsers(dest="data_action", metavar="ACTION")

    listing = actions.add_parser("list", help="list the public datasets", description="List the public datasets.")
    listing.set_defaults(func=run_list)

    fetch = actions.add_parser(
        "fetch",
        help="download (or import) a public dataset",
        description=FETCH_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fetch.add_argument("name", help="dataset name: isbi2012 or dsb2018 (see 'biounet data list')")
    fetch.add_argument("--to", required=True, metavar="DIR", help="output folder (created if missing)")
    fetch.add_argument(
        "--from", dest="source", metavar="PATH", help="import this local folder or .zip instead of downloading"
    )
    fetch.add_argument("--mirror", metavar="URL", help="download URL/<name>/<file> (default: $BIOUNET_DATA_MIRROR)")
    fetch.add_argument("--limit", type=int, metavar="N", help="dsb2018: convert only the first N images (by id)")
    fetch.add_argument(
        "--fluorescence-only",
        action="store_true",
        help="dsb2018: keep only greyscale dark-background (fluorescence) images, drop brightfield/H&E",
    )
    fetch.add_argument("--retries", type=int, default=3, metavar="N", help="retries per file on network errors (3)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")
    fetch.set_defaults(func=run_fetch)

    synth = actions.add_parser(
        "synth",
        help="generate a synthetic dataset (nuclei or EM membranes)",
        description=(
            "Generate synthetic microscopy with exact instance labels (no download): 'nuclei' is "
            "fluorescence-like (uint16 images, touching nuclei, uneven illumination, camera noise), "
            "'membrane' is EM-like (uint8, cells separated by dark 2-4 px membranes, label 0 = membrane). "
            "Writes DIR/images/<style>_NNN.tif and DIR/masks/<style>_NNN.tif (uint16 instance labels) "
            "and DIR/synthetic.json.  The same --seed gives the same images."
        ),
    )
    synth.add_argument("style", choices=("nuclei", "membrane"), help="what to simulate")
    synth.add_argument("--to", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--count", type=int, default=16, metavar="N", help="number of images (16)")
    synth.add_argument(
        "--shape", type=int, nargs="+", default=[256, 256], metavar="PX", help="Y X (or Z Y X) in pixels (256 256)"
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed (0)")
    synth.add_argument("--no-progress", action="store_true", help="no progress bar")
    synth.set_defaults(func=run_synth)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_list(args: argparse.Namespace) -> int:
    from biounet.data.fetch import describe

    print(describe())
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from biounet.data.fetch import fetch, get_dataset

    spec = get_dataset(args.name)
    if args.limit is not None and args.limit < 1:
        from biounet.errors import DataError

        raise DataError(f"--limit must be >= 1, got {args.limit}")
    out = fetch(
        spec,
        args.to,
        source=args.source,
        base_url=f"{args.mirror.rstrip('/')}/{spec.name}/" if args.mirror else None,
        limit=args.limit,
        fluorescence_only=args.fluorescence_only,
        retries=args.retries,
        progress=not args.no_progress,
    )
    import json

    summary = json.loads((out / "dataset.json").read_text())
    print(
        f"{spec.name}: {summary.get('pairs', 0)} image/label pairs in {out}/images and {out}/masks "
        f"(labels: {spec.label_encoding})"
    )
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from biounet.data.synthetic import generate_dataset
    from biounet.errors import DataError

    if args.count < 1:
        raise DataError(f"--count must be >= 1, got {args.count}")
    if len(args.shape) not in (2, 3) or min(args.shape) < 8:
        raise DataError(f"--shape must be Y X or Z Y X with every side >= 8 px, got {' '.join(map(str, args.shape))}")
    out = generate_dataset(
        args.to, args.style, args.count, tuple(args.shape), seed=args.seed, progress=not args.no_progress
    )
    print(f"{args.count} synthetic {args.style} images in {out}/images, labels in {out}/masks")
    return 0
