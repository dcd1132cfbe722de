"""The nuclei specialists beside biounet: StarDist and Cellpose 3, trained from scratch on the DSB nuclei.

Every method gets the same split (``bench_accuracy.dsb_split``: the 250 shared fluorescence images of
``dsb2018_nuclei_fluo256/stage1_train`` in natural name order, the last 20 % for validation), the same
wall-clock minutes of training on this machine, one after the other, and the same scoring: biounet's own
evaluation (:mod:`biounet.metrics`) of the instance label maps each method predicts for the validation
images, averaged over the images.  No pretrained weights: none can be downloaded here, and a generalist
pretrained on thousands of images against models trained on 200 would not be a comparison of methods.

* **biounet**: ``biounet train --dsb ... --val-names <validation ids> --max-minutes M --seed S`` in a child
  process, then :func:`biounet.predict` (``output="instances"``) of the saved model on each raw image; the
  model's seed threshold and size are the ones its validation chose.  :data:`BIOUNET_VARIANTS` lists the
  variants measured (a name and extra ``biounet train`` arguments, e.g. ``["--set", "loss.w0=10"]``).
* **StarDist** 2D (TensorFlow CPU): the settings of StarDist's 2D training notebook: 32 rays, grid (2, 2),
  256 px patches, batch 4, Adam 3e-4, images normalised to their 1..99.8 percentiles, label holes filled,
  random flips / 90-degree rotations, intensity change and noise.  A Keras callback stops training at
  the deadline (checked after every step); the best weights by validation loss are kept (StarDist's
  checkpoint).  The last :data:`STARDIST_THRESHOLD_RESERVE` of the budget is kept for
  ``optimize_thresholds`` on the validation images (biounet too chooses its thresholds on them), given up
  at the deadline if it has not finished (StarDist's default thresholds then); the row says which.
* **Cellpose** 3.1 (PyTorch, the CNN; 4.x is the SAM-based Cellpose-SAM): ``CellposeModel(pretrained_model=
  False, diam_mean=17)`` (Cellpose's nuclei size) trained by ``train.train_seg`` with the command line's
  from-scratch settings (SGD, learning rate 0.2, weight decay 1e-5, batch 8, channels [0, 0]).  It has no
  wall-clock limit, so the flows are computed once, the seconds of a training step are measured (two steps
  at learning rate 0, the first of Cellpose's warm-up), and the number of epochs (of one batch each: see
  :func:`train_and_predict_cellpose`) is chosen to fill the rest of the budget; a guard on the network
  stops it at the deadline should the estimate be short.
  Prediction: ``model.eval(image, channels=[0, 0], diameter=<mean training diameter>)`` with Cellpose's
  default thresholds.  Nothing is downloaded (no size model, no weights).

Each peer runs in its own child process (``python bench_specialists.py --peer NAME ...``): TensorFlow and
PyTorch in one process contend for threads, and a peer's crash must not end the section.  A peer that is
not installed (``make bench`` installs ``requirements-specialists.txt``; ``make test`` does not) or
cannot be imported gets a row saying why.

Scores per image, then the mean over the validation images: F1 and AP at IoU 0.5 (DSB ``TP / (TP + FP +
FN)``), DSB mean AP over IoU 0.5..0.95, panoptic quality, foreground IoU, objects predicted beyond the
truth (``max(0, pred - true)``) and missing (``max(0, true - pred)``) per image; seconds per image of
prediction (after one untimed warm-up image).  Each method's row is the median over the seeds, with the
mean AP of every seed.

For development, ``BENCH_SPECIALISTS_MINUTES`` (minutes of training per method and seed, default
:data:`MINUTES`) and ``BENCH_SPECIALISTS_SEEDS`` (comma list, default :data:`SEEDS`) shorten a run::

    BENCH_SPECIALISTS_MINUTES=1 BENCH_SPECIALISTS_SEEDS=0 python benchmarks/run.py --only specialists
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_accuracy import dsb_samples, dsb_split
from common import REPO, SHARED_DATA

MINUTES = 15.0
"""Training minutes per method and seed in the full run."""
QUICK_MINUTES = 0.1
"""Training minutes per method in ``--quick`` (the tiny split: its numbers mean nothing)."""
SEEDS: tuple[int, ...] = (0, 1, 2)
BIOUNET_VARIANTS: list[tuple[str, list[str]]] = [("biounet default", [])]
"""``(row name, extra biounet train arguments)`` of every biounet variant measured."""
PEERS: dict[str, tuple[str, ...]] = {"StarDist": ("stardist", "csbdeep", "tensorflow"), "Cellpose": ("cellpose",)}
"""Peer -> the modules it needs."""
PEER_TITLES = {"StarDist": "StarDist 2D, from scratch", "Cellpose": "Cellpose 3 (CNN), from scratch"}
STARDIST_THRESHOLD_RESERVE = 0.1
"""Fraction of StarDist's budget kept for ``optimize_thresholds`` after training (full run)."""
DSB_ROOT = SHARED_DATA / "dsb2018_nuclei_fluo256" / "stage1_train"

