"""The Segment widget: a model file or run folder, an image layer, outputs and TTA -> result layers.

The prediction runs in a worker thread (napari's ``create_worker``), so the viewer stays usable; a
progress bar counts tiles and Cancel stops after the current batch of tiles.  Every problem (no model
in the folder, a Points layer, a 3D model on a 2D image, a cancel) is one line in the widget's status,
never a traceback in the console.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, ProgressBar, PushButton, SpinBox
from qtpy.QtCore import QObject, Signal

from biounet.napari.common import message_for
from biounet.napari.segment_logic import (
    WIDGET_OUTPUTS,
    SegmentRequest,
    add_layers,
    check_request,
    load_model,
    model_summary,
    result_layers,
    segment,
)


def narrow_dock(container: Container) -> None:
    """Keep the dock narrow beside the canvas: long messages and paths wrap instead of widening it."""
    container.native.setMaximumWidth(MAX_WIDTH)
    for widget in container:
        if isinstance(widget, Label):
            widget.native.setWordWrap(True)


#: Widest the dock widgets get, in pixels.
MAX_WIDTH = 440


class _Relay(QObject):
    """Carries ``(done, total)`` from the worker thread to the progress bar (a queued Qt signal)."""

    progress = Signal(int, int)


class SegmentWidget(Container):
    """The dock widget.  ``viewer``: a napari ``Viewer`` (or a ``ViewerModel`` in tests without a window)."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.model_path = FileEdit(label="model", mode="r", filter="*.safetensors *.zip",
                                   tooltip="a .safetensors model, a bioimage.io package (.zip) or a run folder "
                                           "of biounet train (type it, or use Run folder...)")
        self.folder_button = PushButton(text="Run folder...", label="")
        self.model_info = Label(value="", label="")
        self.image = ComboBox(label="image", choices=self._layer_choices, nullable=True)
        self.outputs = {kind: CheckBox(text=kind, value=kind == "probabilities", label="" if i else "outputs")
                        for i, kind in enumerate(WIDGET_OUTPUTS)}
        self.tta = ComboBox(label="TTA", choices=[1, 4, 8], value=1,
                            tooltip="test-time augmentation: average over flips (4) and rotations (8)")
        self.batch_size = SpinBox(label="tiles/batch", value=0, min=0, max=1024,
                                  tooltip="tiles per forward pass; 0: chosen from the free memory")
        self.run_button = PushButton(text="Segment", label="")
        self.cancel_button = PushButton(text="Cancel", label="", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="tiles")
        self.status = Label(value="", label="")
        self.extend([self.model_path, self.folder_button, self.model_info, self.image, *self.outputs.values(),
                     self.tta, self.batch_size, self.run_button, self.cancel_button, self.progress, self.status])
        narrow_dock(self)
        self.worker: Any = None
        self._cancel = threading.Event()
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._bundle_key: tuple[str, float] | None = None
        self._bundle: Any = None
        self.model_path.changed.connect(self._on_model_changed)
        self.folder_button.changed.connect(self._pick_folder)
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(lambda _event: self.image.reset_choices())
        self.image.reset_choices()

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Every layer (not only Image layers: choosing another kind gets a message, not silence)."""
        return [(layer.name, layer) for layer in self.viewer.layers]

    def _pick_folder(self, _value: Any = None) -> None:
        from qtpy.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self.native, "biounet run folder")
        if folder:
            self.model_path.value = folder

    def _on_model_changed(self, _value: Any = None) -> None:
        try:
            self.model_info.value = model_summary(self.bundle())
        except Exception as error:  # noqa: BLE001 - any failure is a message in the widget
            self.model_info.value = ""
            self.status.value = message_for(error)

    def bundle(self) -> Any:
        """The chosen model, loaded once per path and modification time."""
        path = str(self.model_path.value or "").strip()
        model_file = Path(path)
        stamp = model_file.stat().st_mtime if path and model_file.exists() else 0.0
        if self._bundle_key != (path, stamp):
            self._bundle, self._bundle_key = load_model(path), (path, stamp)
        return self._bundle

    def request(self) -> SegmentRequest:
        outputs = tuple(kind for kind, box in self.outputs.items() if box.value)
        return SegmentRequest(outputs, int(self.tta.value), int(self.batch_size.value) or None)

    def start(self, _value: Any = None) -> bool:
        """Check the choices (a message and False if they do not fit), then predict in a worker thread."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            return False
        layer, request = self.image.value, self.request()
        try:
            bundle = self.bundle()
            check_request(bundle, layer, request)
        except Exception as error:  # noqa: BLE001 - shown in the widget, the viewer stays usable
            self.status.value = message_for(error)
            return False
        self._cancel.clear()
        self.progress.value = 0
        self.status.value = f"segmenting {layer.name!r}..."
        self.worker = create_worker(self._work, bundle, layer, request, _start_thread=False)
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._on_finished)
        self.run_button.enabled, self.cancel_button.enabled = False, True
        self.worker.start()
        return True

    def _work(self, bundle: Any, layer: Any, request: SegmentRequest) -> tuple[str, Any]:
        """In the worker thread: ``("ok", layer data)`` or ``("error", exception)`` (never raises, so that
        nothing reaches napari's error dialog or the console)."""
        try:
            outputs = segment(bundle, layer, request, on_progress=self._relay.progress.emit, cancel=self._cancel)
            return "ok", (layer.name, result_layers(bundle, layer, outputs))
        except Exception as error:  # noqa: BLE001
            return "error", error

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = min(done, total)

    def _on_returned(self, result: tuple[str, Any]) -> None:
        status, value = result
        if status == "error":
            self.status.value = message_for(value)
            return
        name, layers = value
        try:
            add_layers(self.viewer, layers)
            self.status.value = f"{name!r}: added {', '.join(meta['name'] for _, meta, _ in layers)}"
        except Exception as error:  # noqa: BLE001
            self.status.value = message_for(error)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False

    def cancel(self, _value: Any = None) -> None:
        """Stop the prediction after the current batch of tiles; no layer is added."""
        if self.worker is not None:
            self._cancel.set()
            self.status.value = "cancelling..."


__all__ = ["MAX_WIDTH", "SegmentWidget", "narrow_dock"]
