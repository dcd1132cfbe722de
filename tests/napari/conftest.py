"""Fixtures of the napari plugin's tests: a virtual X server, DSB nuclei crops and a model trained on them.

The widgets are Qt widgets; one QApplication serves the whole test process and its platform is fixed
when it is created.  So a session fixture starts Xvfb (installed by ``scripts/ensure-xvfb.sh``) before
the first test here and points ``DISPLAY`` at it: the widget tests and the real viewer test then share
one X server.  Without Xvfb the widget tests run on Qt's ``offscreen`` platform and the viewer test is
skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

XVFB_REASON: list[str] = []


def _start_xvfb() -> subprocess.Popen | None:
    """Start ``Xvfb`` on a free display (it writes the number to a pipe) and set ``DISPLAY``; None if it cannot.

    ``-terminate``: the server ends when its last client (this process's QApplication) disconnects, so it
    outlives no test run; stopping it earlier would take the QApplication down with an X I/O error.
    """
    if shutil.which("Xvfb") is None:
        XVFB_REASON.append("Xvfb is not installed (scripts/ensure-xvfb.sh installs it as root with apt-get)")
        return None
    read_fd, write_fd = os.pipe()
    process = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1400x1000x24", "-nolisten", "tcp", "-terminate"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        process.kill()
        XVFB_REASON.append("Xvfb did not start")
        return None
    os.environ["DISPLAY"] = f":{number}"
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return process


@pytest.fixture(scope="session")
def x_server() -> subprocess.Popen | None:
    """Xvfb for the session when it can run, else Qt's offscreen platform (set before the QApplication exists)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    process = _start_xvfb()
    if process is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return process


@pytest.fixture
def need_x_server(x_server) -> None:
    """Skip (with the reason) a test that needs a real X display where Xvfb cannot run."""
    if x_server is None:
        pytest.skip(f"the napari viewer test needs a virtual X server: {'; '.join(XVFB_REASON)}")


@pytest.fixture(scope="session")
def qapp_args(x_server, pytestconfig) -> list[str]:
    """pytest-qt's QApplication arguments; overridden so that the QApplication is made after :func:`x_server`."""
    return [pytestconfig.getini("qt_qapp_name") or "pytest-qt-qapp"]


@pytest.fixture(scope="session")
def nuclei(shared_data: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Three DSB 2018 fluorescence crops ``(name, image (128, 128) uint8, instances (128, 128) int32)``."""
    from biounet.data.dsb import dsb_instance_map, find_dsb
    from biounet.io.images import read_image

    entries = find_dsb(shared_data / "dsb2018_nuclei_fluo256" / "stage1_train")[:3]
    crops = []
    for name, image_path, mask_paths in entries:
        image = read_image(image_path)[..., 0]
        instances = dsb_instance_map(mask_paths, image.shape)
        crops.append((name[:8], np.ascontiguousarray(image[:128, :128]), instances[:128, :128]))
    return crops


#: A tiny network trained for a few steps: enough for the plumbing, seconds on two CPU cores.
TINY_SETTINGS = ("model.depth=2, model.base_channels=4, model.norm=null, model.dropout=0, tile_shape=64, "
                 "batch_size=2, log_every=2, precision=fp32, device=cpu, optim.warmup_steps=0, optim.lr=0.01")


@pytest.fixture(scope="session")
def tiny_settings() -> str:
    return TINY_SETTINGS


@pytest.fixture(scope="session")
def trained_run(nuclei, tmp_path_factory) -> Path:
    """A run folder trained through the Train widget's logic on napari layers (2 pairs, 4 steps, instances)."""
    from napari.components import ViewerModel

    from biounet.napari.train_logic import TrainRequest, parse_settings, prepare, run_training

    viewer = ViewerModel()
    pairs = [(viewer.add_image(image, name=name), viewer.add_labels(labels, name=f"{name} labels"))
             for name, image, labels in nuclei[:2]]
    run_dir = tmp_path_factory.mktemp("napari") / "run"
    settings = parse_settings(TINY_SETTINGS + ", steps=4, val_every=4, data.val_split=0.5")
    config = prepare(TrainRequest(run_dir, "instances", minutes=2.0, settings=settings), pairs)
    result = run_training(config, run_dir)
    assert result.steps == 4
    return run_dir
