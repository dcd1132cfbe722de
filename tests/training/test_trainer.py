"""The training loop in-process: schedules, weight maps, validation metrics, task kinds, budgets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biounet.data.readers import Sample
from biounet.data.synthetic import generate
from biounet.data.targets import Target, TargetConfig, touching_target
from biounet.io.checkpoint import load_bundle
from biounet.io.images import write_image
from biounet.training.config import ConfigError, TrainConfig, merge
from biounet.training.recipes import preset, recipe
from biounet.training.trainer import Trainer, train
from biounet.training.validation import instance_metrics, membrane_metrics, semantic_metrics

TINY = {
    "model": {"depth": 2, "base_channels": 4, "padding": "valid", "norm": None, "dropout": 0.0},
    "tile_shape": [60],
    "batch_size": 2,
    "precision": "fp32",
    "device": "cpu",
    "log_every": 2,
    "optim": {"lr": 0.01, "warmup_steps": 0},
}


def tiny_config(*layers: dict, **values) -> TrainConfig:
    merged = merge(recipe("default"), TINY)
    for layer in (*layers, values):
        merged = merge(merged, layer)
    return TrainConfig.from_dict(merged)


def touching_sample() -> Sample:
    instances = np.zeros((40, 40), dtype=np.int32)
    instances[10:30, 5:20] = 1
    instances[10:30, 20:35] = 2
    classes = touching_target(instances)
    return Sample("pair", np.zeros((1, 40, 40), np.float32), Target(classes, instances), Path("pair.png"))


def perfect(classes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[classes].transpose(2, 0, 1)


def test_validation_metrics_of_perfect_predictions():
    label = np.full((32, 32), 255, np.uint8)
    label[16, :] = 0
    label[:, 10] = 0
    from biounet.data.targets import membrane_target

    membrane = membrane_target(label)
    sample = Sample("m", np.zeros((1, 32, 32), np.float32), membrane, Path("m.png"))
    metrics, per_image, predictions = membrane_metrics([sample], [perfect(membrane.classes, 2)])
    assert metrics["adapted_rand_error"] == pytest.approx(0.0) and metrics["pixel_error"] == 0.0
    assert predictions[0].max() == 4

    cells = touching_sample()
    metrics, _, predictions = instance_metrics([cells], [perfect(cells.target.classes, 3)], TargetConfig("instances"))
    assert metrics["f1"] == 1.0 and metrics["foreground_iou"] == 1.0
    assert predictions[0].max() == 2  # the touching cells are separated

    wrong = perfect(np.zeros_like(cells.target.classes), 2)
    metrics, _, _ = semantic_metrics([cells], [wrong], 2)
    assert metrics["mean_iou"] < 0.9
    binary = Sample("b", cells.image, Target((cells.target.classes > 0).astype(np.uint8)), Path("b.png"))
    metrics, _, _ = semantic_metrics([binary], [perfect(binary.target.classes, 2)], 2)
    assert metrics["mean_iou"] == 1.0 and metrics["mean_dice"] == 1.0


def test_instance_validation_chooses_the_seed_threshold_and_min_size():
    """A faint bridge of P(interior) = 0.65 joins two cells and a 3x3 speck is confident interior: only a
    threshold of at least 0.65 with seeds of more than 9 pixels gives F1 = 1 with the paper's seeds, and
    validation finds it."""
    cells = touching_sample()
    probs = perfect(cells.target.classes, 3)
    probs[:, 18:22, 19:21] = np.array([0.0, 0.65, 0.35], np.float32)[:, None, None]  # bridge across the border
    probs[:, 2:5, 2:5] = np.array([0.0, 1.0, 0.0], np.float32)[:, None, None]  # a speck outside the cells
    target = TargetConfig("instances")
    metrics, per_image, predictions = instance_metrics([cells], [probs], target, seed_heights=[0.0])
    assert metrics["f1"] == 1.0 and per_image[0]["f1"] == 1.0
    assert metrics["threshold"] >= 0.65 and metrics["min_size"] >= 16
    assert predictions[0].max() == 2
    fixed, _, _ = instance_metrics([cells], [probs], target, thresholds=[0.5], min_sizes=[8], seed_heights=[0.0])
    assert fixed["f1"] < 1.0 and (fixed["threshold"], fixed["min_size"]) == (0.5, 8)
    split, _, _ = instance_metrics([cells], [probs], target, thresholds=[0.5], min_sizes=[16], seed_heights=[0.3])
    assert split["f1"] == 1.0 and split["seed_height"] == 0.3  # h-maxima seeds cut the bridge below the threshold


def test_membrane_run_with_validation(tmp_path):
    for index in range(3):
        image, labels = generate("membrane", (64, 64), index)
        write_image(tmp_path / "data" / "image" / f"{index}.png", image)
        write_image(tmp_path / "data" / "label" / f"{index}.png", np.where(labels > 0, 255, 0).astype(np.uint8))
    config = tiny_config(preset("isbi2012"), data={"images": str(tmp_path / "data")}, steps=6, val_every=3)
    result = train(config, tmp_path / "run", progress=False)
    rows = [r for r in result.history.rows if r["kind"] == "val"]
    assert [r["step"] for r in rows] == [3, 6]
    assert 0.0 <= rows[-1]["val_adapted_rand_error"] <= 1.0 and 0.1 <= rows[-1]["threshold"] <= 0.9
    bundle = load_bundle(tmp_path / "run")
    target = bundle.pipeline.target
    assert target.class_names == ["membrane", "interior"] and target.foreground_classes == [0, 1]
    assert target.threshold is not None and bundle.pipeline.training.best_step in (3, 6)
    assert bundle.config.num_classes == 2
    assert (tmp_path / "run" / "report" / "report.html").is_file()


def write_synthetic_dsb(root: Path, count: int) -> Path:
    """``count`` synthetic 64 px nuclei images in the DSB layout under ``root`` (``id<i>/images/id<i>.png`` and
    one mask file per nucleus in ``id<i>/masks/``); returns ``root``."""
    for index in range(count):
        image, labels = generate("nuclei", (64, 64), index, radius_range=(6, 10))
        write_image(root / f"id{index}" / "images" / f"id{index}.png", (image // 256).astype(np.uint8))
        for cell in range(1, labels.max() + 1):
            mask = np.where(labels == cell, 255, 0).astype(np.uint8)
            write_image(root / f"id{index}" / "masks" / f"m{cell}.png", mask)
    return root


def test_dsb_layout_instances_run(tmp_path):
    root = tmp_path / "stage1_train"
    write_synthetic_dsb(root, 2)
    config = tiny_config(preset("dsb2018"), data={"images": str(tmp_path), "val_split": 0.5,
                                                     "foreground_prob": 0.5}, steps=4, val_every=4)
    result = train(config, tmp_path / "run", progress=False)
    val = [r for r in result.history.rows if r["kind"] == "val"][-1]
    assert 0.0 <= val["val_f1"] <= 1.0 and 0.0 <= val["val_foreground_iou"] <= 1.0
    assert result.best["metric"] == "average_precision" and 0.0 <= val["val_average_precision"] <= 1.0
    bundle = load_bundle(tmp_path / "run")
    assert bundle.pipeline.target.class_names == ["background", "interior", "boundary"]
    assert bundle.pipeline.channel_axis is None and bundle.config.num_classes == 3
    chosen = {k: result.best["metrics"][k] for k in ("threshold", "min_size")}  # the seeds validation chose
    assert {k: getattr(bundle.pipeline.target, k) for k in chosen} == chosen and {"threshold", "min_size"} <= set(val)


def blob_folders(root: Path) -> None:
    rng = np.random.default_rng(0)
    for index in range(2):
        mask = np.zeros((48, 48), np.uint8)
        mask[10:30, 12:28] = 1
        write_image(root / "images" / f"{index}.tif", (mask * 100 + rng.integers(0, 30, mask.shape)).astype(np.uint16))
        write_image(root / "masks" / f"{index}.tif", mask)


def test_time_budget_stops_with_a_checkpoint(tmp_path):
    blob_folders(tmp_path)
    config = tiny_config(data={"images": str(tmp_path / "images"), "masks": str(tmp_path / "masks"), "val_split": 0},
                         steps=None, max_minutes=0.02)
    result = train(config, tmp_path / "run", progress=False)
    assert result.stopped_by == "time" and result.steps > 0
    assert json.loads((tmp_path / "run" / "state" / "latest.json").read_text())["step"] == result.steps
    assert (tmp_path / "run" / "model.safetensors").is_file()  # no validation: the last model is the best


def test_epochs_and_refusal_to_overwrite_a_run(tmp_path):
    blob_folders(tmp_path)
    config = tiny_config(data={"images": str(tmp_path / "images"), "masks": str(tmp_path / "masks"), "val_split": 0},
                         steps=None, epochs=2)
    trainer = Trainer(config, tmp_path / "run", progress=False)
    result = trainer.run()
    # 2 images of 48x48 pixels, 2 tiles of 20x20 output pixels a step: ceil(2 * 4608 / 800) = 12 steps
    assert result.steps == 12
    with pytest.raises(ConfigError, match="--resume"):
        Trainer(config, tmp_path / "run", progress=False).run()
    config.steps, config.epochs = 14, None
    assert Trainer(config, tmp_path / "run", resume=True, progress=False).run().steps == 14


def test_weight_average_is_saved_validated_and_resumed_exactly(tmp_path):
    from safetensors.torch import load_file

    blob_folders(tmp_path)
    data = {"images": str(tmp_path / "images"), "masks": str(tmp_path / "masks"), "val_split": 0.5}
    config = tiny_config(data=data, steps=6, val_every=3, optim={"ema": 0.9})
    whole = Trainer(config, tmp_path / "whole", progress=False)
    whole.run()
    assert (tmp_path / "whole" / "state" / "step-00000006" / "ema.safetensors").is_file()
    saved = load_file(str(tmp_path / "whole" / "last.safetensors"))
    averaged = whole.average.module.state_dict()
    trained = whole.model.state_dict()
    assert all(torch_equal(saved[k], averaged[k]) for k in saved)  # the saved model is the average
    assert not all(torch_equal(saved[k], trained[k]) for k in saved if saved[k].is_floating_point())

    class Killed(Trainer):  # dies during step 5, after the checkpoint of step 3 (the validation)
        def _train_step(self, batch):
            if self.step == 4:
                raise KeyboardInterrupt
            return super()._train_step(batch)

    with pytest.raises(KeyboardInterrupt):
        Killed(config, tmp_path / "split", progress=False).run()
    assert json.loads((tmp_path / "split" / "state" / "latest.json").read_text())["step"] == 3
    Trainer(config, tmp_path / "split", resume=True, progress=False).run()
    again = load_file(str(tmp_path / "split" / "last.safetensors"))
    assert all(torch_equal(again[k], saved[k]) for k in saved)
    with pytest.raises(ConfigError, match="optim.ema"):
        tiny_config(optim={"ema": 1.5})


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_train_leaves_threads_logging_and_random_state_as_it_found_them(tmp_path):
    import logging
    import random

    import torch

    blob_folders(tmp_path)
    config = tiny_config(data={"images": str(tmp_path / "images"), "masks": str(tmp_path / "masks"), "val_split": 0.5},
                         steps=3, val_every=3, num_threads=1, seed=5)
    torch.set_num_threads(2)
    logger = logging.getLogger("biounet")
    before = (torch.get_num_threads(), logger.level, list(logger.handlers), logger.propagate)
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state())
    train(config, tmp_path / "run", progress=False)
    assert (torch.get_num_threads(), logger.level, list(logger.handlers), logger.propagate) == before
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2])
    assert (tmp_path / "run" / "train.log").read_text()  # the run's log was written meanwhile
