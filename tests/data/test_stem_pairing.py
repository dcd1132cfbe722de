"""The one stem-pairing rule shared by training (image <-> mask) and evaluation (prediction <-> truth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from biounet.data.pairing import (
    file_stem,
    index_by_stem,
    natural_key,
    pair_by_number,
    pair_by_stem,
    strip_ending,
    trailing_number,
)
from biounet.errors import DataError


def test_pair_by_stem_keeps_the_first_sets_order_and_lists_the_rest():
    first = {"2": Path("a/2.tif"), "10": Path("a/10.tif"), "x": Path("a/x.tif")}
    second = {"10": Path("b/10.png"), "2": Path("b/2.png"), "y": Path("b/y.png")}
    paired = pair_by_stem(first, second)
    assert paired.pairs == [("2", Path("a/2.tif"), Path("b/2.png")), ("10", Path("a/10.tif"), Path("b/10.png"))]
    assert paired.unmatched_first == [Path("a/x.tif")] and paired.unmatched_second == [Path("b/y.png")]


def test_a_path_under_two_stems_is_unmatched_only_when_neither_found_a_partner():
    mask = Path("m/a_mask.png")
    paired = pair_by_stem({"a": Path("i/a.png")}, {"a_mask": mask, "a": mask, "b_mask": Path("m/b_mask.png")})
    assert paired.pairs == [("a", Path("i/a.png"), mask)] and paired.unmatched_second == [Path("m/b_mask.png")]


def test_index_by_stem_refuses_two_files_of_one_stem():
    assert list(index_by_stem([Path("a.png"), Path("b.tif")], file_stem)) == ["a", "b"]
    with pytest.raises(DataError, match="two files named 'a'"):
        index_by_stem([Path("a.png"), Path("a.tif")], file_stem)


def test_names_endings_and_numbers():
    assert file_stem(Path("x/a.ome.tif")) == "a" and file_stem(Path("b.png")) == "b"
    assert sorted(["10", "2", "B1"], key=natural_key) == ["2", "10", "B1"]
    assert strip_ending("a_MASK", ("_mask",), ignore_case=True) == "a" and strip_ending("_mask", ("_mask",)) is None
    assert strip_ending("a_MASK", ("_mask",)) is None
    assert trailing_number("labels00000007") == 7 and trailing_number("seven") is None
    images = {"02": Path("02.tif"), "10": Path("10.tif")}
    masks = [Path("labels10.png"), Path("labels2.png")]
    assert pair_by_number(images, masks) == [("02", Path("02.tif"), masks[1]), ("10", Path("10.tif"), masks[0])]
    assert pair_by_number(images, masks[:1]) is None
