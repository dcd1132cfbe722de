"""Training data: preset folders and the validation split."""

from __future__ import annotations

import pytest

from biounet.training.config import ConfigError, TrainConfig
from biounet.training.data import resolve_data_paths, validation_count


def test_validation_count_keeps_one_image_on_each_side():
    assert validation_count(250, 0.2) == 50
    assert validation_count(2, 0.2) == 1 and validation_count(2, 0.9) == 1
    assert validation_count(22, 4 / 22) == 4


def test_preset_folders_are_found_and_made_absolute(tmp_path):
    for name in ("image", "label"):
        (tmp_path / "isbi" / "train" / name).mkdir(parents=True)
    config = TrainConfig.from_dict({"data": {"images": str(tmp_path / "isbi")}})
    resolve_data_paths(config)
    assert config.data.images == str((tmp_path / "isbi" / "train" / "image").resolve())
    assert config.data.masks == str((tmp_path / "isbi" / "train" / "label").resolve())
    with pytest.raises(ConfigError, match="--masks"):
        resolve_data_paths(TrainConfig.from_dict({"data": {"images": str(tmp_path)}}))
    with pytest.raises(ConfigError, match="no training images"):
        resolve_data_paths(TrainConfig())
