"""Kill drill: ``biounet predict`` killed with SIGKILL at random moments never leaves a partial file under a
final name; whatever has a final name is complete, and a rerun completes the rest."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from biounet.io.checkpoint import save_model
from biounet.io.images import write_image
from biounet.model import UNet


def command(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "biounet", "predict", str(root / "run"), str(root / "images"), "--out", str(out),
            "--output", "probabilities", "--output", "labels", "--tile-size", "96", "--threads", "1", "--quiet"]


def test_kills_at_random_moments_leave_only_complete_files(tmp_path: Path):
    save_model(UNet(base_channels=4, depth=2, padding="same"), tmp_path / "run",
               pipeline={"target": {"kind": "semantic", "class_names": ["background", "foreground"]}})
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_image(tmp_path / "images" / f"{name}.png", (rng.random((600, 500)) * 255).astype(np.uint8))
    clean = tmp_path / "clean"
    started = time.perf_counter()
    subprocess.run(command(tmp_path, clean), check=True, timeout=300)
    duration = time.perf_counter() - started
    expected = {p.name: tifffile.imread(p) for p in clean.glob("*.tif")}
    assert len(expected) == 4

    moments = random.Random(0)
    for attempt in range(3):
        out = tmp_path / f"killed{attempt}"
        process = subprocess.Popen(command(tmp_path, out), stderr=subprocess.DEVNULL)
        time.sleep(moments.uniform(0.2, duration))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        final = [p for p in out.glob("*") if not p.name.startswith(".")] if out.exists() else []
        for path in final:  # anything under a final name is complete: the same as the clean run's
            if path.suffix == ".tif":
                assert np.array_equal(tifffile.imread(path), expected[path.name]), path
        subprocess.run(command(tmp_path, out), check=True, timeout=300)  # a rerun completes it ...
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # ... and removes the leftovers
        assert all(np.array_equal(tifffile.imread(out / name), array) for name, array in expected.items())
