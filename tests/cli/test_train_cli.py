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
from biounet.io.images import read_image, write_image
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


def start(*args: str, env: dict[str, str] | None = None, stderr=subprocess.DEVNULL) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "biounet", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                            env=env)


def saved_step(run: Path) -> int:
    manifest = run / "state" / "latest.json"
    return json.loads(manifest.read_text())["step"] if manifest.is_file() else -1


def wait_until(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def assert_same_weights(expected_file: Path, actual_file: Path) -> None:
    expected, actual = load_file(expected_file), load_file(actual_file)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=f"{actual_file.name}: {name}")


def test_kill_drill_ten_sigkills_and_resumes_end_with_the_weights_of_an_unbroken_run(data, tmp_path):
    """SIGKILL at 10 moments (startup, between and inside checkpoints, two inside save_state), resume each time."""
    images, masks = data
    common = ["--images", str(images), "--masks", str(masks), *TINY, "--steps", "40", "--val-every", "20",
              "--checkpoint-every", "2", "--optimizer", "sgd", "--lr", "0.02"]
    unbroken = tmp_path / "unbroken"
    assert biounet("train", "--out", str(unbroken), *common).returncode == 0
    drill, rng, kills = tmp_path / "drill", np.random.default_rng(11), 0
    for round_ in range(10):
        fresh = not (drill / "config.json").is_file()
        args = ["train", "--out", str(drill), *(common if fresh else ["--resume", "--no-progress"])]
        before = saved_step(drill)
        hook = {3: "files", 6: "renamed"}.get(round_)  # the process kills itself in the middle of save_state
        moment = f"{max(before, 0) // 2 * 2 + 4}:{hook}" if hook else ""
        process = start(*args, env={"BIOUNET_TEST_KILL_IN_SAVE_STATE": moment})
        if round_ == 0:  # during start-up (reading data, weight maps, the first steps)
            time.sleep(rng.uniform(0.5, 2.5))
        elif not hook:  # a few steps on, then a random moment between or inside checkpoints
            target = before + int(rng.integers(1, 4))
            wait_until(lambda target=target: saved_step(drill) >= target, process)
            time.sleep(rng.uniform(0.0, 0.05))
        if hook is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL
        kills += 1
        if (drill / "state" / "latest.json").is_file():  # whatever the moment, the manifest names a whole state
            assert load_state(drill).step >= before
            load_bundle(drill / "last.safetensors")
    assert kills == 10 and saved_step(drill) < 40
    resumed = biounet("train", "--out", str(drill), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(unbroken / "last.safetensors", drill / "last.safetensors")
    assert_same_weights(unbroken / "model.safetensors", drill / "model.safetensors")
    rows = json.loads((drill / "history.json").read_text())["rows"]
    assert [r["step"] for r in rows if r["kind"] == "val"] == [20, 40]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_save_a_model_and_say_how_to_resume(data, tmp_path, signum):
    images, masks = data
    run = tmp_path / "run"
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = start("train", "--images", str(images), "--masks", str(masks), "--out", str(run), *TINY,
                        "--steps", "100000", "--val-every", "100000", stderr=stderr)
        wait_until(lambda: "model: 2D U-Net" in log.read_text(), process)
        time.sleep(0.5)  # some steps, no checkpoint yet: nothing would be left without the handler
        process.send_signal(signum)
        process.wait(timeout=60)
    text = log.read_text()
    assert process.returncode == 128 + signum, text
    name = signal.Signals(signum).name
    line = next(line for line in text.splitlines() if f"stopped by {name}" in line)
    assert f"Continue with: biounet train --out {run} --resume" in line
    step = load_state(run).step
    assert step > 0 and f"at step {step};" in line
    assert load_bundle(run).pipeline is not None  # the best model (no validation yet: the last one)
    load_bundle(run / "last.safetensors")
    if signum == signal.SIGTERM:
        return  # the same state as after SIGINT: one resume is enough
    resumed = biounet("train", "--out", str(run), "--resume", "--no-progress", "--steps", str(step + 2))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from step {step}" in resumed.stderr and load_state(run).step == step + 2


def test_unfit_and_mistyped_configurations_are_refused_in_one_line_before_the_data_are_read(tmp_path, capsys):
    from biounet.cli.main import main

    missing = ["--images", str(tmp_path / "nothing"), "--masks", str(tmp_path / "nothing"), "--out",
               str(tmp_path / "r"), "--device", "cpu"]
    cases = {
        ("--tile-size", "100000"): "the largest tile at batch 4 is",
        ("--depth", "50"): "allows depth 8 at most (--depth 8)",
        ("--steps", "0"): "steps must be >= 1, not 0",
        ("--set", "optim.lr=abc"): "optim.lr: expected a number, got 'abc'",
    }
    for args, words in cases.items():
        status = main(["train", *missing, *args])
        lines = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(lines) == 1 and words in lines[0], (args, lines)


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
                  "biounet predict RUN_DIR", "isbi2012", "--max-minutes", "--distance"):
        assert words in text, words


def test_nproc_starts_torchrun_with_every_other_argument(tmp_path, capsys):
    """--nproc N re-runs the same command under torchrun (the real runs: tests/training/test_distributed.py)."""
    from biounet.cli.main import build_parser, main
    from biounet.cli.train import forwarded_args
    from biounet.training.launch import torchrun_command

    argv = ["train", "--images", "my images", "--masks", "m", "--out", "r", "--classes", "0,128,255", "--tile-size",
            "60,64", "--set", "optim.lr=0.1", "--set", "seed=2", "--resume", "--norm", "none", "--nproc", "3"]
    args = build_parser().parse_args(argv)
    again = build_parser().parse_args(["train", *forwarded_args(args)])
    assert {**vars(again), "nproc": 3, "func": None} == {**vars(args), "func": None}
    command = torchrun_command(3, forwarded_args(args))
    assert command[command.index("--nproc-per-node") + 1] == "3" and "--nproc" not in command
    assert command[command.index("--master-addr") + 1] == "127.0.0.1"
    assert command[command.index("biounet") - 1:] == ["-m", "biounet", "train", *forwarded_args(args)]
    assert main(["train", "--out", str(tmp_path / "r"), "--nproc", "0"]) == 2
    assert capsys.readouterr().err.strip() == "biounet: error: --nproc must be >= 1, not 0"


