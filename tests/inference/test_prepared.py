"""The folded network is made once per model and weights, and never goes stale."""

from __future__ import annotations

import numpy as np
import torch

import biounet
from biounet.inference.engine import prepared
from biounet.model import UNet, UNetConfig

CPU = torch.device("cpu")


def _model(norm: str | None) -> UNet:
    torch.manual_seed(0)
    model = UNet(UNetConfig(base_channels=4, depth=2, padding="same", norm=norm))
    if norm:  # non-trivial running statistics, so folding changes the weights
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def test_the_folded_copy_is_reused_until_the_weights_change_and_the_model_is_left_as_it_was() -> None:
    model = _model("batch").train()
    with prepared(model, CPU, "bf16") as first:
        assert first.module is not model and not first.module.training
        with prepared(model, CPU, "bf16") as nested:  # a large image inside a folder's run
            assert nested is first
    with prepared(model, CPU, "bf16") as second:
        pass
    assert second is first
    assert model.training and next(model.parameters()).is_contiguous()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # an optimiser step changes weights in place
    with prepared(model, CPU, "bf16") as third:
        assert third is not first


def test_a_model_without_batch_norm_runs_itself_and_is_restored() -> None:
    model = _model(None).train()
    with prepared(model, CPU, "bf16") as network:
        assert network.module is model and not model.training
        assert model.encoder_first[0].weight.is_contiguous(memory_format=network.memory_format)
    assert model.training and all(p.is_contiguous() for p in model.parameters())


def _probabilities(model: UNet, image: np.ndarray) -> np.ndarray:
    return biounet.predict(model, image, output="probabilities", precision="fp32", progress=False,
                           probability_dtype="float32")


def test_predictions_follow_weight_changes_between_calls() -> None:
    model = _model("batch").eval()
    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    before = _probabilities(model, image)
    again = _probabilities(model, image)
    np.testing.assert_array_equal(before, again)
    model.load_state_dict(_model("batch").eval().state_dict() | {"head.weight": -model.head.weight.detach()})
    after = _probabilities(model, image)
    fresh = _model("batch").eval()
    fresh.load_state_dict(model.state_dict())
    expected = _probabilities(fresh, image)
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, expected, atol=1e-6)
