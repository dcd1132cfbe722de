"""``biounet train`` in real subprocesses: outputs, exact resume after SIGKILL, NaN handling, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from biounet.io.checkpoint import load_bundle
from biounet.io.images import write_image
from biounet.training.state import load_state

#: A tiny network and tiles, fp32 on one thread: fast and bit-reproducible.
TINY = ["--depth", "2", "--base-channels", "4", "--tile-size", "60", "--batch-size", "2", "--precision", "fp32",
        "--threads", "1", "--device", "cpu", "--no-progress", "--seed", "3"]


def blobs(folder: Path, count: int = 4, size: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """Bright disks on a noisy dark background with 0/255 masks: an easy segmentation task."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for index in range(count):
        mask = np.zeros((size, size), dtype=np.uint8)
        for _ in range(5):
            cy, cx, radius = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 9)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < radius * radius] = 255
        image = (40 + 150 * (mask > 0) + rng.normal(0, 20, mask.shape)).clip(0, 255).astype(np.uint8)
        write_image(folder / "images" / f"im{index}.png", image)
        write_image(folder / "masks" / f"im{index}.png", mask)
    return folder / "images", folder / "masks"


def biounet(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "biounet", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return blobs(tmp_path_factory.mktemp("blobs"))


def test_short_run_writes_everything_and_the_loss_falls(data, tmp_path):
    images, masks = data
    run = tmp_path / "run"
    result = biounet("train", "--images", str(images), "--masks", str(masks), "--out", str(run), *TINY,
                     "--steps", "40", "--val-every", "20", "--lr", "0.01", "--set", "log_every=5")
    assert result.returncode == 0, result.stderr
    assert "0/255 (4 files)" in result.stderr  # the mask convention is reported
    for name in ("model.safetensors", "model.json", "last.safetensors", "config.json", "history.csv",
                 "history.json", "training_curve.png", "state/latest.json", "report/report.html", "train.log"):
        assert (run / name).is_file(), name
    assert (run / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bundle = load_bundle(run)
    assert bundle.pipeline.target.kind == "semantic"
    assert bundle.pipeline.normalization.method == "percentile"
    assert bundle.pipeline.tile_shape == [60, 60]
    config = json.loads((run / "config.json").read_text())
    assert config["steps"] == 40 and config["model"]["base_channels"] == 4
    history = json.loads((run / "history.json").read_text())
    losses = [row["train_loss"] for row in history["rows"] if row["kind"] == "train"]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.7 * np.mean(losses[:2])
    val = [row for row in history["rows"] if row["kind"] == "val"]
    assert [row["step"] for row in val] == [20, 40]
    assert val[-1]["val_mean_iou"] > 0.5
    header = (run / "history.csv").read_text().splitlines()[0]
    assert header.startswith("step,kind,train_loss,lr")


def test_sigkill_and_resume_gives_the_same_weights(data, tmp_path):
    images, masks = data
    common = ["--images", str(images), "--masks", str(masks), *TINY, "--steps", "120", "--val-every", "40",
              "--checkpoint-every", "10", "--optimizer", "sgd", "--lr", "0.02"]
    unbroken = tmp_path / "unbroken"
    assert biounet("train", "--out", str(unbroken), *common).returncode == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "biounet", "train", "--out", str(killed), *common],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    manifest = killed / "state" / "latest.json"
    deadline = time.monotonic() + 120
    while not manifest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.1)  # into the next checkpoints (every 10 steps): the kill may hit one half-written
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    state = load_state(killed)  # whatever moment the kill hit, the manifest names a whole state
    assert 10 <= state.step < 120
    load_bundle(killed / "last.safetensors")

    resumed = biounet("train", "--out", str(killed), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from step {state.step}" in resumed.stderr
    expected = load_file(unbroken / "last.safetensors")
    actual = load_file(killed / "last.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    best_expected, best_actual = load_file(unbroken / "model.safetensors"), load_file(killed / "model.safetensors")
    assert all(np.array_equal(best_expected[k], best_actual[k]) for k in best_expected)
    rows = json.loads((killed / "history.json").read_text())["rows"]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [40, 80, 120]


def test_nan_loss_stops_with_an_error_and_keeps_the_last_good_checkpoint(data, tmp_path):
    images, masks = data
    run = tmp_path / "nan"
    result = biounet("train", "--images", str(images), "--masks", str(masks), "--out", str(run), *TINY,
                     "--steps", "30", "--val-split", "0", "--checkpoint-every", "1", "--optimizer", "sgd",
                     "--lr", "1e30")
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("biounet: error:") and "nan" in message.lower() and "last good checkpoint" in message
    state = load_state(run)
    assert state.step < 30
    weights = load_file(run / "last.safetensors")
    assert all(np.isfinite(array).all() for array in weights.values())


def test_bad_input_gives_one_line_naming_the_file(tmp_path):
    images, masks = blobs(tmp_path / "bad", count=2)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[5:9, 5:9] = 128
    mask[20:30, 20:30] = 255
    write_image(masks / "im1.png", mask)
    result = biounet("train", "--images", str(images), "--masks", str(masks), "--out", str(tmp_path / "r"), *TINY,
                     "--steps", "2")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "im1.png: unexpected mask values {0, 128, 255}" in lines[-1] and "--classes 0,128,255" in lines[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = biounet("train", "--images", str(empty), "--masks", str(masks), "--out", str(tmp_path / "r2"), *TINY)
    assert result.returncode == 2 and "empty: no image files" in result.stderr.strip().splitlines()[-1]


def test_help_explains_folders_masks_outputs_and_predict():
    result = biounet("train", "--help", timeout=60)
    assert result.returncode == 0
    text = result.stdout
    for words in ("--images", "--dsb", "0/255 or 0/1", "--classes", "RUN_DIR", "model.safetensors", "--resume",
                  "biounet predict RUN_DIR", "isbi2012", "--max-minutes"):
        assert words in text, words
