"""The Segment widget's logic on napari layer models (no window): outputs, placement, stacks, bad input, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari.components import ViewerModel

from biounet.errors import BiounetError
from biounet.io.checkpoint import save_model
from biounet.model import UNet
from biounet.napari.common import Cancelled, message_for
from biounet.napari.segment_logic import (
    SegmentRequest,
    add_layers,
    check_request,
    load_model,
    model_summary,
    result_layers,
    segment,
)


def test_segment_a_scaled_image_into_probability_and_instance_layers(trained_run, nuclei):
    viewer = ViewerModel()
    name, image, _ = nuclei[2]
    layer = viewer.add_image(image, name=name, scale=(0.5, 0.25), translate=(10.0, 20.0))
    bundle = load_model(trained_run)
    assert model_summary(bundle).startswith("2D model, 1 channel(s) in, background, interior, boundary")
    seen = []
    outputs = segment(bundle, layer, SegmentRequest(("probabilities", "labels", "instances"), tta=4),
                      on_progress=lambda done, total: seen.append((done, total)))
    assert outputs["probabilities"].shape == (3, 128, 128) and outputs["probabilities"].dtype == np.float32
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=0), 1.0, atol=1e-4)
    assert outputs["labels"].shape == (128, 128) and outputs["instances"].dtype == np.int32
    assert seen and seen[-1][0] == seen[-1][1]
    added = add_layers(viewer, result_layers(bundle, layer, outputs))
    names = [layer.name for layer in added]
    assert names == [f"{name} P(interior)", f"{name} P(boundary)", f"{name} labels", f"{name} instances"]
    for result in added:
        assert tuple(result.scale) == (0.5, 0.25) and tuple(result.translate) == (10.0, 20.0)
    assert type(added[-1]).__name__ == "Labels"
    again = add_layers(viewer, result_layers(bundle, layer, outputs))  # a second run replaces the data
    assert [layer.name for layer in again] == names and len(viewer.layers) == 5


def test_a_2d_model_segments_a_stack_section_by_section(trained_run, nuclei):
    viewer = ViewerModel()
    stack = np.stack([image[:64, :96] for _, image, _ in nuclei])
    layer = viewer.add_image(stack, name="stack", scale=(3.0, 0.5, 0.5))
    bundle = load_model(trained_run)
    outputs = segment(bundle, layer, SegmentRequest(("probabilities", "instances")))
    assert outputs["probabilities"].shape == (3, 3, 64, 96) and outputs["instances"].shape == (3, 64, 96)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=0), 1.0, atol=1e-4)
    layers = result_layers(bundle, layer, outputs)
    assert all(meta["scale"] == (3.0, 0.5, 0.5) for _, meta, _ in layers)


def test_bad_choices_are_one_line_messages(trained_run, tmp_path, nuclei):
    viewer = ViewerModel()
    image = viewer.add_image(nuclei[0][1], name="nuclei")
    points = viewer.add_points(np.array([[1.0, 2.0]]), name="marks")
    bundle = load_model(trained_run)

    (tmp_path / "empty_run").mkdir()
    with pytest.raises(BiounetError, match="empty_run: no biounet model in this directory"):
        load_model(tmp_path / "empty_run")
    with pytest.raises(ValueError, match="choose a model"):
        load_model("")
    with pytest.raises(ValueError, match="'marks' is a Points layer; Segment needs an Image layer"):
        check_request(bundle, points, SegmentRequest())
    with pytest.raises(ValueError, match="choose at least one output"):
        check_request(bundle, image, SegmentRequest(()))

    save_model(UNet(spatial_dims=3, depth=1, base_channels=2), tmp_path / "model3d")
    with pytest.raises(ValueError, match=r"is a 3D model and layer 'nuclei' is 2D \(128, 128\)"):
        check_request(load_model(tmp_path / "model3d"), image, SegmentRequest())
    save_model(UNet(depth=1, base_channels=2), tmp_path / "semantic")
    with pytest.raises(BiounetError, match="instances need a model trained for instances") as error:
        check_request(load_model(tmp_path / "semantic"), image, SegmentRequest(("instances",)))
    assert "\n" not in message_for(error.value)


def test_cancel_between_batches_stops_with_nothing(trained_run, nuclei):
    viewer = ViewerModel()
    layer = viewer.add_image(np.stack([image for _, image, _ in nuclei]), name="stack")
    cancel, calls = threading.Event(), []

    def press_cancel(done: int, total: int) -> None:
        calls.append(done)
        cancel.set()

    with pytest.raises(Cancelled):
        segment(load_model(trained_run), layer, SegmentRequest(("probabilities",), batch_size=1),
                on_progress=press_cancel, cancel=cancel)
    assert calls == [calls[0]] and calls[0] < 3  # stopped after the first batch of the three sections
    assert message_for(Cancelled()) == "cancelled; nothing was added"


def test_a_3d_model_segments_a_volume(tmp_path):
    save_model(UNet(spatial_dims=3, depth=1, base_channels=2, padding="same"), tmp_path / "model3d")
    viewer = ViewerModel()
    volume = np.random.default_rng(0).random((6, 20, 24)).astype(np.float32)
    layer = viewer.add_image(volume, name="volume", scale=(2.0, 0.5, 0.5))
    bundle = load_model(tmp_path / "model3d")
    outputs = segment(bundle, layer, SegmentRequest(("probabilities", "labels")))
    assert outputs["probabilities"].shape == (2, 6, 20, 24) and outputs["labels"].shape == (6, 20, 24)
    layers = result_layers(bundle, layer, outputs)
    assert [(meta["name"], kind) for _, meta, kind in layers] == [
        ("volume P(0)", "image"), ("volume P(1)", "image"), ("volume labels", "labels")]
    assert all(meta["scale"] == (2.0, 0.5, 0.5) for _, meta, _ in layers)
