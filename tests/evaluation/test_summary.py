"""The mean over images with one threshold for the whole set, the table and the files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from biounet.evaluation.scoring import ImageResult
from biounet.evaluation.summary import best_common_threshold, format_table, json_report, summarise, write_csv
from biounet.metrics import names

R = names.ADAPTED_RAND_ERROR


def swept(name: str, values: tuple[float, ...]) -> ImageResult:
    index = int(np.argmin(values))
    parts = {R: [{"rand_split": v} for v in values]}
    return ImageResult(name, "probability", (0.3, 0.5, 0.7), {R: values}, parts, {R: index})


def test_best_common_threshold_can_be_worse_than_the_per_image_bests():
    chosen = best_common_threshold([(0.1, 0.2, 0.9), (0.9, 0.3, 0.1)], higher_is_better=False)
    assert chosen.index == 1 and chosen.value == pytest.approx(0.25)  # the per-image bests average 0.1
    assert best_common_threshold([(0.1, float("nan")), (0.3, 0.5)], True).curve.tolist() == [0.2, 0.5]


def test_summarise_uses_the_common_threshold_for_metric_and_parts():
    mean = summarise([swept("a", (0.1, 0.2, 0.9)), swept("b", (0.9, 0.3, 0.1))], "isbi")
    assert mean[R] == pytest.approx(0.25) and mean[names.threshold_key(R)] == 0.5
    assert mean["rand_split"] == pytest.approx(0.25)


def test_summarise_without_a_common_sweep_is_the_plain_mean():
    one = ImageResult("a", "labels", None, {R: (0.2,)}, {}, {R: 0})
    two = ImageResult("b", "labels", None, {R: (float("nan"),)}, {}, {R: 0})
    assert summarise([one, two], "isbi")[R] == pytest.approx(0.2)


def test_table_uses_short_titles_and_files_use_canonical_names(tmp_path: Path):
    rows = [swept("a", (0.1, 0.2, 0.9)).row()]
    mean = summarise([swept("a", (0.1, 0.2, 0.9))], "isbi")
    table = format_table([*rows, mean], [R], ["rand_split"]).splitlines()
    assert table[0].split() == ["image", "rand_err", "@t", "rand_split"] and table[-1].split()[0] == "mean"
    write_csv(tmp_path / "s.csv", [*rows, {**mean, "rand_split": math.nan}])
    with open(tmp_path / "s.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert float(read[0][R]) == 0.1 and read[1]["rand_split"] == ""
    report = json_report(rows, mean, task="isbi", pred=Path("p"), gt=Path("g"), thresholds=(0.3, 0.5, 0.7))
    assert report["mean_protocol"].startswith("best common") and report["images"][0][R] == 0.1


def test_unswept_extras_are_plain_means_beside_the_common_threshold():
    C = names.CELLS_ADAPTED_RAND_ERROR
    one, two = swept("a", (0.1, 0.2, 0.9)), swept("b", (0.9, 0.3, 0.1))
    one.extras[C], two.extras[C] = 0.1, 0.3
    mean = summarise([one, two], "isbi")
    assert mean[C] == pytest.approx(0.2) and names.threshold_key(C) not in mean
    assert one.row()[C] == 0.1
    assert "cells_rand_err" in format_table([one.row(), mean], [R, C], [])
