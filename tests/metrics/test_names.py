"""One spelling of each metric name across metrics, evaluation and training validation."""

from __future__ import annotations

from biounet.metrics import METRICS, names


def test_every_swept_metric_has_a_canonical_name_and_the_same_direction():
    for name, spec in METRICS.items():
        assert names.HIGHER_IS_BETTER[name] == spec.higher_is_better, name


def test_table_titles_are_short_and_only_for_known_names():
    assert set(names.COLUMN_TITLES) <= set(names.HIGHER_IS_BETTER)
    assert names.column_title(names.ADAPTED_RAND_ERROR) == "rand_err" and names.column_title("dice_1") == "dice_1"
    assert names.threshold_key(names.PIXEL_ERROR) == "pixel_error_threshold"
