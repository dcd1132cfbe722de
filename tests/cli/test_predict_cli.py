"""``biounet predict`` in a real subprocess: files, folders, globs, stacks; bad input fails cleanly."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from biounet.io.checkpoint import save_model
from biounet.io.images import read_image, write_image
from biounet.model import UNet

PIPELINE = {
    "normalization": {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True},
    "channel_axis": None,
    "target": {
        "kind": "instances",
        "class_names": ["background", "interior", "boundary"],
        "interior_class": 1,
        "foreground_classes": [1, 2],
    },
}


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "biounet", "predict", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A training run directory with a small instance model, and some inputs."""
    root = tmp_path_factory.mktemp("predict_cli")
    torch.manual_seed(0)
    save_model(UNet(base_channels=4, depth=2, num_classes=3, dropout=0.0), root / "run", pipeline=PIPELINE)
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    write_image(root / "images" / "a.png", (rng.random((60, 70)) * 255).astype(np.uint8))
    grey = (rng.random((33, 41)) * 255).astype(np.uint8)
    write_image(root / "images" / "b.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))  # DSB-style RGBA
    (root / "more").mkdir()
    np.save(root / "more" / "c.npy", rng.random((25, 31)).astype(np.float32))
    stack = (rng.random((3, 50, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(root / "more" / "stack.tif", stack, photometric="minisblack")
    return root


def test_folders_globs_and_stacks(workspace: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = biounet(
        workspace / "run", workspace / "images", str(workspace / "more" / "*.npy"), workspace / "more" / "stack.tif",
        "--out", out, "--output", "probabilities", "--output", "labels", "--output", "instances", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected_shapes = {"a": (60, 70), "b": (33, 41), "c": (25, 31), "stack": (3, 50, 40)}
    model_file = workspace / "run" / "model.safetensors"
    for name, shape in expected_shapes.items():
        probs = read_image(out / f"{name}_probabilities.tif")
        labels = read_image(out / f"{name}_labels.tif")
        instances = read_image(out / f"{name}_instances.tif")
        assert probs.shape == (3, *shape) and probs.dtype == np.float16
        assert np.allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=3e-3)
        assert labels.shape == shape and np.array_equal(labels, probs.argmax(axis=0))
        assert instances.shape == shape and instances.dtype == np.int32
        for kind in ("probabilities", "labels", "instances"):
            sidecar = json.loads((out / f"{name}_{kind}.tif.json").read_text())
            assert sidecar["model"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
            assert sidecar["output"]["kind"] == kind
    assert len(list(out.iterdir())) == 4 * 3 * 2


def test_npy_and_zarr_formats(workspace: Path, tmp_path: Path) -> None:
    for fmt in ("npy", "zarr"):
        model, image = workspace / "run" / "model.safetensors", workspace / "images" / "a.png"
        args = ["--format", fmt, "--output", "labels", "--tta", "4", "--precision", "fp32", "--quiet"]
        result = biounet(model, image, "--out", tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert read_image(tmp_path / f"a_labels.{fmt}").shape == (60, 70)


def bad_input_cases(workspace: Path) -> dict[str, tuple[list, str]]:
    root = workspace / "bad"
    root.mkdir(exist_ok=True)
    good = workspace / "images" / "a.png"
    (root / "truncated.png").write_bytes(good.read_bytes()[:200])
    tifffile.imwrite(
        root / "stack2.tif", np.zeros((5, 2, 30, 30), np.uint8), photometric="minisblack"
    )  # 2-channel stack, model wants 3
    torch.manual_seed(0)
    save_model(UNet(base_channels=4, depth=2, in_channels=3, dropout=0.0), root / "rgb.safetensors")
    torch.save({"weights": torch.zeros(3)}, root / "model.pt")
    return {
        "truncated": ([workspace / "run", good, root / "truncated.png"], "truncated.png"),
        "channels": ([root / "rgb.safetensors", root / "stack2.tif"], "stack2.tif"),
        "pickle": ([root / "model.pt", good], "model.pt"),
        "missing": ([workspace / "run", root / "nothing.png"], "nothing.png"),
        "3d_for_2d_png": ([workspace / "run", workspace / "more" / "stack.tif", "--format", "png"], "stack.tif"),
    }


@pytest.mark.parametrize("case", ["truncated", "channels", "pickle", "missing", "3d_for_2d_png"])
def test_bad_input_exits_2_with_one_line_and_no_output(case: str, workspace: Path, tmp_path: Path) -> None:
    args, culprit = bad_input_cases(workspace)[case]
    out = tmp_path / "out"
    result = biounet(*args, "--out", out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("biounet: error: ") and culprit in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_help_explains_the_outputs() -> None:
    result = subprocess.run([sys.executable, "-m", "biounet", "predict", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for words in ("MODEL_OR_RUN_DIR", "--tile-size", "--tta", "--precision", "instances", "sidecar", "glob"):
        assert words in result.stdout


def test_seed_settings_from_the_command_line_are_used_and_recorded(workspace: Path, tmp_path: Path) -> None:
    """``--threshold``, ``--min-size``, ``--seed-height`` and ``--foreground-threshold`` reach the instances and their
    sidecar; a seed height outside 0..1 is refused in one line, before any work."""
    out = tmp_path / "pred"
    done = biounet(workspace / "run", workspace / "images" / "a.png", "--out", out, "--output", "instances",
                   "--threshold", "0.2", "--min-size", "3", "--seed-height", "0.15", "--foreground-threshold", "0.6",
                   "--quiet")
    assert done.returncode == 0, done.stderr
    settings = json.loads((out / "a_instances.tif.json").read_text())["settings"]
    chosen = (settings["threshold"], settings["min_size"], settings["seed_height"], settings["foreground_threshold"])
    assert chosen == (0.2, 3, 0.15, 0.6)
    bad = biounet(workspace / "run", workspace / "images" / "a.png", "--out", tmp_path / "bad", "--output",
                  "instances", "--seed-height", "1.5")
    assert bad.returncode == 2 and "--seed-height" in bad.stderr and not (tmp_path / "bad").exists()
