"""Shared fixtures: the real data in ``../shared/data`` (beside the repository, never copied into it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BIOUNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder ``../shared/data``; tests that need it fail loudly (not skip) when it is missing."""
    assert SHARED_DATA.is_dir(), f"the shared data folder {SHARED_DATA} is missing (CI puts ../shared beside the repo)"
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def save_pass_through_membrane_model(path: Path, dims: int, z_context: int = 0, spacing: list[float] | None = None,
                                     seed_distance: float = 4.0) -> Path:
    """A pass-through membrane model: P(interior) = sigmoid(20 x - 10) of the min-max normalised intensity ``x``
    of the (middle) input channel, with cell settings (``seed_distance`` in the spacing's in-plane pixels); a
    2.5D one (``z_context``) takes ``2 z_context + 1`` channels."""
    from biounet.io.checkpoint import save_model
    from biounet.model import UNet

    model = UNet(spatial_dims=dims, in_channels=2 * z_context + 1, base_channels=4, depth=2, num_classes=2,
                 dropout=0.0)
    centre = (1,) * dims
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        modules = dict(model.named_modules())
        modules["encoder_first.0"].weight[(0, z_context, *centre)] = 1.0
        for name in ("encoder_first.3", "up.1.block.0", "up.1.block.3"):
            modules[name].weight[(0, 0, *centre)] = 1.0
        model.head.weight[(slice(None), 0) + (0,) * dims] = torch.tensor([-10.0, 10.0])
        model.head.bias[:] = torch.tensor([5.0, -5.0])
    cells = {"interior_threshold": 0.5, "seed_distance": seed_distance, "merge_threshold": 0.3, "min_size": 4}
    target = {"kind": "instances", "style": "membrane", "class_names": ["membrane", "interior"],
              "interior_class": 1, "foreground_classes": [0, 1], "threshold": 0.5, "cells": cells}
    pipeline = {"target": target, "normalization": {"method": "minmax"}, "z_context": z_context, "spacing": spacing}
    return save_model(model, path, pipeline=pipeline)


@pytest.fixture(scope="session")
def membrane_model():
    """:func:`save_pass_through_membrane_model`, for tests of cells through prediction (API, CLI)."""
    return save_pass_through_membrane_model
