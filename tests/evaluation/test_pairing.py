"""Prediction <-> ground-truth files: by stem, without the suffixes of ``biounet predict``."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.errors import DataError, ImageReadError
from biounet.evaluation.pairing import pair_files, prediction_stem
from biounet.io.images import write_image


def test_folders_pair_by_stem_in_natural_order_and_list_the_rest(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    image = np.zeros((4, 4), np.uint8)
    for name in ("10_probabilities.tif", "2.tif", "only_pred.tif"):
        write_image(pred / name, image)
    for name in ("2.png", "10.png", "only_gt.png"):
        write_image(gt / name, image)
    (pred / "notes.txt").write_text("not an image")
    pairing = pair_files(pred, gt)
    assert [(n, p.name, g.name) for n, p, g in pairing.pairs] == [
        ("2", "2.tif", "2.png"), ("10", "10_probabilities.tif", "10.png")
    ]  # fmt: skip
    assert [p.name for p in pairing.unmatched_pred] == ["only_pred.tif"]
    assert [p.name for p in pairing.unmatched_gt] == ["only_gt.png"]


def test_two_files_and_bad_input(tmp_path):
    write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    write_image(tmp_path / "d" / "b.png", np.zeros((4, 4), np.uint8))
    assert pair_files(tmp_path / "a.tif", tmp_path / "d" / "b.png").pairs[0][0] == "a"
    with pytest.raises(ImageReadError, match="PRED"):
        pair_files(tmp_path / "nope.tif", tmp_path / "a.tif")
    with pytest.raises(DataError, match="is a folder"):
        pair_files(tmp_path / "d", tmp_path / "a.tif")
    with pytest.raises(DataError, match="no prediction"):
        pair_files(tmp_path / "d", _other(tmp_path))
    write_image(tmp_path / "d" / "b_labels.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="two files named 'b'"):
        pair_files(tmp_path / "d", _other(tmp_path))


def _other(tmp_path):
    write_image(tmp_path / "e" / "c.png", np.zeros((4, 4), np.uint8))
    return tmp_path / "e"


def test_prediction_stem(tmp_path):
    assert prediction_stem(tmp_path / "18_probabilities.tif") == "18"
    assert prediction_stem(tmp_path / "18_instances.tif") == "18" and prediction_stem(tmp_path / "18.png") == "18"
