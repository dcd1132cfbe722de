"""The model traces (TorchScript) and exports to ONNX with equal outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biounet import UNet


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_torchscript_trace_equals_eager(padding, tmp_path):
    model = UNet(base_channels=4, depth=3, padding=padding).eval()
    x = torch.randn(1, 1, 140, 140)
    with torch.inference_mode():
        expected = model(x)
    traced = torch.jit.trace(model, x)
    traced.save(str(tmp_path / "m.pt"))
    loaded = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.inference_mode():
        assert torch.allclose(loaded(x), expected, atol=1e-6)


def test_onnx_export_equals_eager(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from biounet.export import export_onnx

    model = UNet(base_channels=4, depth=3, norm="batch").eval()
    x = torch.randn(1, 1, 124, 140)
    path = export_onnx(model, tmp_path / "m.onnx", input_shape=(124, 140))
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x.numpy()})
    with torch.inference_mode():
        np.testing.assert_allclose(out, model(x).numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_one_trace_takes_every_valid_size(padding, tmp_path):
    """The bioimage.io package's TorchScript and ONNX are traced once and must give the eager network's logits
    at every size min + n * step (a plain trace of UNet freezes the skip crops to the traced size)."""
    ort = pytest.importorskip("onnxruntime")
    from biounet.export.bioimageio import input_sizes
    from biounet.export.formats import export_onnx_size_general, trace_size_general

    model = UNet(base_channels=4, depth=2, padding=padding, norm="batch").eval()
    lows, steps = input_sizes(model.config)
    example = torch.randn(1, 1, *lows)
    traced = trace_size_general(model, example)
    session = ort.InferenceSession(
        str(export_onnx_size_general(model, tmp_path / "m.onnx", example)), providers=["CPUExecutionProvider"]
    )
    for n, m in [(0, 0), (1, 3), (4, 2)]:
        x = torch.randn(2, 1, lows[0] + n * steps[0], lows[1] + m * steps[1])
        with torch.inference_mode():
            expected = model(x)
            assert torch.allclose(traced(x), expected, atol=1e-5)
        (out,) = session.run(None, {"image": x.numpy()})
        np.testing.assert_allclose(out, expected.numpy(), atol=1e-4)
