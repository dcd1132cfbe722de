"""Disk full: every writer stops with one line naming the path, and earlier outputs stay as they were.

A small tmpfs is mounted for the drill (the suite runs as root in CI); where mounting is not allowed the
tests are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from biounet.io.checkpoint import save_model
from biounet.io.images import write_image
from biounet.model import UNet


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path, leave_bytes: int = 0) -> None:
    """Fill ``disk`` up to ``leave_bytes`` free."""
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(disk / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            handle.write(b"\0" * max(free - leave_bytes, 0))


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biounet", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def assert_one_line(result: subprocess.CompletedProcess, where: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    assert str(where) in lines[0] and "No space left on device" in lines[0], lines[0]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model")
    save_model(UNet(base_channels=2, depth=2, padding="same"), root / "run",
               pipeline={"target": {"kind": "semantic", "class_names": ["background", "foreground"]}})
    image = (np.random.default_rng(0).random((600, 600)) * 255).astype(np.uint8)
    write_image(root / "big.png", image)
    return root


@pytest.mark.parametrize(("fmt", "disk_kb"), [("tif", 1024), ("npy", 1024), ("zarr", 24)])  # zarr is compressed
def test_predict_onto_a_full_disk(model: Path, tmp_path: Path, fmt: str, disk_kb: int):
    with small_disk(tmp_path / "disk", disk_kb) as disk:
        earlier = disk / "out" / f"big_probabilities.{fmt}"
        result = biounet("predict", model / "run", model / "big.png", "--out", disk / "out", "--format", fmt,
                         "--probability-dtype", "float32", "--quiet")  # 2 x 600 x 600 float32: 2.9 MB > 1 MB
        assert_one_line(result, disk / "out")
        assert not earlier.exists() and not [p for p in (disk / "out").iterdir() if p.name.endswith(".json")]
        write_image(disk / "out" / "earlier.png", np.zeros((8, 8), np.uint8))  # an earlier output stays intact
        result = biounet("predict", model / "run", model / "big.png", "--out", disk / "out", "--format", fmt,
                         "--probability-dtype", "float32", "--quiet")
        assert_one_line(result, disk / "out")
        assert sorted(p.name for p in (disk / "out").iterdir()) == ["earlier.png"]


def test_evaluate_json_onto_a_full_disk(model: Path, tmp_path: Path):
    labels = np.zeros((32, 32), np.uint8)
    labels[4:12, 4:12] = 1
    write_image(tmp_path / "pred" / "a.png", labels)
    write_image(tmp_path / "gt" / "a.png", labels)
    with small_disk(tmp_path / "disk", 256) as disk:
        (disk / "scores.json").write_text('{"earlier": true}')
        fill(disk)
        result = biounet("evaluate", tmp_path / "pred", tmp_path / "gt", "--task", "semantic", "--json",
                         disk / "scores.json", "--quiet")
        assert_one_line(result, disk)
        assert (disk / "scores.json").read_text() == '{"earlier": true}'


def test_train_onto_a_full_disk(tmp_path: Path):
    rng = np.random.default_rng(0)
    for index in range(2):
        image = (rng.random((64, 64)) * 255).astype(np.uint8)
        write_image(tmp_path / "data" / "images" / f"{index}.png", image)
        write_image(tmp_path / "data" / "masks" / f"{index}.png", ((image > 128) * 255).astype(np.uint8))
    with small_disk(tmp_path / "disk", 256) as disk:
        fill(disk, leave_bytes=16 * 1024)  # config.json fits, a model does not
        result = biounet("train", "--images", tmp_path / "data" / "images", "--masks", tmp_path / "data" / "masks",
                         "--out", disk / "run", "--steps", "2", "--depth", "2", "--base-channels", "8",
                         "--tile-size", "60", "--batch-size", "1", "--precision", "fp32", "--no-progress", "--quiet")
        assert_one_line(result, disk / "run")
        assert not [p for p in (disk / "run").rglob("*.safetensors")]


def test_export_onto_a_full_disk(model: Path, tmp_path: Path):
    with small_disk(tmp_path / "disk", 128) as disk:
        fill(disk)
        result = biounet("export", model / "run", disk / "model.onnx")
        assert_one_line(result, disk)
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
