"""Argument types shared by the subcommands, so that one option is spelt one way everywhere.

Each is an ``argparse`` ``type=``: it turns the text into a value or raises
``argparse.ArgumentTypeError``, which argparse prints as one line naming the option.
"""

from __future__ import annotations

import argparse
import math
import re


def tile_size(text: str) -> int | tuple[int, ...]:
    """``--tile-size``: ``N`` (every axis) or one size per spatial axis, ``Y,X`` / ``Z,Y,X`` in pixels.

    ``x`` is accepted as the separator too (``256x256``), as ``biounet train`` used to spell it.
    Returns an int for one number, else a tuple.
    """
    parts = re.split(r"[,xX]", text.strip())
    try:
        values = tuple(int(part) for part in parts)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"tile size must be N or N,N[,N] pixels, not {text!r}") from error
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"tile size must be positive, not {text!r}")
    return values[0] if len(values) == 1 else values


def tile_shape(size: int | tuple[int, ...], spatial_dims: int) -> tuple[int, ...]:
    """A parsed ``--tile-size`` as one size per spatial axis of the model; one line if the count is wrong."""
    from biounet.errors import DataError

    shape = (size,) * spatial_dims if isinstance(size, int) else tuple(size)
    if len(shape) != spatial_dims:
        raise DataError(f"--tile-size needs 1 or {spatial_dims} numbers for a {spatial_dims}D model")
    return shape


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def threshold(text: str) -> float:
    """A threshold on a probability, ``0 <= t < 1`` (at 1 no pixel would pass it)."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), not {text}") from error
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), not {text}")
    return value


def spacing(text: str) -> list[float]:
    """``--spacing``: the size of a voxel ``Z,Y,X`` or a pixel ``Y,X``, positive numbers in any one unit."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or not all(0 < v < math.inf for v in values):
        raise argparse.ArgumentTypeError(f"takes 2 or 3 positive sizes Z,Y,X or Y,X (e.g. 50,4.6,4.6), not {text!r}")
    return values


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text!r}")
    return value
