"""Configurations that cannot train on this machine are refused before the data are read."""

from __future__ import annotations

import pytest
import torch

from biounet.model import UNet, UNetConfig
from biounet.tiling.budget import parameter_count, training_step_bytes
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.feasibility import check_training_fits

CPU = torch.device("cpu")
GB = 2**30


def test_parameter_count_is_exact_and_survives_absurd_depths():
    for config in (UNetConfig(), UNetConfig(base_channels=32, padding="same", norm="batch"),
                   UNetConfig(spatial_dims=3, base_channels=4, depth=2, pool_factors=[(1, 2, 2), 2], norm="group"),
                   UNetConfig(upsampling="interpolate", norm="instance", in_channels=3, num_classes=3)):
        assert parameter_count(config) == sum(p.numel() for p in UNet(config).parameters())
    assert parameter_count(UNetConfig(depth=50)) > 10**30


def test_training_step_estimate_is_in_the_measured_range():
    # measured peak RSS of one AdamW step on CPU, fp32: 808 MB (32 channels, batch norm, 4 tiles of 256 px)
    config = UNetConfig(base_channels=32, padding="same", norm="batch")
    assert 0.8 * 808e6 <= training_step_bytes(config, (256, 256), 4, "fp32") <= 1.6 * 808e6


def test_depth_tile_and_memory_are_checked_with_what_fits():
    config = TrainConfig(tile_shape=[256])
    check_training_fits(config, config.model, CPU, "fp32", available=16 * GB)
    deep = TrainConfig.from_dict({"model": {"depth": 50}})
    with pytest.raises(ConfigError, match=r"allows depth 8 at most \(--depth 8\)"):
        check_training_fits(deep, deep.model, CPU, "fp32", available=16 * GB)
    huge = TrainConfig(tile_shape=[100000])
    with pytest.raises(ConfigError, match=r"the largest tile at batch 4 is (\d+).*largest tile at batch 1") as error:
        check_training_fits(huge, huge.model, CPU, "fp32", available=16 * GB)
    side = int(error.value.args[0].split("at batch 4 is ")[1].split(" ")[0])
    fits = TrainConfig(tile_shape=[side])
    check_training_fits(fits, fits.model, CPU, "fp32", available=16 * GB)  # what it suggests fits
    wide = TrainConfig.from_dict({"model": {"base_channels": 4096}})
    with pytest.raises(ConfigError, match="the network alone"):
        check_training_fits(wide, wide.model, CPU, "fp32", available=16 * GB)


@pytest.mark.parametrize(("values", "message"), [
    ({"optim": {"lr": "abc"}}, "optim.lr: expected a number, got 'abc'"),
    ({"batch_size": 2.5}, "batch_size: expected a whole number, got 2.5"),
    ({"seed": "x"}, "seed: expected a whole number, got 'x'"),
    ({"loss": {"class_balance": "maybe"}}, "loss.class_balance: expected true or false, got 'maybe'"),
    ({"data": {"val_split": "abc"}}, "data.val_split: expected a number, got 'abc'"),
    ({"model": {"depth": "deep"}}, "model.depth: expected a whole number, got 'deep'"),
    ({"optim": {"name": "adam"}}, "optim.name: expected one of 'sgd', 'adamw', got 'adam'"),
    ({"steps": 0}, "steps must be >= 1, not 0"),
    ({"checkpoint_every": 0}, "checkpoint_every must be >= 1, not 0"),
    ({"epochs": -1}, "epochs must be positive"),
    ({"num_threads": 0}, "num_threads must be >= 1"),
])
def test_values_of_the_wrong_type_or_range_name_the_key_type_and_value(values, message):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict(values, where="my.yaml")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_plain_meanings_are_converted():
    config = TrainConfig.from_dict({"optim": {"lr": "1e-3"}, "batch_size": 4.0, "tile_shape": 128,
                                    "data": {"val_names": [18, 19]}})
    assert config.optim.lr == 1e-3 and config.batch_size == 4 and config.tile_shape == [128]
    assert config.data.val_names == ["18", "19"]
