"""The Train widget's logic: settings, targets, the dataset written from layers, and the run folder it makes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from napari.components import ViewerModel

from biounet.cli.main import main
from biounet.io.checkpoint import load_bundle
from biounet.napari.train_logic import (
    TrainRequest,
    build_config,
    parse_settings,
    prepare,
    read_losses,
    semantic_classes,
)


def test_settings_are_parsed_like_set_flags():
    assert parse_settings("model.depth=3, optim.lr=0.001; model.norm=null,  data.val_names=[a, b]") == {
        "model.depth": 3, "optim.lr": 1e-3, "model.norm": None, "data.val_names": ["a", "b"]}
    assert parse_settings("  ") == {}
    with pytest.raises(ValueError, match="settings take KEY=VALUE, e.g. model.depth=3, not 'depth'"):
        parse_settings("depth")


def test_targets_and_settings_become_the_configuration(tmp_path):
    membranes = build_config(TrainRequest(tmp_path / "r", "membranes", minutes=3, spatial_dims=3,
                                          settings={"model.depth": 2}), tmp_path / "i", tmp_path / "m")
    assert (membranes.data.target.kind, membranes.data.target.style, membranes.data.target.membrane_value) == (
        "instances", "membrane", 0)
    assert membranes.max_minutes == 3 and membranes.steps is None and membranes.model.spatial_dims == 3
    assert membranes.model.depth == 2 and membranes.checkpoint_minutes == 0.25
    semantic = build_config(TrainRequest(tmp_path / "r", "semantic"), tmp_path / "i", tmp_path / "m", [0, 2, 7])
    assert semantic.data.target.classes == [0, 2, 7] and semantic.data.target.num_classes == 3
    with pytest.raises(Exception, match="unknown key"):
        build_config(TrainRequest(tmp_path / "r", settings={"model.colour": 1}), tmp_path / "i", tmp_path / "m")
    assert semantic_classes([np.array([0, 2]), np.array([7, 0])]) == [0, 2, 7]
    with pytest.raises(ValueError, match="at least 2 values"):
        semantic_classes([np.zeros(4, np.uint8)])


def test_touching_objects_train_the_narrow_network_on_a_bf16_cpu(tmp_path, monkeypatch):
    import torch

    from biounet import runtime

    monkeypatch.setattr(runtime, "default_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(runtime, "resolve_precision", lambda wanted, device: "bf16")
    widths = {target: build_config(TrainRequest(tmp_path / "r", target), tmp_path / "i", tmp_path / "m").model
              .base_channels for target in ("instances", "membranes", "semantic")}
    assert widths == {"instances": 16, "membranes": 32, "semantic": 32}


def test_a_folder_is_used_as_it_is(tmp_path, nuclei):
    for name, image, labels in nuclei[:2]:
        from biounet.io.images import write_image

        write_image(tmp_path / "set" / "images" / f"{name}.png", image)
        write_image(tmp_path / "set" / "masks" / f"{name}.png", (labels > 0).astype(np.uint8) * 255)
    config = prepare(TrainRequest(tmp_path / "run", "semantic", folder=tmp_path / "set"), [])
    assert config.data.images == str(tmp_path / "set" / "images") and config.data.target.classes == [0, 255]
    assert not (tmp_path / "run").exists()  # nothing written before training starts


def test_layers_with_a_stack_and_rgb_are_written_as_a_dataset(tmp_path):
    viewer = ViewerModel()
    stack = viewer.add_image(np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16), name="stack/1")
    labels = viewer.add_labels(np.ones((3, 16, 16), np.int32), name="cells")
    rgb = viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="colour", rgb=True)
    rgb_labels = viewer.add_labels(np.eye(16, dtype=np.int32), name="marks")
    config = prepare(TrainRequest(tmp_path / "run"), [(stack, labels), (rgb, rgb_labels)])
    images = sorted(p.name for p in Path(config.data.images).iterdir())
    assert images == ["colour.tif", "stack_1.tif"] and config.data.masks == str(tmp_path / "run" / "data" / "masks")
    from biounet.io.images import read_image

    np.testing.assert_array_equal(read_image(tmp_path / "run" / "data" / "images" / "stack_1.tif"), stack.data)
    assert read_image(tmp_path / "run" / "data" / "masks" / "colour.tif").dtype == np.uint8


def test_the_run_folder_works_from_the_command_line(trained_run, nuclei, tmp_path, capsys):
    config = json.loads((trained_run / "config.json").read_text())
    assert config["data"]["images"] == str(trained_run / "data" / "images")  # the data stay with the run
    assert load_bundle(trained_run).pipeline.target.kind == "instances"
    steps, losses, val_steps, values = read_losses(trained_run)
    assert steps == [2, 4] and len(losses) == 2 and val_steps == [4] and len(values) == 1
    assert read_losses(tmp_path) == ([], [], [], [])
    from biounet.io.images import write_image

    image = write_image(tmp_path / "nuclei.png", nuclei[2][1])
    assert main(["predict", str(trained_run), str(image), "--out", str(tmp_path / "out"), "--output", "instances"]) == 0
    assert (tmp_path / "out" / "nuclei_instances.tif").is_file()
