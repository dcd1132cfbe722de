"""``biounet predict`` on a folder with several bad files: all named at once, or the good ones with --skip-bad."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile

from biounet.io.checkpoint import save_model
from biounet.io.images import write_image
from biounet.model import UNet


def biounet(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biounet", "predict", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def make_folder(root: Path) -> Path:
    save_model(UNet(base_channels=2, depth=2, padding="same"), root / "run",
               pipeline={"target": {"kind": "semantic", "class_names": ["background", "foreground"]}})
    images = root / "images"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(images / name, (rng.random((40, 40)) * 255).astype(np.uint8))
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (images / "empty.tif").write_bytes(b"")
    (images / "text.npy").write_bytes(b"hello")
    nan = rng.random((40, 40)).astype(np.float32)
    nan[5, 5] = np.nan
    tifffile.imwrite(images / "nan.tif", nan)
    return images


def test_all_bad_files_are_listed_and_nothing_is_predicted(tmp_path):
    images = make_folder(tmp_path)
    result = biounet(tmp_path / "run", images, "--out", tmp_path / "out", "--quiet")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("biounet: error: 4 bad inputs: ")
    for name in ("broken.png", "empty.tif", "text.npy", "nan.tif: 1 pixel value"):
        assert name in lines[0]
    assert not (tmp_path / "out").exists()


def test_skip_bad_predicts_the_good_ones_and_fails_at_the_end(tmp_path):
    images = make_folder(tmp_path)
    result = biounet(tmp_path / "run", images, "--out", tmp_path / "out", "--skip-bad", "--quiet")
    assert result.returncode == 1, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["a_probabilities.tif", "b_probabilities.tif"]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("biounet predict: skipped 4 bad inputs: ")
    assert "nan.tif: 1 pixel value" in last and "--nan-policy fill" in last
    filled = biounet(tmp_path / "run", images / "nan.tif", "--out", tmp_path / "out", "--nan-policy", "fill", "--quiet")
    assert filled.returncode == 0 and (tmp_path / "out" / "nan_probabilities.tif").is_file()
