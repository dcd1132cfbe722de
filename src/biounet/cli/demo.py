"""``biounet demo``: the whole job on an embedded default, offline, in minutes on a CPU.

Synthetic microscopy from :mod:`biounet.data.synthetic` (a nucleus-style fluorescence set and a
membrane-style EM set), a U-Net trained on each with the paper's weight map and elastic deformation,
overlap-tile inference on a large image, touching cells separated, evaluation with the field's metrics,
and one HTML report.
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Run biounet's whole job on built-in synthetic data, offline, and write a report to look at.

For each of two styles, nuclei (fluorescence, touching nuclei) and membrane (EM-like cells separated by
thin membranes), the demo:
  1. generates a small training set, a validation set and one large test image (--size, default 2048 px)
     with ground truth (biounet.data.synthetic: texture, blur, uneven illumination, noise);
  2. trains a U-Net (valid convolutions as in the paper, batch norm, the eq.-2 weight map with w0 = 10,
     sigma = 5 px, elastic deformation on a 3x3 grid with 10 px std, rotations, flips, intensity changes)
     for --minutes per style;
  3. segments the large image with overlap-tile inference (mirrored borders, tiles on the pooling grid)
     and separates touching cells by seeded watershed;
  4. evaluates: foreground IoU, F1 at IoU 0.5 and DSB average precision of the instances; for the
     membrane style also the ISBI metrics (adapted Rand error, warping error, pixel error);
  5. writes OUT/report.html (self-contained, figures embedded) with PNG figures beside it, and
     OUT/metrics.json.

The runs are in OUT/runs/<style> (use them with 'biounet predict'); the data in OUT/data/<style>.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train, segment, evaluate and report on built-in synthetic data (a few minutes on a CPU)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    parser.add_argument("--minutes", type=float, default=3.0, help="training minutes per style (default 3)")
    parser.add_argument("--size", type=int, default=2048, help="side of the large test image in pixels (2048)")
    parser.add_argument("--styles", nargs="+", default=["nuclei", "membrane"], choices=["nuclei", "membrane"],
                        help="which synthetic styles to run (default: both)")
    parser.add_argument("--train-images", type=int, default=16, help="training images per style (256x256)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the training")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biounet.demo import DemoSettings, run_demo

    settings = DemoSettings(
        out=Path(args.out), minutes=args.minutes, size=args.size, styles=tuple(args.styles),
        train_images=args.train_images, seed=args.seed, progress=not args.quiet,
    )
    report = run_demo(settings)
    print(f"report: {report}")
    return 0