@pytest.fixture(scope="module")
def dsb_crops(shared_data, tmp_path_factory) -> Path:
    """64 px crops of the first 3 real DSB 2018 images with at least 3 nuclei in the crop, in the DSB layout."""
    root = tmp_path_factory.mktemp("dsb") / "stage1_train"
    kept = 0
    for sample in sorted((shared_data / "dsb2018_nuclei_fluo256" / "stage1_train").iterdir()):
        masks = [(m.name, read_image(m)[:64, :64]) for m in sorted((sample / "masks").iterdir())]
        masks = [(name, mask) for name, mask in masks if mask.any()]
        if len(masks) < 3:
            continue
        write_image(root / sample.name / "images" / f"{sample.name}.png",
                    read_image(sample / "images" / f"{sample.name}.png")[:64, :64])
        for name, mask in masks:
            write_image(root / sample.name / "masks" / name, mask)
        kept += 1
        if kept == 3:
            return root
    raise AssertionError("fewer than 3 DSB images with 3 nuclei in their corner")


def test_distance_run_saves_a_distance_channel_and_resumes_exactly(dsb_crops, tmp_path):
    """--distance on real DSB nuclei: 4 output channels (3 classes + distance), the pipeline says which one is the
    distance, and a run killed while saving step 4 resumes (from step 2) to the weights of an unbroken run."""
    common = ["--dsb", str(dsb_crops), "--distance", *TINY, "--steps", "6", "--val-every", "6", "--val-split", "0.34",
              "--checkpoint-every", "2", "--foreground-prob", "0.5"]
    unbroken = tmp_path / "unbroken"
    result = biounet("train", "--out", str(unbroken), *common)
    assert result.returncode == 0, result.stderr
    assert "distance targets (each object's distance to its border, over its largest) ready in" in result.stderr
    assert "loss wce + 1 x distance BCE" in result.stderr
    bundle = load_bundle(unbroken)
    assert bundle.pipeline.target.distance_channel == 3 and bundle.config.num_classes == 4
    assert bundle.pipeline.target.class_names == ["background", "interior", "boundary"]
    assert load_file(unbroken / "model.safetensors")["head.weight"].shape[0] == 4
    config = json.loads((unbroken / "config.json").read_text())
    assert config["data"]["target"]["distance"] is True and config["loss"]["distance_weight"] == 1.0
    killed = tmp_path / "killed"
    process = start("train", "--out", str(killed), *common, env={"BIOUNET_TEST_KILL_IN_SAVE_STATE": "4:files"})
    assert process.wait(timeout=240) == -signal.SIGKILL and saved_step(killed) == 2
    resumed = biounet("train", "--out", str(killed), "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from step 2" in resumed.stderr and load_state(killed).step == 6
    assert_same_weights(unbroken / "last.safetensors", killed / "last.safetensors")
    assert_same_weights(unbroken / "model.safetensors", killed / "model.safetensors")


def test_distance_flag_and_set_both_turn_the_distance_output_on(tmp_path):
    from biounet.cli.main import build_parser
    from biounet.cli.train import build_config

    def config(*args: str):
        return build_config(build_parser().parse_args(["train", "--dsb", "d", "--out", "r", *args]))[0]

    assert not config().data.target.distance and config().data.target.num_outputs == 3
    assert config("--distance").data.target.distance and config("--distance").data.target.num_outputs == 4
    assert config("--set", "data.target.distance=true").data.target.distance
    (tmp_path / "c.yaml").write_text("data:\n  target:\n    distance: true\nloss:\n  distance_weight: 0.5\n")
    from_file = config("--config", str(tmp_path / "c.yaml"))  # a switch not given leaves the file's value
    assert from_file.data.target.distance and from_file.loss.distance_weight == 0.5


def test_touching_objects_train_the_narrow_network_however_they_are_given(tmp_path, monkeypatch):
    """On a CPU with bfloat16 the DSB preset, a folder of touching objects and a configuration file asking for
    them all get the narrow default network; membranes keep 32 channels, and flags still win."""
    import torch

    from biounet import runtime
    from biounet.cli.main import build_parser
    from biounet.cli.train import build_config

    monkeypatch.setattr(runtime, "default_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(runtime, "resolve_precision", lambda wanted, device: "bf16")

    def width(*args: str) -> tuple:
        config = build_config(build_parser().parse_args(["train", "--out", "r", *args]))[0]
        return config.model.base_channels, config.optim.lr

    folders = ["--images", "i", "--masks", "m"]
    (tmp_path / "c.yaml").write_text("data:\n  target:\n    kind: instances\n")
    assert width("--dsb", "d") == (16, 3e-3)
    assert width(*folders, "--target", "instances") == (16, 3e-3)
    assert width(*folders, "--config", str(tmp_path / "c.yaml")) == (16, 3e-3)
    assert width(*folders, "--target", "instances", "--instance-style", "membrane") == (32, 1e-3)
    assert width(*folders) == (32, 1e-3)
    assert width("--dsb", "d", "--set", "model.base_channels=32") == (32, 3e-3)
