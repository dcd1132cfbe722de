"""``biounet export`` and ``biounet info`` in real processes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from biounet import UNet, save_model


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "biounet", *args], capture_output=True, text=True, timeout=300)


def test_export_onnx_writes_the_model_and_its_tiling(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = UNet(base_channels=4, depth=2).eval()
    save_model(model, tmp_path / "run", pipeline={"target": {"kind": "semantic"}})
    proc = run("export", str(tmp_path / "run"), str(tmp_path / "m.onnx"), "--tile-size", "102")
    assert proc.returncode == 0, proc.stderr
    description = json.loads((tmp_path / "m.onnx.json").read_text())
    assert description["input_shape"] == [104, 104]  # 102 rounded up to a size the network takes
    assert description["output_shape"] == [64, 64] and description["halo"] == [20, 20]
    x = np.random.default_rng(0).normal(size=(1, 1, 104, 104)).astype(np.float32)
    (out,) = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"image": x})
    with torch.inference_mode():
        np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), atol=1e-4)


def test_export_refuses_an_unknown_format_and_info_describes_a_model(tmp_path):
    save_model(UNet(base_channels=4, depth=2), tmp_path / "run")
    proc = run("export", str(tmp_path / "run"), str(tmp_path / "m.xyz"))
    assert proc.returncode == 2 and "unknown export format" in proc.stderr
    assert not (tmp_path / "m.xyz").exists()
    proc = run("info", str(tmp_path / "run"), "--size", "102")
    assert proc.returncode == 0, proc.stderr
    assert "halo (context per side): (20, 20)" in proc.stdout
    assert "valid sizes nearest 102: 100, 104" in proc.stdout
