"""The Segment and Train widgets on a viewer model (no window): worker threads, progress, messages, cancel."""

from __future__ import annotations

import threading

import numpy as np
from napari.components import ViewerModel
from qtpy.QtCore import Qt

from biounet.napari.segment_widget import SegmentWidget
from biounet.napari.train_widget import TrainWidget


def wait_for_worker(qtbot, widget, timeout_ms: int = 60_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout_ms)


def test_segment_widget_runs_in_a_worker_and_adds_layers(qtbot, trained_run, nuclei):
    viewer = ViewerModel()
    name, image, _ = nuclei[2]
    viewer.add_image(image, name=name, scale=(0.5, 0.5))
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.model_path.value = trained_run
    assert widget.model_info.value.startswith("2D model")
    widget.image.value = viewer.layers[name]
    widget.outputs["instances"].value = True
    assert widget.start()
    assert not widget.run_button.enabled and widget.cancel_button.enabled
    wait_for_worker(qtbot, widget)
    assert widget.status.value.startswith(f"{name!r}: added")
    assert [layer.name for layer in viewer.layers][1:] == [f"{name} P(interior)", f"{name} P(boundary)",
                                                           f"{name} instances"]
    assert tuple(viewer.layers[f"{name} instances"].scale) == (0.5, 0.5)
    assert widget.progress.value == widget.progress.max and widget.run_button.enabled


def test_segment_widget_messages_for_bad_input_and_cancel(qtbot, trained_run, nuclei, tmp_path):
    viewer = ViewerModel()
    viewer.add_points(np.array([[1.0, 1.0]]), name="marks")
    viewer.add_image(np.stack([image for _, image, _ in nuclei] * 2), name="stack")
    widget = SegmentWidget(viewer)
    qtbot.addWidget(widget.native)
    assert [name for name, _ in widget._layer_choices()] == ["marks", "stack"]

    (tmp_path / "no_model").mkdir()
    widget.model_path.value = tmp_path / "no_model"
    assert "no_model: no biounet model in this directory" in widget.status.value
    assert not widget.start() and "no biounet model" in widget.status.value

    widget.model_path.value = trained_run
    widget.image.value = viewer.layers["marks"]
    assert not widget.start() and widget.status.value == "layer 'marks' is a Points layer; Segment needs an Image layer"

    widget.image.value = viewer.layers["stack"]
    widget.batch_size.value = 1
    cancelled_at, pressed = [], threading.Event()

    def press_cancel(done: int, total: int) -> None:  # in the GUI thread, like a click on Cancel
        if not pressed.is_set():
            cancelled_at.append(done)
            widget.cancel()
            pressed.set()

    widget._relay.progress.connect(press_cancel)
    # the worker waits for the click after its first batch, so the cancel lands mid-prediction on any machine
    widget._relay.progress.connect(lambda done, total: pressed.wait(10), type=Qt.DirectConnection)
    assert widget.start()
    wait_for_worker(qtbot, widget)
    assert widget.status.value == "cancelled; nothing was added"
    assert len(viewer.layers) == 2 and cancelled_at == [1] and widget.run_button.enabled


def test_train_widget_trains_from_layers_into_a_run_folder(qtbot, nuclei, tmp_path, tiny_settings):
    viewer = ViewerModel()
    layers = [(viewer.add_image(image, name=name), viewer.add_labels(labels, name=f"{name} labels"))
              for name, image, labels in nuclei[:2]]
    widget = TrainWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.pairs[0][0].value, widget.pairs[0][1].value = layers[0]
    widget.add_pair(*layers[1])
    widget.target.value = "semantic"
    widget.run_dir.value = tmp_path / "run"

    widget.settings.value = "model.depth"
    assert not widget.start() and "KEY=VALUE" in widget.status.value
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    widget.run_dir.value = tmp_path / "mine"
    widget.settings.value = tiny_settings + ", steps=4, data.val_split=0"
    assert not widget.start() and widget.status.value.endswith("is not empty; choose a new folder for the run")

    widget.run_dir.value = tmp_path / "run"
    assert widget.start()
    wait_for_worker(qtbot, widget)
    assert widget.status.value.startswith("trained 4 steps (steps)"), widget.status.value
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert sorted(p.name for p in (tmp_path / "run" / "data" / "masks").iterdir()) == [
        f"{name}.tif" for name, _, _ in sorted(nuclei[:2])]
    assert widget.curve.points == 2  # the loss rows of steps 2 and 4, read back from history.csv
    assert widget.result.history.rows[-1]["kind"] == "train"


def test_train_widget_messages(qtbot, tmp_path):
    viewer = ViewerModel()
    image = viewer.add_image(np.zeros((32, 32), np.uint8), name="img")
    empty = viewer.add_labels(np.zeros((32, 32), np.int32), name="empty")
    other = viewer.add_labels(np.ones((16, 16), np.int32), name="small")
    widget = TrainWidget(viewer)
    qtbot.addWidget(widget.native)
    widget.run_dir.value = tmp_path / "run"
    widget.pairs[0][0].value, widget.pairs[0][1].value = image, empty
    assert not widget.start() and widget.status.value == "labels layer 'empty' is empty: paint some objects first"
    widget.pairs[0][1].value = other
    assert not widget.start() and "'small' has shape (16, 16) and image layer 'img' (32, 32)" in widget.status.value
    widget.source.value = "folder"
    widget.folder.value = tmp_path
    assert not widget.start() and "needs an images/ and a masks/ folder" in widget.status.value
    assert not (tmp_path / "run").exists()