SCORE_TITLES = {  # per-image score key -> column title
    "f1": "F1 @0.5",
    "average_precision_50": "AP @0.5",
    "average_precision": "mean AP 0.5:0.95",
    "panoptic_quality": "PQ",
    "foreground_iou": "foreground IoU",
    "over": "objects over /img",
    "under": "objects under /img",
}


def settings(quick: bool) -> tuple[float, tuple[int, ...]]:
    """``(minutes per method and seed, seeds)`` of this run: the environment's overrides, else the defaults."""
    minutes = float(os.environ.get("BENCH_SPECIALISTS_MINUTES") or (QUICK_MINUTES if quick else MINUTES))
    text = os.environ.get("BENCH_SPECIALISTS_SEEDS")
    seeds = tuple(int(s) for s in text.split(",") if s.strip()) if text else (SEEDS[:1] if quick else SEEDS)
    return minutes, seeds


# ------------------------------------------------------------------------------------------------ data


def raw_images(names: Sequence[str]) -> list[np.ndarray]:
    """The raw ``(Y, X)`` uint8 images of the DSB ids ``names`` (channel 0 of the RGBA files, R = G = B)."""
    from biounet.data.dsb import find_dsb
    from biounet.data.readers import read_image_file

    paths = {name: image_path for name, image_path, _ in find_dsb(DSB_ROOT)}
    images = [read_image_file(paths[name]) for name in names]
    return [image[..., 0] if image.ndim == 3 else image for image in images]


def truth(names: Sequence[str]) -> list[np.ndarray]:
    """The ``(Y, X)`` int32 instance maps of the DSB ids ``names``, as biounet reads them for training."""
    samples, _ = dsb_samples(list(names))
    return [s.target.instances for s in samples]


# ------------------------------------------------------------------------------------------------ scoring


