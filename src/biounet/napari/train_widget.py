"""The Train widget: pairs of Image and Labels layers (or a folder), a target kind and minutes -> a run folder.

Training runs in a worker thread (napari's ``create_worker``) with biounet's trainer, exactly as
``biounet train`` would; a QTimer in the GUI thread reads ``RUN_DIR/history.csv`` every second and
redraws the loss curve (the trainer rewrites that file at least every 15 s, see
:data:`~biounet.napari.train_logic.CURVE_CHECKPOINT_MINUTES`).  The finished run folder works with
``biounet predict RUN_DIR`` and with the Segment widget.  There is no cancel: the time budget ends it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, LineEdit, PushButton
from qtpy.QtCore import QTimer

from biounet.napari.common import message_for
from biounet.napari.segment_widget import narrow_dock
from biounet.napari.train_logic import TARGETS, TrainRequest, parse_settings, prepare, read_losses, run_training


class TrainWidget(Container):
    """The dock widget.  ``viewer``: a napari ``Viewer`` (or a ``ViewerModel`` in tests without a window)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.source = ComboBox(label="data", choices=["layers", "folder"], value="layers")
        self.pairs = Container(labels=False)
        self.add_pair_button = PushButton(text="Add image/labels pair", label="")
        self.remove_pair_button = PushButton(text="Remove last pair", label="")
        self.folder = FileEdit(label="folder", mode="d", visible=False,
                               tooltip="a folder holding images/ and masks/ (masks named like their images)")
        self.target = ComboBox(label="target", choices=list(TARGETS), value="instances")
        self.dims = ComboBox(label="network", choices=[("2D", 2), ("3D", 3)], value=2)
        self.minutes = FloatSpinBox(label="minutes", value=5.0, min=0.05, max=10000.0, step=1.0)
        self.settings = LineEdit(label="settings", value="",
                                 tooltip="more configuration, as biounet train --set: model.depth=3, batch_size=8")
        self.run_dir = FileEdit(label="run folder", mode="d", tooltip="a new folder; the model is saved there")
        self.run_button = PushButton(text="Train", label="")
        self.status = Label(value="", label="")
        self.extend([self.source, self.pairs, self.add_pair_button, self.remove_pair_button, self.folder,
                     self.target, self.dims, self.minutes, self.settings, self.run_dir, self.run_button, self.status])
        narrow_dock(self)
        self.curve = _LossCurve()
        self.native.layout().addWidget(self.curve.canvas)
        self.worker: Any = None
        self.result: Any = None
        self._watching: Path | None = None
        self.timer = QTimer()
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.refresh_curve)
        self.source.changed.connect(self._on_source)
        self.add_pair_button.changed.connect(lambda _value=None: self.add_pair())
        self.remove_pair_button.changed.connect(self._remove_pair)
        self.run_button.changed.connect(self.start)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(lambda _event: self.pairs.reset_choices())
        self.add_pair()

    def add_pair(self, image: Any = None, labels: Any = None) -> Container:
        """A row of two layer choices (image, labels); preset to ``image`` and ``labels`` when given."""
        def choices(kind: str) -> Any:
            return lambda _widget=None: [(layer.name, layer) for layer in self.viewer.layers
                                         if type(layer).__name__ == kind]

        row = Container(layout="horizontal", labels=False,
                        widgets=[ComboBox(choices=choices("Image"), nullable=True),
                                 ComboBox(choices=choices("Labels"), nullable=True)])
        self.pairs.append(row)
        row.reset_choices()
        if image is not None:
            row[0].value = image
        if labels is not None:
            row[1].value = labels
        return row

    def _remove_pair(self, _value: Any = None) -> None:
        if len(self.pairs) > 1:
            self.pairs.pop()

    def _on_source(self, value: str) -> None:
        layers = value == "layers"
        for widget in (self.pairs, self.add_pair_button, self.remove_pair_button):
            widget.visible = layers
        self.folder.visible = not layers

    def request(self) -> TrainRequest:
        folder = self.folder.value if self.source.value == "folder" else None
        return TrainRequest(Path(str(self.run_dir.value or "")), str(self.target.value), float(self.minutes.value),
                            int(self.dims.value), Path(str(folder)) if folder else None,
                            parse_settings(self.settings.value or ""))

    def start(self, _value: Any = None) -> bool:
        """Check the choices and write the dataset (a message and False on a problem), then train in a worker."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return False
        try:
            request = self.request()
            pairs = [(row[0].value, row[1].value) for row in self.pairs] if request.folder is None else []
            config = prepare(request, pairs)
        except Exception as error:  # noqa: BLE001 - shown in the widget, the viewer stays usable
            self.status.value = message_for(error)
            return False
        self.result = None
        self._watching = request.run_dir
        self.curve.clear()
        self.status.value = f"training for up to {request.minutes:g} min into {request.run_dir}..."
        self.worker = create_worker(_work, config, request.run_dir, _start_thread=False)
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled = False
        self.timer.start()
        self.worker.start()
        return True

    def refresh_curve(self) -> None:
        """Redraw the loss curve from ``RUN_DIR/history.csv`` (called by the timer every second)."""
        if self._watching is not None:
            self.curve.show(*read_losses(self._watching))

    def _on_returned(self, result: tuple[str, Any]) -> None:
        status, value = result
        if status == "error":
            self.status.value = message_for(value)
            return
        self.result = value
        best = value.best
        summary = f"; best {best['metric']} {best['value']:.3f} at step {best['step']}" if best else ""
        self.status.value = f"trained {value.steps} steps ({value.stopped_by}){summary}; model: {value.run_dir}"

    def _on_finished(self) -> None:
        self.timer.stop()
        self.refresh_curve()
        self.worker = None
        self.run_button.enabled = True


def _work(config: Any, run_dir: Path) -> tuple[str, Any]:
    """In the worker thread: ``("ok", TrainResult)`` or ``("error", exception)``; never raises."""
    try:
        return "ok", run_training(config, run_dir)
    except Exception as error:  # noqa: BLE001
        return "error", error


class _LossCurve:
    """A small matplotlib figure in the widget: training loss (left axis) and the validation metric (right)."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 2.2), tight_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.axes = self.figure.add_subplot(1, 1, 1)
        self.metric_axes = self.axes.twinx()
        self.points = 0
        self.clear()

    def clear(self) -> None:
        self.points = 0
        for axes in (self.axes, self.metric_axes):
            axes.clear()
        self.axes.set_xlabel("step")
        self.axes.set_ylabel("loss")
        self.canvas.draw_idle()

    def show(self, steps: list[int], losses: list[float], val_steps: list[int], values: list[float]) -> None:
        """Draw the curves when there are new points."""
        if len(steps) + len(val_steps) == self.points:
            return
        self.clear()
        self.points = len(steps) + len(val_steps)
        self.axes.plot(steps, losses, color="tab:blue", label="training loss")
        if val_steps:
            self.metric_axes.plot(val_steps, values, "o-", color="tab:orange", label="validation")
            self.metric_axes.set_ylabel("validation")
        self.canvas.draw_idle()


__all__ = ["TrainWidget"]
