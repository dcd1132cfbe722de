"""The argument types every subcommand shares: one spelling of an option everywhere."""

from __future__ import annotations

import argparse

import pytest

from biounet.cli import options


@pytest.mark.parametrize(
    ("text", "value"), [("256", 256), ("256,128", (256, 128)), ("256x128", (256, 128)), ("8,64,64", (8, 64, 64))]
)
def test_tile_size_spellings(text, value):
    assert options.tile_size(text) == value


@pytest.mark.parametrize("text", ["", "abc", "256,", "0", "-5", "64,0"])
def test_bad_tile_sizes_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="tile size"):
        options.tile_size(text)


def test_positive_int_and_threshold():
    assert options.positive_int("3") == 3
    assert options.threshold("0.5") == 0.5
    for bad in ("0", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.positive_int(bad)
    for bad in ("1", "1.5", "-0.1", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            options.threshold(bad)


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, biounet.cli.main as m; m.build_parser(); print('torch' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "False"


def test_tile_shape_per_axis():
    from biounet.errors import DataError

    assert options.tile_shape(256, 2) == (256, 256) and options.tile_shape((8, 64, 64), 3) == (8, 64, 64)
    with pytest.raises(DataError, match="--tile-size needs 1 or 3 numbers for a 3D model"):
        options.tile_shape((64, 64), 3)
