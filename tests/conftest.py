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
