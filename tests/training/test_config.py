"""Training configuration: layers, recipes, presets, files and errors."""

from __future__ import annotations

import json

import pytest
import torch

from biounet.training.config import ConfigError, TrainConfig, merge, read_config_file
from biounet.training.recipes import preset, recipe


def test_paper_recipe_is_the_paper():
    config = TrainConfig.from_dict(recipe("paper"))
    model = config.model
    assert (model.depth, model.base_channels, model.padding, model.norm, model.dropout) == (4, 64, "valid", None, 0.5)
    assert config.optim.name == "sgd" and config.optim.momentum == 0.99
    assert config.batch_size == 1 and config.spatial_tile() == (572, 572)
    assert config.loss.name == "wce" and (config.loss.w0, config.loss.sigma) == (10.0, 5.0)
    assert config.augmentation.elastic and config.augmentation.elastic_grid == 3
    assert config.augmentation.elastic_std == 10.0


def test_default_recipe_is_a_sensible_start():
    config = TrainConfig.from_dict(recipe("default"))
    assert config.optim.name == "adamw" and config.optim.schedule == "cosine"
    assert config.model.padding == "same" and config.model.norm == "batch" and config.optim.ema == 0.99
    assert config.batch_size == 4 and config.spatial_tile() == (256, 256)
    assert config.loss.w0 == 25.0 and not config.loss.class_balance and config.augmentation.elastic


def test_layers_override_in_order_and_round_trip():
    layers = merge(merge(recipe("default"), preset("isbi2012")), {"optim": {"lr": 0.5}, "steps": 7})
    config = TrainConfig.from_dict(layers)
    assert config.optim.lr == 0.5 and config.optim.name == "adamw" and config.steps == 7
    assert config.data.target.kind == "instances" and config.data.target.style == "membrane"
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.to_dict() == config.to_dict()


def test_dsb_preset():
    config = TrainConfig.from_dict(merge(recipe("default"), preset("dsb2018")))
    assert config.data.layout == "dsb" and config.data.target.num_classes == 3


def test_unknown_keys_and_bad_values_name_the_section():
    with pytest.raises(ConfigError, match=r"my\.yaml: optim: unknown key\(s\) learning_rate"):
        TrainConfig.from_dict({"optim": {"learning_rate": 1}}, where="my.yaml")
    with pytest.raises(ConfigError, match=r"data\.target: unknown key\(s\) colour"):
        TrainConfig.from_dict({"data": {"target": {"colour": 1}}})
    with pytest.raises(ConfigError, match="optim.name"):
        TrainConfig.from_dict({"optim": {"name": "adam"}})
    with pytest.raises(ConfigError, match="model"):
        TrainConfig.from_dict({"model": {"padding": "full"}})
    with pytest.raises(ConfigError, match="unknown recipe"):
        recipe("fast")


def test_yaml_toml_and_json_files(tmp_path):
    (tmp_path / "c.yaml").write_text("steps: 12\noptim:\n  lr: 0.002\nmodel:\n  norm: null\n")
    (tmp_path / "c.toml").write_text('steps = 12\n[optim]\nlr = 0.002\n')
    (tmp_path / "c.json").write_text('{"steps": 12, "optim": {"lr": 0.002}}')
    for name in ("c.yaml", "c.toml", "c.json"):
        config = TrainConfig.from_dict(merge(recipe("default"), read_config_file(tmp_path / name)))
        assert config.steps == 12 and config.optim.lr == 0.002
    assert read_config_file(tmp_path / "c.yaml")["model"]["norm"] is None
    (tmp_path / "broken.yaml").write_text("steps: [1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not a valid YAML file"):
        read_config_file(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        read_config_file(tmp_path / "missing.yaml")


def test_tile_shape_per_axis():
    assert TrainConfig(tile_shape=[100]).spatial_tile() == (100, 100)
    assert TrainConfig(tile_shape=[100, 60]).spatial_tile() == (100, 60)
    with pytest.raises(ConfigError):
        TrainConfig(tile_shape=[1, 2, 3]).spatial_tile()


@pytest.mark.parametrize(("bf16", "width", "lr"), [("1", 32, 1e-3), ("0", 16, 3e-3)])
def test_default_recipe_follows_the_machines_speed_path(monkeypatch, bf16, width, lr):
    from biounet import runtime

    monkeypatch.setenv("BIOUNET_CPU_BF16", bf16)
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: False)
    runtime.cpu_has_bf16.cache_clear()
    try:
        default = TrainConfig.from_dict(recipe("default"))
        assert (default.model.base_channels, default.optim.lr) == (width, lr)
        paper = TrainConfig.from_dict(recipe("paper"))
        assert (paper.model.base_channels, paper.optim.lr) == (64, 0.01)
    finally:
        runtime.cpu_has_bf16.cache_clear()


def test_distance_weight_is_checked_and_needs_a_distance_output():
    touching = {"data": {"target": {"kind": "instances", "distance": True}}}
    config = TrainConfig.from_dict(merge(touching, {"loss": {"distance_weight": 0.5}}))
    assert config.data.target.distance and config.data.target.num_outputs == 4 and config.loss.distance_weight == 0.5
    assert TrainConfig.from_dict(touching).loss.distance_weight == 1.0
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="loss.distance_weight must be a finite weight >= 0"):
            TrainConfig.from_dict(merge(touching, {"loss": {"distance_weight": bad}}))
    with pytest.raises(ConfigError, match=r"distance_weight weighs a distance output: needs data\.target\.distance"):
        TrainConfig.from_dict(merge(preset("dsb2018"), {"loss": {"distance_weight": 2.0}}))
    with pytest.raises(ConfigError, match="a distance output needs touching instances"):
        TrainConfig.from_dict(merge(preset("isbi2012"), {"data": {"target": {"distance": True}}}))
    again = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.data.target.distance and again.loss.distance_weight == 0.5


def test_default_recipe_is_fitted_to_the_machine_and_the_target(monkeypatch):
    """32 channels at lr 1e-3 where the CPU has bfloat16, but touching objects (the DSB nuclei) take 16 at 3e-3
    on any CPU; a float32-only CPU takes 16 for everything; a GPU keeps 32 for the nuclei too."""
    from biounet import runtime

    targets = [None, preset("isbi2012")["data"]["target"], preset("dsb2018")["data"]["target"],
               {"kind": "instances"}, {"kind": "semantic"}]

    def widths(precision: str, device: str) -> tuple:
        monkeypatch.setattr(runtime, "default_device", lambda: torch.device(device))
        monkeypatch.setattr(runtime, "resolve_precision", lambda wanted, dev: precision)
        configs = [TrainConfig.from_dict(recipe("default", target)) for target in targets]
        return tuple((config.model.base_channels, config.optim.lr) for config in configs)

    wide, narrow = (32, 1e-3), (16, 3e-3)
    assert widths("bf16", "cpu") == (wide, wide, narrow, narrow, wide)
    assert widths("fp32", "cpu") == (narrow,) * 5
    assert widths("bf16", "cuda") == (wide,) * 5