def image_scores(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The scores of one predicted instance map ``pred`` ``(Y, X)`` against ``gt`` (0 = background).

    One table of object overlaps serves every IoU threshold; F1, AP50 and PQ are at IoU > 0.5 (the DSB
    rule), the mean AP over the DSB thresholds 0.5..0.95; over/under count objects, not pixels.
    """
    from biounet.metrics import names
    from biounet.metrics.matching import DSB_IOU_THRESHOLDS, instance_overlaps, match_overlaps, panoptic_from_match

    overlaps = instance_overlaps(gt, np.asarray(pred, dtype=np.int32))
    matches = [match_overlaps(overlaps, t) for t in DSB_IOU_THRESHOLDS]
    precisions = [m.dsb_precision for m in matches]
    truth_fg, pred_fg = gt > 0, pred > 0
    union = np.logical_or(truth_fg, pred_fg).sum()
    excess = matches[0].n_pred - matches[0].n_gt
    return {
        names.F1: matches[0].f1,
        names.AVERAGE_PRECISION_50: precisions[0],
        names.AVERAGE_PRECISION: float(np.mean(precisions)),
        names.PANOPTIC_QUALITY: panoptic_from_match(matches[0]).pq,
        names.FOREGROUND_IOU: float(np.logical_and(truth_fg, pred_fg).sum() / union) if union else 1.0,
        "over": float(max(0, excess)),
        "under": float(max(0, -excess)),
    }


def mean_scores(truths: Sequence[np.ndarray], predictions: Sequence[np.ndarray]) -> dict[str, float]:
    """:func:`image_scores` averaged over the images."""
    per_image = [image_scores(gt, pred) for gt, pred in zip(truths, predictions, strict=True)]
    return {key: float(np.mean([scores[key] for scores in per_image])) for key in per_image[0]}


def timed_predictions(predict_one, images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """``(label maps, seconds per image)`` of ``predict_one(image) -> (Y, X) labels`` over ``images``.

    The first image is predicted once untimed first (graph tracing, kernel selection, caches), so that
    the seconds are those of a warm model, for every method alike.
    """
    predict_one(images[0])
    labels, seconds = [], 0.0
    for image in images:
        start = time.perf_counter()
        labels.append(np.asarray(predict_one(image), dtype=np.int32))
        seconds += time.perf_counter() - start
    return labels, seconds / len(images)


# ------------------------------------------------------------------------------------------------ biounet


def quick_dsb_root(folder: Path, names: Sequence[str]) -> Path:
    """A DSB folder of links to the samples ``names`` alone: ``--quick`` trains biounet on the tiny split too."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (folder / name).exists():
            (folder / name).symlink_to(DSB_ROOT / name, target_is_directory=True)
    return folder


def train_and_predict_biounet(run_dir: Path, minutes: float, seed: int, quick: bool,
                              extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """Train biounet on the DSB split in a child process, then predict the validation images' instances.

    Training reads the shared folder (``--quick``: links to the tiny split) and validates on the split's
    validation ids, so it trains on the split's training images, as the peers do.

    Returns ``{"labels": [(Y, X) int32], "train_s", "s_per_image", "detail"}``; ``train_s`` is the wall time
    of the ``biounet train`` process (start-up included), ``detail`` the steps taken and the seed threshold
    that validation chose.
    """
    from biounet.inference.predictor import predict
    from biounet.io.checkpoint import load_bundle

    train, val = dsb_split(quick)
    root = quick_dsb_root(run_dir.parent / "dsb-quick", [*train, *val]) if quick else DSB_ROOT
    args = [sys.executable, "-m", "biounet", "train", "--dsb", str(root), "--val-names", ",".join(val),
            "--out", str(run_dir), "--max-minutes", str(minutes), "--seed", str(seed), "--no-progress",
            "--overwrite", *(["--val-every", "5", "--tile-size", "188"] if quick else []), *extra_args]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"biounet train failed:\n{proc.stderr[-3000:]}")
    train_s = time.perf_counter() - started
    history = json.loads((run_dir / "history.json").read_text())
    steps = max((row.get("step", 0) for row in history.get("rows", [])), default=0)
    bundle = load_bundle(run_dir)
    labels, per_image = timed_predictions(
        lambda image: predict(bundle, image, output="instances", channel_axis="none", progress=False),
        raw_images(val))
    target = bundle.pipeline.target
    chosen = f"seed threshold {target.threshold}, smallest seed {target.min_size} px" if target else "no target"
    return {"labels": labels, "train_s": train_s, "s_per_image": per_image,
            "detail": f"{steps} steps; {chosen} (chosen on validation)"}


# ------------------------------------------------------------------------------------------------ peers


def missing_modules(peer: str) -> str | None:
    """Why ``peer`` cannot run here (its first missing module), or ``None`` when all are installed."""
    import importlib.util

    for module in PEERS[peer]:
        if importlib.util.find_spec(module) is None:
            return f"not installed: No module named '{module}' (make bench installs benchmarks/" \
                   "requirements-specialists.txt)"
    return None


def run_peer(peer: str, work: Path, minutes: float, seed: int, quick: bool) -> dict[str, Any]:
    """Train and predict ``peer`` in a child process (:func:`main`); its labels and timings, or why not.

    Returns the child's ``result.json`` with ``"labels"`` (the validation images' ``(Y, X)`` maps) added,
    or ``{"status": reason}`` when the peer could not be imported or failed (the last lines of its log).
    """
    work.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, str(Path(__file__).resolve()), "--peer", peer, "--work", str(work),
            "--minutes", str(minutes), "--seed", str(seed), *(["--quick"] if quick else [])]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
           "CELLPOSE_LOCAL_MODELS_PATH": str(work / "cellpose-models"), "MPLBACKEND": "Agg"}
    log = work / "log.txt"
    with open(log, "w") as handle:
        proc = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=work)
    result_path = work / "result.json"
    if proc.returncode != 0 or not result_path.is_file():
        tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
        return {"status": f"failed (exit {proc.returncode}): " + " / ".join(tail)[-600:]}
    result = json.loads(result_path.read_text())
    if "status" not in result:
        with np.load(work / "labels.npz") as data:
            result["labels"] = [data[f"image_{i}"] for i in range(len(data.files))]
    return result


