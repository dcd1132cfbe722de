"""One real napari viewer under Xvfb: the Segment widget from the plugin's manifest on a DSB nuclei PNG.

Set ``BIOUNET_WRITE_SCREENSHOT=docs/napari-segment.png`` to keep the window's screenshot (the README's);
``BIOUNET_SCREENSHOT_MODEL`` then names a better trained model than the test's few-step one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from qtpy.QtCore import QPoint


def test_segment_nuclei_in_a_real_viewer(need_x_server, make_napari_viewer, qtbot, trained_run, shared_data):
    from npe2 import PluginManager, PluginManifest

    manager = PluginManager.instance()
    if "biounet" not in manager._manifests:  # napari's test fixture starts with an empty plugin manager
        manager.register(PluginManifest.from_distribution("biounet"))
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1300, 760)
    root = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    sample = sorted(root.iterdir())[5]
    [image] = viewer.open(sample / "images" / f"{sample.name}.png")
    assert image.rgb  # napari opens DSB's grey RGBA PNG as colour; the widget takes the grey channel
    _, widget = viewer.window.add_plugin_dock_widget("biounet", "Segment")
    widget.model_path.value = Path(os.environ.get("BIOUNET_SCREENSHOT_MODEL") or trained_run)
    widget.image.value = image
    widget.outputs["probabilities"].value = False
    widget.outputs["instances"].value = True
    assert widget.start(), widget.status.value
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.status.value == f"{image.name!r}: added {image.name} instances"
    instances = viewer.layers[f"{image.name} instances"]
    assert type(instances).__name__ == "Labels" and instances.data.shape == image.data.shape[:2]

    viewer.reset_view()  # the canvas shrank when the widget was docked
    qtbot.wait(50)
    screenshot = viewer.screenshot(canvas_only=False, flash=False)
    assert screenshot.ndim == 3 and screenshot.shape[0] > 300 and screenshot.shape[1] > 500
    canvas = viewer.window._qt_viewer.canvas.native  # the OpenGL canvas inside the window: the image is drawn
    origin = canvas.mapTo(viewer.window._qt_window, QPoint(0, 0))
    drawn = screenshot[origin.y():origin.y() + canvas.height(), origin.x():origin.x() + canvas.width(), :3]
    assert drawn.shape[0] > 200 and drawn.std() > 10
    assert len(np.unique(drawn.reshape(-1, 3), axis=0)) > 50  # nuclei and their instance colours, not a blank
    target = os.environ.get("BIOUNET_WRITE_SCREENSHOT")
    if target:
        from biounet.io.images import write_image

        write_image(Path(target), np.ascontiguousarray(screenshot[..., :3]))
