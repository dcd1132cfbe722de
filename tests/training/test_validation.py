"""Training validation: metric names, and the membrane threshold chosen as ``biounet evaluate`` chooses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.data.readers import Sample
from biounet.data.targets import TargetConfig, membrane_target
from biounet.evaluation.scoring import evaluate_pair
from biounet.evaluation.summary import best_common_threshold, summarise
from biounet.inference.cells import CellSettings, cells_from_membranes
from biounet.metrics import DEFAULT_THRESHOLDS, adapted_rand_error, names, sweep_metrics
from biounet.training.validation import (
    CELL_INTERIOR_THRESHOLDS,
    CELL_MERGE_THRESHOLDS,
    CELL_SEED_DISTANCES,
    SETTING_KEYS,
    ValidationResult,
    main_metric,
    membrane_metrics,
    validate,
)


def test_public_names_and_main_metrics():
    assert SETTING_KEYS == (
        "threshold", "min_size", "seed_height", "foreground_threshold", "cells_interior_threshold",
        "cells_seed_distance", "cells_merge_threshold",
    )
    assert callable(validate) and ValidationResult
    assert main_metric(TargetConfig(kind="instances", style="membrane")) == (names.ADAPTED_RAND_ERROR, False)
    assert main_metric(TargetConfig(kind="instances")) == (names.AVERAGE_PRECISION, True)
    assert main_metric(TargetConfig(kind="semantic")) == (names.MEAN_IOU, True)


def test_membrane_threshold_is_the_best_common_threshold_of_evaluate(rng):
    label = np.full((48, 48), 255, np.uint8)
    label[::12, :] = 0
    label[:, ::16] = 0
    target = membrane_target(label)
    samples, probabilities = [], []
    for i in range(2):
        interior = np.clip((label > 0) * 0.6 + 0.2 + rng.normal(0, 0.25, label.shape), 0, 1).astype(np.float32)
        samples.append(Sample(str(i), np.zeros((1, 48, 48), np.float32), target, Path(f"{i}.png")))
        probabilities.append(np.stack([1 - interior, interior]))
    metrics, per_image, _ = membrane_metrics(samples, probabilities)

    rand = [sweep_metrics(p[1], target.instances, (names.ADAPTED_RAND_ERROR,))[names.ADAPTED_RAND_ERROR].values
            for p in probabilities]
    chosen = best_common_threshold(rand, higher_is_better=False)
    assert metrics["threshold"] == DEFAULT_THRESHOLDS[chosen.index]
    assert metrics[names.ADAPTED_RAND_ERROR] == pytest.approx(chosen.value)
    assert set(per_image[0]) == {names.ADAPTED_RAND_ERROR, names.PIXEL_ERROR, names.CELLS_ADAPTED_RAND_ERROR}

    results = [
        evaluate_pair(s.name, p[1], target.instances, task="isbi", pred_kind="probability",
                      thresholds=DEFAULT_THRESHOLDS, warping=False, pred_path=Path(s.name))
        for s, p in zip(samples, probabilities)
    ]  # fmt: skip
    mean = summarise(results, "isbi")
    assert mean[names.ADAPTED_RAND_ERROR] == pytest.approx(metrics[names.ADAPTED_RAND_ERROR])
    assert mean[names.threshold_key(names.ADAPTED_RAND_ERROR)] == metrics["threshold"]
    assert mean[names.PIXEL_ERROR] == pytest.approx(metrics[names.PIXEL_ERROR])


def test_membrane_cells_are_scored_at_the_best_setting_of_their_grid(rng):
    label = np.full((60, 60), 255, np.uint8)
    label[::15, :] = label[:, ::20] = 0
    target = membrane_target(label)
    interior = np.clip((label > 0) * 0.8 + 0.1 + rng.normal(0, 0.05, label.shape), 0, 1).astype(np.float32)
    interior[30, 10] = 0.9  # a faint gap in a membrane: thresholding merges the two cells at any threshold
    samples = [Sample("0", np.zeros((1, 60, 60), np.float32), target, Path("0.png"))]
    metrics, per_image, _ = membrane_metrics(samples, [np.stack([1 - interior, interior])])

    assert metrics["cells_interior_threshold"] in CELL_INTERIOR_THRESHOLDS
    assert metrics["cells_seed_distance"] in CELL_SEED_DISTANCES
    assert metrics["cells_merge_threshold"] in CELL_MERGE_THRESHOLDS
    settings = CellSettings(interior_threshold=metrics["cells_interior_threshold"],
                            seed_distance=metrics["cells_seed_distance"],
                            merge_threshold=metrics["cells_merge_threshold"])
    error = adapted_rand_error(target.instances, cells_from_membranes(interior, settings)).error
    assert metrics[names.CELLS_ADAPTED_RAND_ERROR] == pytest.approx(error)
    assert per_image[0][names.CELLS_ADAPTED_RAND_ERROR] == pytest.approx(error)
    assert error == 0.0 < metrics[names.ADAPTED_RAND_ERROR]