def _thread_count() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_STARTED = time.perf_counter()


def _log(message: str) -> None:
    """A line of a peer child's log (``log.txt`` in its work folder), with the process's seconds so far."""
    print(f"[{time.process_time():7.1f} s cpu, {time.perf_counter() - _STARTED:7.1f} s] {message}", flush=True)


def train_and_predict_stardist(train_images: list[np.ndarray], train_labels: list[np.ndarray],
                               val_images: list[np.ndarray], val_labels: list[np.ndarray], work: Path,
                               minutes: float, seed: int, quick: bool) -> dict[str, Any]:
    """StarDist 2D from scratch for ``minutes`` (threshold optimisation included), then the validation labels.

    Images are raw ``(Y, X)``; labels ``(Y, X)`` int32 instance maps.  Returns the labels, the training
    seconds and a ``detail`` of what was done (steps, thresholds).
    """
    import keras
    import tensorflow as tf
    from csbdeep.utils import normalize
    from stardist import calculate_extents, fill_label_holes
    from stardist.models import Config2D, StarDist2D

    cores = _thread_count()
    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(cores)
    tf.get_logger().setLevel("ERROR")
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    end = started + minutes * 60
    reserve = 0.0 if quick else STARDIST_THRESHOLD_RESERVE * minutes * 60

    def norm(image: np.ndarray) -> np.ndarray:
        return normalize(image.astype(np.float32), 1, 99.8, axis=(0, 1))

    x_train, x_val = [norm(x) for x in train_images], [norm(x) for x in val_images]
    y_train, y_val = [fill_label_holes(y) for y in train_labels], [fill_label_holes(y) for y in val_labels]
    patch = 128 if quick else 256
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=1, use_gpu=False, train_patch_size=(patch, patch),
                      train_batch_size=4, train_tensorboard=False)
    model = StarDist2D(config, name="stardist", basedir=str(work))
    median_extent = calculate_extents(y_train, np.median)
    field_of_view = np.array(model._axes_tile_overlap("YX"))
    model.prepare_for_training()
    stopper = deadline_callback(end - reserve, -(-len(x_val) // config.train_batch_size))
    model.callbacks.append(stopper)
    # the deadline ends training, never the epoch count; epochs of 100 steps (StarDist's) for the LR schedule
    steps_per_epoch = 2 if quick else 100
    model.train(x_train, y_train, validation_data=(x_val, y_val), augmenter=_stardist_augmenter, seed=seed,
                epochs=10**6, steps_per_epoch=steps_per_epoch)
    _log(f"trained {stopper.steps} steps")
    thresholds = "default thresholds" if quick else f"thresholds {optimise_thresholds(model, x_val, y_val, end)}"
    train_s = time.perf_counter() - started
    _log(thresholds)
    labels, per_image = timed_predictions(lambda image: model.predict_instances(norm(image))[0], val_images)
    _log(f"predicted, {per_image:.2f} s an image")
    detail = f"{stopper.steps} steps of batch 4 ({patch} px); {thresholds}"
    if np.any(median_extent > field_of_view):
        detail += f"; median object extent {median_extent} exceeds the field of view {field_of_view}"
    return {"labels": labels, "train_s": train_s, "s_per_image": per_image, "detail": detail}


def optimise_thresholds(model, images: list[np.ndarray], labels: list[np.ndarray], end: float) -> str:
    """``model.optimize_thresholds`` on the validation ``images`` (normalised) and ``labels``, given up at ``end``.

    Its time grows with the candidates a poorly trained model proposes (minutes after a few steps), so the
    model's prediction and NMS are wrapped to stop it at the deadline; the thresholds stay StarDist's
    defaults then.  Returns what was done, for the row.
    """
    started = time.perf_counter()

    def bounded(method):
        def call(*args, **kwargs):
            if time.perf_counter() > end:
                raise _Deadline
            return method(*args, **kwargs)
        return call

    model.predict = bounded(model.predict)
    model._instances_from_prediction = bounded(model._instances_from_prediction)
    try:
        model.optimize_thresholds(images, labels, save_to_json=False)
        return (f"optimised on validation in {time.perf_counter() - started:.0f} s: prob {model.thresholds.prob:.2f}, "
                f"nms {model.thresholds.nms:.2f}")
    except _Deadline:
        return (f"optimisation on validation given up after {time.perf_counter() - started:.0f} s, at the first "
                "prediction or NMS past the deadline")
    finally:
        del model.predict, model._instances_from_prediction  # the class's methods again


def _stardist_augmenter(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StarDist's notebook augmentation of a patch ``x`` ``(Y, X)`` float and its labels ``y``: a random
    flip / 90-degree rotation of both, then an intensity change and Gaussian noise of the image."""
    k = np.random.randint(4)
    x, y = np.rot90(x, k), np.rot90(y, k)
    if np.random.rand() < 0.5:
        x, y = np.flip(x, 1), np.flip(y, 1)
    if np.random.rand() < 0.5:
        x, y = np.flip(x, 0), np.flip(y, 0)
    x = x * np.random.uniform(0.6, 2) + np.random.uniform(-0.2, 0.2)
    x = x + 0.02 * np.random.uniform(0, 1) * np.random.normal(0, 1, x.shape)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)


def deadline_callback(deadline: float, validation_batches: int):
    """A Keras callback that stops ``fit`` once a training step would end past ``deadline`` (perf_counter s).

    Checked after every training step.  Keras validates once more after a stop (StarDist keeps its best
    weights by it), so that pass is kept in hand: its last measured seconds, or before the first one
    ``validation_batches`` forward passes at half a training step's seconds each (a forward is about a
    third of a step; the rest is for tracing the evaluation).
    """
    import keras

    class DeadlineCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.steps, self.validation_s, self.step_s = 0, 0.0, 0.0
            self._test_start = self._step_start = 0.0

        def on_train_batch_begin(self, batch, logs=None) -> None:
            self._step_start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps += 1
            now = time.perf_counter()
            if self.steps > 1:  # the first step traces the graph: its seconds say nothing of the others
                self.step_s += (now - self._step_start - self.step_s) / (self.steps - 1)
            in_hand = self.validation_s or validation_batches * 0.5 * self.step_s
            if now + self.step_s + in_hand >= deadline:
                self.model.stop_training = True

        def on_test_begin(self, logs=None) -> None:
            self._test_start = time.perf_counter()

        def on_test_end(self, logs=None) -> None:
            self.validation_s = time.perf_counter() - self._test_start

    return DeadlineCallback()


class _Deadline(Exception):
    """Raised by a guard (Cellpose's network, StarDist's threshold search) when the deadline has passed."""


def train_and_predict_cellpose(train_images: list[np.ndarray], train_labels: list[np.ndarray],
                               val_images: list[np.ndarray], work: Path, minutes: float, seed: int,
                               quick: bool) -> dict[str, Any]:
    """Cellpose 3 from scratch for ``minutes`` (flows included), then the validation images' labels.

    ``train_seg`` takes epochs, not minutes.  An epoch here is one batch (``nimg_per_epoch`` = the batch),
    so that Cellpose's schedule (learning rate warmed up over 10 epochs, halved 10 times over the last 100
    or 50 when there are more than 300 or 100) is in steps: a CPU does about a hundred 224 px batches in
    15 minutes, fewer than 10 passes over 200 images, which would all be warm-up.  The flows are computed
    once (they count), two steps at learning rate 0 (the schedule's first, which changes no weight) time a
    step (they count too), and the epochs that fill the rest are trained; a forward pre-hook on the network
    stops training at the deadline should the estimate be short.
    """
    import torch
    from cellpose import dynamics, models, train

    torch.manual_seed(seed)
    np.random.seed(seed)
    started = time.perf_counter()
    end = started + minutes * 60
    batch = 2 if quick else 8
    model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, diam_mean=17.0, nchan=2)
    flows = dynamics.labels_to_flows([y.astype(np.int32) for y in train_labels], device=torch.device("cpu"))
    images = [x.astype(np.float32) for x in train_images]
    options = dict(channels=[0, 0], SGD=True, learning_rate=0.2, weight_decay=1e-5, batch_size=batch,
                   min_train_masks=1, save_path=str(work), model_name="cellpose", save_every=10**6)
    _log(f"flows of {len(flows)} images computed")

    forward_times: list[float] = []

    def guard(module: torch.nn.Module, inputs: tuple) -> None:
        if module.training:
            forward_times.append(time.perf_counter())
            if forward_times[-1] > end:
                raise _Deadline

    handle = model.net.register_forward_pre_hook(guard)
    calibration_start = time.perf_counter()
    epochs, done = 0, "the budget ended while a step was timed: untrained"
    try:
        train.train_seg(model.net, train_data=images, train_labels=flows, n_epochs=1, nimg_per_epoch=2 * batch,
                        **options)
        step_s = forward_times[1] - forward_times[0]  # the first step (a little slower than the next: safe)
        overhead_s = max(0.0, time.perf_counter() - calibration_start - 2 * step_s)  # normalising, diameters
        epochs = int((end - time.perf_counter() - overhead_s) / step_s)
        done = f"{epochs} steps of batch {batch} planned from {step_s:.1f} s a step"
        _log(done)
        forward_times.clear()
        if epochs > 0:
            train.train_seg(model.net, train_data=images, train_labels=flows, n_epochs=epochs,
                            nimg_per_epoch=batch, **options)
    except _Deadline:
        if epochs:
            done += f", stopped at the deadline after {len(forward_times) - 1}"
    handle.remove()
    model.net.eval()
    train_s = time.perf_counter() - started
    diameter = float(model.net.diam_labels.item())
    _log(f"trained: {done}")
    labels, per_image = timed_predictions(
        lambda image: model.eval(image.astype(np.float32), channels=[0, 0], diameter=diameter)[0], val_images)
    _log(f"predicted, {per_image:.2f} s an image")
    detail = f"{done}; diameter {diameter:.1f} px; Cellpose's default thresholds"
    return {"labels": labels, "train_s": train_s, "s_per_image": per_image, "detail": detail}


def main(argv: list[str] | None = None) -> int:
    """Child entry point: train and predict one peer, write ``result.json`` and ``labels.npz`` in ``--work``."""
    parser = argparse.ArgumentParser(description="one peer of the specialists section (run by its run())")
    parser.add_argument("--peer", choices=list(PEERS), required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    try:
        for module in PEERS[args.peer]:
            __import__(module)
    except Exception as error:  # an ImportError, or a broken install failing at import
        (args.work / "result.json").write_text(json.dumps({"status": f"cannot import: {error!r}"}))
        return 0
    _log(f"{args.peer} imported")
    train_names, val_names = dsb_split(args.quick)
    train_images, val_images = raw_images(train_names), raw_images(val_names)
    train_labels, val_labels = truth(train_names), truth(val_names)
    _log(f"{len(train_images)} training and {len(val_images)} validation images read")
    if args.peer == "StarDist":
        result = train_and_predict_stardist(train_images, train_labels, val_images, val_labels, args.work,
                                            args.minutes, args.seed, args.quick)
    else:
        result = train_and_predict_cellpose(train_images, train_labels, val_images, args.work, args.minutes,
                                            args.seed, args.quick)
    np.savez_compressed(args.work / "labels.npz", **{f"image_{i}": a for i, a in enumerate(result.pop("labels"))})
    (args.work / "result.json").write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------------ section


def summary_row(method: str, minutes: float, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One table row of ``method``: the median over its seeds' ``runs`` (each with ``scores``) and each seed's AP."""
    row: dict[str, Any] = {"method": method, "minutes": minutes, "seeds": len(runs)}
    for key, title in SCORE_TITLES.items():
        row[title] = statistics.median(run["scores"][key] for run in runs)
    row["s/img predict"] = statistics.median(run["s_per_image"] for run in runs)
    row["train s"] = statistics.median(run["train_s"] for run in runs)
    row["mean AP per seed"] = ", ".join(f"{run['scores']['average_precision']:.3f}" for run in runs)
    row["training"] = "; ".join(f"seed {run['seed']}: {run['detail']}" for run in runs)  # no "|": a table cell
    return row


def run(quick: bool = False) -> dict:
    from biounet.runtime import cpu_has_bf16

    minutes, seeds = settings(quick)
    _, val_names = dsb_split(quick)
    truths = truth(val_names)
    machine = "bf16 CPU" if cpu_has_bf16() else "float32 CPU"
    methods = [name for name, _ in BIOUNET_VARIANTS] + [PEER_TITLES[peer] for peer in PEERS]
    runs: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
    status = {PEER_TITLES[peer]: reason for peer in PEERS if (reason := missing_modules(peer))}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for index, (name, extra) in enumerate(BIOUNET_VARIANTS):
                result = train_and_predict_biounet(Path(tmp) / f"biounet{index}-{seed}", minutes, seed, quick, extra)
                runs[name].append({**result, "seed": seed, "scores": mean_scores(truths, result.pop("labels"))})
            for peer in PEERS:
                if PEER_TITLES[peer] in status:  # not installed, or failed with an earlier seed
                    continue
                result = run_peer(peer, Path(tmp) / f"{peer}-{seed}", minutes, seed, quick)
                if "status" in result:
                    status[PEER_TITLES[peer]] = f"seed {seed}: {result['status']}"
                    continue
                runs[PEER_TITLES[peer]].append({**result, "seed": seed,
                                                "scores": mean_scores(truths, result.pop("labels"))})
    rows = [{**(summary_row(method, minutes, runs[method]) if runs[method] else {"method": method, "minutes": minutes}),
             **({"status": status[method]} if method in status else {})} for method in methods]
    return {"rows": rows, "machine": machine, "notes": [
        f"DSB 2018 nuclei: {len(val_names)} validation images (the last 20 % in name order); every method trained "
        f"from scratch for the same {minutes:g} minutes of wall clock per seed (seeds {', '.join(map(str, seeds))}), "
        f"one after the other on this machine ({machine}: biounet in bfloat16 where `biounet info` says so, "
        "StarDist and Cellpose in float32). Scores by biounet.metrics, the mean over the validation images, "
        "the median over the seeds; higher is better but for the object counts and seconds.",
        "StarDist and Cellpose run the settings of their own examples (see benchmarks/bench_specialists.py); "
        "`training` says what each run did in its minutes. `train s`: wall seconds from the start of training to a "
        "model ready to predict; biounet's is the whole `biounet train` process (start-up and its last validation, "
        "which `--max-minutes` does not bound, included), StarDist's includes its threshold search (bounded by the "
        "budget), Cellpose's its flows. `s/img predict`: seconds per validation image after one warm-up image."]}


if __name__ == "__main__":
    sys.exit(main())
