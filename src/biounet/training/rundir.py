"""The run directory: started, cleared for ``--overwrite``, and its ``train.log``.

A run directory holds::

    RUN_DIR/model.safetensors, model.json   the best model so far (by the validation metric), with the
                                            pipeline that ``biounet predict RUN_DIR`` needs
    RUN_DIR/last.safetensors, last.json     the model of the last checkpoint
                                            (both: the moving average of the weights when the run keeps
                                            one, ``optim.ema``, as the default recipe does)
    RUN_DIR/config.json                     the full configuration (+ config.source.* as given)
    RUN_DIR/state/                          everything to resume exactly (see biounet.training.state)
    RUN_DIR/history.csv, history.json       loss, learning rate, rate and validation metrics per step
    RUN_DIR/training_curve.png              the same as a figure
    RUN_DIR/report/                         HTML report: validation overlays, metrics, timings
    RUN_DIR/cache/                          the weight maps (eq. 2) of the training images, as .npy
    RUN_DIR/train.log                       the log
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from biounet import runtime
from biounet.io.atomic import write_json_atomic, write_text_atomic
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.data import resolve_data_paths
from biounet.training.state import has_state


def prepare_run_dir(config: TrainConfig, run_dir: Path, *, resume: bool, source_config: Path | None) -> None:
    """Refuse a run directory that holds a run (unless ``resume``); write ``config.json`` (data paths absolute,
    so ``--resume`` works from anywhere) and a copy of the configuration file the run came from."""
    if not resume and has_state(run_dir):
        raise ConfigError(f"{run_dir}: holds a training run already; use --resume to continue it or "
                          "--overwrite to start again")
    run_dir.mkdir(parents=True, exist_ok=True)
    resolve_data_paths(config)
    write_json_atomic(run_dir / "config.json", config.to_dict())
    if source_config and source_config.is_file():
        suffix = source_config.suffix or ".txt"
        write_text_atomic(run_dir / f"config.source{suffix}", source_config.read_text(encoding="utf-8"))


def clear_run_dir(run_dir: str | Path) -> None:
    """Remove a previous run's state, models and history from ``run_dir`` (``--overwrite``); the cache stays."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir / "state", ignore_errors=True)
    for name in ("model.safetensors", "model.json", "last.safetensors", "last.json", "history.csv",
                 "history.json", "training_curve.png", "train.log"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "report", ignore_errors=True)


@contextlib.contextmanager
def file_log(run_dir: Path) -> Iterator[logging.Handler]:
    """``run_dir/train.log`` receives biounet's INFO messages inside the block (the logger is restored)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: the run directory must be a folder, this is a file")
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    with runtime.logging_to(handler, logging.INFO) as attached:
        yield attached


__all__ = ["clear_run_dir", "file_log", "prepare_run_dir"]
