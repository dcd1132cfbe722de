"""The ``biounet`` command: one entry point, one module per subcommand.

Each subcommand module in :mod:`biounet.cli` has ``register(subparsers)``, which adds its parser and
sets ``func`` to the function that runs it.  Heavy imports (torch) happen inside those functions, so
``biounet --help`` is instant.  Errors that are the user's input (:class:`biounet.errors.BiounetError`,
missing files) are printed as one line and exit with status 2; other operating-system errors (disk full,
permissions) likewise as one line naming the path, with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from biounet import __version__

SUBCOMMANDS: tuple[str, ...] = ("demo", "train", "predict", "evaluate", "data", "export", "info")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (the usage block only with ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _messages(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """biounet's log messages on stderr as ``biounet: ...`` (warnings only with ``--quiet``) for the command's
    duration; the demo prints its own."""
    from biounet.runtime import console_logging

    if args.command == "demo":
        return contextlib.nullcontext()
    return console_logging(bool(getattr(args, "quiet", False)))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="biounet",
        description=(
            "biounet: the U-Net (Ronneberger et al., MICCAI 2015) for biomedical image segmentation. "
            "Train from a few annotated images, segment images of any size with overlap-tile inference, "
            "separate touching cells, and evaluate with the field's metrics (ISBI 2012 Rand, warping and "
            "pixel error; DSB 2018 average precision)."
        ),
        epilog="Run 'biounet COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"biounet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"biounet.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from biounet.errors import BiounetError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with _messages(args):
            return int(args.func(args) or 0)
    except BiounetError as error:
        print(f"biounet: error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"biounet: error: {error.filename or error}: no such file or directory", file=sys.stderr)
        return 2
    except OSError as error:  # disk full, permissions, a file where a folder should be, ...: one line, no traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"biounet: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("biounet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
