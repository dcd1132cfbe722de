"""Validation scores what users score (issue 20): F1, AP50 and DSB mean AP; the configured metric picks the
settings and the checkpoint; the worst images are drawn with their errors in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biounet.data.readers import Sample
from biounet.data.targets import Target, TargetConfig
from biounet.metrics import names
from biounet.metrics.matching import object_scores
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.validation import ValidationResult, instance_metrics, main_metric
from biounet.training.validation_errors import worst_images


def blob_sample() -> tuple[Sample, np.ndarray]:
    """One true object A (10x10) and a predicted foreground of A plus a 10x6 blob D beside it.

    P(interior) is 0.95 on A, 0.5 on D's core and 0.1 on the column between them, so a seed threshold of 0.3
    seeds A and D apart (A exact, D one false object: F1 2/3, AP 1/2 at every IoU), while 0.6 seeds only A,
    which then grows over D (one object of IoU 100/160 = 0.625: F1 1, AP 3/10, matched at IoU 0.5..0.6).
    So F1 prefers 0.6 and the DSB mean AP prefers 0.3.
    """
    instances = np.zeros((24, 30), np.int32)
    instances[5:15, 5:15] = 1
    classes = (instances > 0).astype(np.uint8)
    interior = np.zeros((24, 30), np.float32)
    interior[5:15, 5:15], interior[5:15, 15], interior[5:15, 16:21] = 0.95, 0.1, 0.5
    foreground = interior > 0
    probs = np.zeros((3, 24, 30), np.float32)
    probs[1] = interior
    probs[2] = np.where(foreground, 0.95 - interior, 0.0)
    probs[0] = 1.0 - probs[1] - probs[2]
    image = np.zeros((1, 24, 30), np.float32)
    return Sample("blob", image, Target(classes, instances), Path("blob.png")), probs


def test_f1_ap50_and_mean_ap_from_one_overlap_table():
    gt = np.zeros((20, 40), np.int32)
    gt[2:10, 2:10], gt[2:10, 20:30] = 1, 2
    pred = np.zeros_like(gt)
    pred[2:10, 2:9] = 5  # IoU 56/64 = 0.875 with object 1: matched at IoU 0.5 .. 0.85
    pred[12:18, 30:38] = 6  # false
    f1, ap50, mean_ap = object_scores(gt, pred)
    assert f1 == pytest.approx(2 * 1 / 4) and ap50 == pytest.approx(1 / 3)
    assert mean_ap == pytest.approx((8 * (1 / 3) + 2 * 0.0) / 10)


@pytest.mark.parametrize(("select_by", "threshold"), [(names.F1, 0.6), (names.AVERAGE_PRECISION, 0.3)])
def test_the_configured_metric_picks_the_seed_threshold(select_by, threshold):
    sample, probs = blob_sample()
    metrics, per_image, _ = instance_metrics([sample], [probs], TargetConfig("instances"), thresholds=(0.3, 0.6),
                                             min_sizes=(8,), select_by=select_by)
    assert metrics["threshold"] == threshold
    if select_by == names.F1:
        assert metrics[names.F1] == 1.0 and metrics[names.AVERAGE_PRECISION] == pytest.approx(0.3)
    else:
        assert metrics[names.F1] == pytest.approx(2 / 3) and metrics[names.AVERAGE_PRECISION] >= 0.45
    assert set(per_image[0]) == {names.F1, names.AVERAGE_PRECISION_50, names.AVERAGE_PRECISION,
                                 names.FOREGROUND_IOU}


def ringed_sample(ring: float) -> tuple[Sample, np.ndarray]:
    """One true object (10 x 10 px) whose predicted foreground probability is 0.95, inside a one-pixel ring of
    probability ``ring`` (0: none): at ``ring`` 0.55 the foreground at 0.5 is 12 x 12 (IoU 0.69, matched at IoU
    0.5..0.65 only: mean AP 0.4), at 0.6 and above exact (mean AP 1)."""
    instances = np.zeros((24, 24), np.int32)
    instances[6:16, 6:16] = 1
    foreground = np.zeros((24, 24), np.float32)
    foreground[5:17, 5:17] = ring
    foreground[6:16, 6:16] = 0.95
    probs = np.zeros((3, 24, 24), np.float32)
    probs[1, 8:14, 8:14] = 0.9
    probs[2] = foreground - probs[1]
    probs[0] = 1 - foreground
    classes = (instances > 0).astype(np.uint8)
    return Sample("ringed", np.zeros((1, 24, 24), np.float32), Target(classes, instances), Path("ringed.png")), probs


def test_validation_chooses_the_foreground_threshold_that_draws_the_true_outlines():
    """The seeds are chosen at the foreground 0.5, then the foreground threshold among (0.4, 0.5, 0.6, 0.7): 0.6
    and 0.7 both draw the true outline, and the tie keeps the one nearer 0.5; without a ring 0.5 stays."""
    sample, probs = ringed_sample(0.55)
    target = TargetConfig("instances")
    metrics, per_image, _ = instance_metrics([sample], [probs], target, thresholds=(0.5,), min_sizes=(8,))
    assert metrics["foreground_threshold"] == 0.6
    assert metrics[names.AVERAGE_PRECISION] == 1.0 and per_image[0][names.FOREGROUND_IOU] == 1.0
    fixed, _, _ = instance_metrics([sample], [probs], target, thresholds=(0.5,), min_sizes=(8,),
                                   foreground_thresholds=(0.5,))
    assert fixed["foreground_threshold"] == 0.5 and fixed[names.AVERAGE_PRECISION] == pytest.approx(0.4)
    assert fixed[names.FOREGROUND_IOU] == pytest.approx(100 / 144)
    sample, probs = ringed_sample(0.0)
    exact, _, _ = instance_metrics([sample], [probs], target, thresholds=(0.5,), min_sizes=(8,))
    assert exact["foreground_threshold"] == 0.5 and exact[names.AVERAGE_PRECISION] == 1.0


def test_the_configured_metric_picks_the_checkpoint():
    """The best checkpoint so far had F1 1 and AP 0.3; a new one with F1 2/3 and AP 0.5 is better by mean AP only."""
    target = TargetConfig("instances")
    assert main_metric(target) == (names.AVERAGE_PRECISION, True)
    earlier = {names.F1: 1.0, names.AVERAGE_PRECISION: 0.3}
    later = {names.F1: 2 / 3, names.AVERAGE_PRECISION: 0.5}
    for select_by, improves in ((None, True), (names.AVERAGE_PRECISION, True), (names.F1, False)):
        main, higher = main_metric(target, select_by)
        result = ValidationResult(metrics=later, main=main, higher_is_better=higher)
        assert result.better_than(earlier[main]) is improves


def test_select_by_is_checked_against_the_target():
    touching = {"data": {"target": {"kind": "instances"}}}
    assert TrainConfig.from_dict({**touching, "select_by": "f1"}).select_by == "f1"
    with pytest.raises(ConfigError, match="select_by must be one of average_precision, .*not 'mean_dice'"):
        TrainConfig.from_dict({**touching, "select_by": "mean_dice"})
    assert TrainConfig.from_dict({"select_by": "mean_dice"}).select_by == names.MEAN_DICE  # semantic
    membrane = {"data": {"target": {"kind": "instances", "style": "membrane"}}, "select_by": "adapted_rand_error"}
    assert TrainConfig.from_dict(membrane).select_by == names.ADAPTED_RAND_ERROR


def test_the_report_shows_the_worst_images_with_their_errors(tmp_path):
    """The worst image by mean AP comes first, its errors counted in the caption; the report embeds the figure
    with a legend of the four kinds."""
    from biounet.report import Report, write_report

    sample, probs = blob_sample()
    good = Sample("good", sample.image, sample.target, Path("good.png"))
    perfect = np.eye(3, dtype=np.float32)[sample.target.classes].transpose(2, 0, 1)
    target = TargetConfig("instances")
    metrics, per_image, _ = instance_metrics([good, sample], [perfect, probs], target, thresholds=(0.3,),
                                             min_sizes=(8,))
    panels = worst_images([good, sample], [perfect, probs], target, per_image, metrics, names.AVERAGE_PRECISION)
    assert [p.name.split(":")[0] for p in panels] == ["blob", "good"]
    assert panels[0].false and not panels[0].missed and "1 false" in panels[0].name and not panels[1].false
    html = write_report(tmp_path / "report", Report("run", error_panels=panels)).read_text()
    assert "Worst validation images" in html and html.count("data:image/png;base64,") == 2
    for kind in ("missed", "false", "merged", "split"):
        assert kind in html
    assert len(list((tmp_path / "report" / "figures").glob("errors_*.png"))) == 2


def test_a_run_selects_by_the_configured_metric_and_reports_the_worst_images(tmp_path):
    """A tiny DSB-layout run with ``select_by: f1``: the history has the three object columns, the best
    checkpoint is chosen by F1, and the HTML report holds the worst validation images with their errors."""
    from test_trainer import write_synthetic_dsb

    from biounet.training.config import merge
    from biounet.training.recipes import preset, recipe
    from biounet.training.trainer import train

    root = tmp_path / "stage1_train"
    write_synthetic_dsb(root, 3)
    tiny = {"model": {"depth": 2, "base_channels": 4, "padding": "valid", "norm": None, "dropout": 0.0},
            "tile_shape": [60], "batch_size": 2, "precision": "fp32", "device": "cpu", "log_every": 2,
            "optim": {"lr": 0.01, "warmup_steps": 0}, "steps": 2, "val_every": 2, "select_by": "f1",
            "data": {"images": str(tmp_path), "val_split": 0.67, "foreground_prob": 0.5}}
    config = TrainConfig.from_dict(merge(merge(recipe("default"), preset("dsb2018")), tiny))
    result = train(config, tmp_path / "run", progress=False)
    val = [r for r in result.history.rows if r["kind"] == "val"][-1]
    for key in ("val_f1", "val_average_precision_50", "val_average_precision"):
        assert 0.0 <= val[key] <= 1.0, key
    assert result.best["metric"] == names.F1 and result.history.main_metric == names.F1
    html = (tmp_path / "run" / "report" / "report.html").read_text()
    assert "Worst validation images" in html
    assert len(list((tmp_path / "run" / "report" / "figures").glob("errors_*.png"))) == 2  # 2 validation images


def test_membrane_validation_draws_the_cells_errors_worst_first():
    """Membranes: the worst image by the Rand error (a broken membrane joins two cells) comes first, its cells
    (those ``biounet predict --output instances`` makes at the chosen settings) showing one merge."""
    from biounet.data.targets import membrane_target
    from biounet.training.validation import membrane_metrics

    label = np.full((48, 48), 255, np.uint8)
    label[::16, :], label[:, ::16] = 0, 0
    interior = np.where(label > 0, 0.95, 0.05).astype(np.float32)
    broken = interior.copy()
    broken[16, 1:16] = 0.95  # the membrane between two cells is gone
    target = membrane_target(label)
    samples = [Sample(name, np.zeros((1, 48, 48), np.float32), target, Path(f"{name}.png")) for name in ("ok", "gap")]
    probabilities = [np.stack([1 - p, p]) for p in (interior, broken)]
    config = TargetConfig("instances", style="membrane")
    metrics, per_image, _ = membrane_metrics(samples, probabilities)
    panels = worst_images(samples, probabilities, config, per_image, metrics, names.ADAPTED_RAND_ERROR)
    assert [p.name.split(":")[0] for p in panels] == ["gap", "ok"]
    assert len(panels[0].merged) == 1 and len(panels[0].merged_gt) == 2 and not panels[1].merged
