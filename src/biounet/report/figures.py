"""The report's figures as PNG bytes: training curves and image overlays (matplotlib, Agg, no pyplot).

Overlays show, side by side: the input, the ground truth (random colour per label, with outlines), the
prediction (a probability heat map with its 0.5 contour, or semantic classes in colour) and the separated
instances (random colours with outlines).  Images larger than :data:`MAX_DISPLAY_PX` are shown
downsampled, with a second row that shows the busiest :data:`ZOOM_PX` crop at full resolution.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from biounet.report import OverlayPanel

#: Longest side (pixels) shown for a whole image; larger images are downsampled for the overview.
MAX_DISPLAY_PX = 1024
#: Side (pixels) of the full-resolution crop shown for large images.
ZOOM_PX = 256
#: Images whose longest side exceeds this get the full-resolution zoom row.
ZOOM_ABOVE_PX = 768

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, facecolor="white")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------- curves


def _series(history: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of the rows where ``key`` is a finite number."""
    points = [
        (row.get("step", index), row[key])
        for index, row in enumerate(history)
        if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])
    ]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points)
    return np.asarray(steps, float), np.asarray(values, float)


def _smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average (bias-corrected), as in TensorBoard."""
    out, average = np.empty_like(values), 0.0
    for index, value in enumerate(values):
        average = weight * average + (1 - weight) * value
        out[index] = average / (1 - weight ** (index + 1))
    return out


def curves_png(history: Sequence[dict]) -> bytes | None:
    """Training curves: losses vs step, validation metrics vs step and the learning rate (if logged).

    ``history`` rows look like ``{"step": 100, "train_loss": 0.4, "val_loss": 0.5, "val_dice": 0.8,
    "lr": 1e-3}``; missing or ``None`` values are skipped.  Returns ``None`` for an empty history.
    """
    if not history:
        return None
    keys = list(dict.fromkeys(k for row in history for k in row))
    metric_keys = [k for k in keys if k.startswith("val_") and k != "val_loss" and _series(history, k)[0].size]
    has_lr = _series(history, "lr")[0].size > 1
    columns = 1 + bool(metric_keys) + has_lr
    figure = _figure(4.6 * columns, 3.4)
    axes = figure.subplots(1, columns, squeeze=False)[0]

    ax = axes[0]
    steps, train = _series(history, "train_loss")
    if steps.size:
        if steps.size > 20:
            ax.plot(steps, train, color=PALETTE[0], alpha=0.25, linewidth=1)
            ax.plot(steps, _smooth(train), color=PALETTE[0], linewidth=2, label="training (smoothed)")
        else:
            ax.plot(steps, train, color=PALETTE[0], linewidth=2, marker="o", markersize=3, label="training")
    val_steps, val = _series(history, "val_loss")
    if val_steps.size:
        ax.plot(val_steps, val, color=PALETTE[1], linewidth=2, marker="o", markersize=4, label="validation")
    values = np.concatenate([train, val])
    if values.size and values.min() > 0 and values.max() / values.min() > 20:
        ax.set_yscale("log")
    ax.set(title="Loss", xlabel="step", ylabel="loss")
    _finish(ax)

    column = 1
    if metric_keys:
        ax = axes[column]
        for index, key in enumerate(metric_keys):
            s, v = _series(history, key)
            ax.plot(s, v, color=PALETTE[index % len(PALETTE)], linewidth=2, marker="o", markersize=3, label=key[4:])
        ax.set(title="Validation metrics", xlabel="step")
        _finish(ax)
        column += 1
    if has_lr:
        ax = axes[column]
        s, v = _series(history, "lr")
        ax.plot(s, v, color=PALETTE[3], linewidth=2)
        if v.min() > 0 and v.max() / v.min() > 20:
            ax.set_yscale("log")
        ax.set(title="Learning rate", xlabel="step")
        _finish(ax, legend=False)
    return _png(figure)


def _finish(ax, legend: bool = True) -> None:
    ax.grid(True, color="#dddddd", linewidth=0.8)
    ax.spines[["top", "right"]].set_visible(False)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=9)


# -------------------------------------------------------------------------------------------- overlays


def to_display(image: np.ndarray) -> np.ndarray:
    """A 2D ``(Y, X)`` float image in [0, 1] (1st-99.8th percentile stretch), or ``(Y, X, 3)`` RGB.

    Accepts ``(Y, X)``, ``(Y, X, 3|4)`` (RGB), ``(1, Y, X)`` and ``(Z, Y, X)`` (the middle slice).
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        array = array[..., :3]
    elif array.ndim == 3:
        array = array[array.shape[0] // 2]
    elif array.ndim != 2:
        raise ValueError(f"cannot display an image of shape {array.shape}; expected (Y, X)")
    array = array.astype(np.float32)
    sample = array[:: max(1, array.shape[0] // 512), :: max(1, array.shape[1] // 512)]
    low, high = np.percentile(sample, (1.0, 99.8))
    if high <= low:
        low, high = float(array.min()), float(array.max()) + 1e-6
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def _as_2d(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 1:
        return array[0]
    if array.ndim == 3 and not (array.shape[-1] in (3, 4) and array.shape[0] > 4):
        return array[array.shape[0] // 2]
    return array


def _label_colours(count: int, seed: int = 0) -> np.ndarray:
    """``(count + 1, 3)`` random bright colours; row 0 (background) is black."""
    rng = np.random.default_rng(seed)
    hues = rng.random(count + 1)
    from matplotlib.colors import hsv_to_rgb

    colours = hsv_to_rgb(np.stack([hues, rng.uniform(0.55, 1.0, count + 1), rng.uniform(0.75, 1.0, count + 1)], 1))
    colours[0] = 0.0
    return colours.astype(np.float32)


def _grey_rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)


def label_overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float, outline: Sequence[float]) -> np.ndarray:
    """``(Y, X, 3)`` RGB: each non-zero label in a random colour blended over ``image``, with outlines."""
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    if labels.dtype.kind == "b":
        labels = labels.astype(np.uint8)
    labels = labels.astype(np.int64, copy=False)
    _, dense = np.unique(labels, return_inverse=True)  # ids may be huge or sparse (e.g. 255)
    dense = dense.reshape(labels.shape) + (0 if labels.min() == 0 else 1)
    colours = _label_colours(int(dense.max()))
    rgb = _grey_rgb(image).copy()
    inside = dense > 0
    rgb[inside] = (1 - alpha) * rgb[inside] + alpha * colours[dense[inside]]
    rgb[find_boundaries(dense, mode="inner")] = outline
    return rgb


def probability_overlay(image: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """``(Y, X, 3)``: a heat map of ``probability`` (0..1) over ``image``, with the 0.5 contour in white."""
    from matplotlib import colormaps
    from skimage.segmentation import find_boundaries

    p = np.clip(np.asarray(probability, np.float32), 0.0, 1.0)
    heat = colormaps["inferno"](p)[..., :3].astype(np.float32)
    rgb = 0.45 * _grey_rgb(image) + 0.55 * heat
    rgb[find_boundaries(p > 0.5, mode="inner")] = (0.3, 1.0, 1.0)
    return np.clip(rgb, 0.0, 1.0)


def _downsample(array: np.ndarray, factor: int, *, labels: bool) -> np.ndarray:
    """Shrink ``(Y, X[, 3])`` by an integer ``factor``: block mean for images, striding for labels."""
    if factor <= 1:
        return array
    if labels:
        return array[::factor, ::factor]
    y, x = (array.shape[0] // factor) * factor, (array.shape[1] // factor) * factor
    blocks = array[:y, :x].reshape(y // factor, factor, x // factor, factor, *array.shape[2:])
    return blocks.mean(axis=(1, 3))


def _busiest_window(labels: np.ndarray | None, shape: tuple[int, int], size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window with the most object outlines (centre if none)."""
    centre = (max(0, (shape[0] - size) // 2), max(0, (shape[1] - size) // 2))
    if labels is None:
        return centre
    from scipy.ndimage import uniform_filter
    from skimage.segmentation import find_boundaries

    edges = find_boundaries(labels[::4, ::4], mode="inner").astype(np.float32)  # 1/4 resolution is plenty
    density = uniform_filter(edges, size=max(1, size // 4), mode="constant")
    half = size // 8  # window half-size at 1/4 resolution: keep the window inside the image
    valid = density[half : max(half + 1, density.shape[0] - half), half : max(half + 1, density.shape[1] - half)]
    if valid.size == 0 or valid.max() <= 0:
        return centre
    cy, cx = np.unravel_index(int(np.argmax(valid)), valid.shape)
    y = int(np.clip(4 * (cy + half) - size // 2, 0, max(0, shape[0] - size)))
    x = int(np.clip(4 * (cx + half) - size // 2, 0, max(0, shape[1] - size)))
    return y, x


def _panel_images(panel: OverlayPanel, window: tuple[slice, slice] | None, factor: int) -> list[tuple[str, np.ndarray]]:
    """The ``(title, RGB or grey image)`` columns of one overlay row."""
    crop = window or (slice(None), slice(None))
    image = to_display(panel.image)
    image = _downsample(image[crop], factor, labels=False)
    columns = [("Input", image)]
    if panel.ground_truth is not None:
        gt = _downsample(_as_2d(panel.ground_truth)[crop], factor, labels=True)
        columns.append(("Ground truth", label_overlay(image, gt, alpha=0.35, outline=(1.0, 1.0, 0.2))))
    if panel.prediction is not None:
        pred = _as_2d(panel.prediction)[crop]
        if pred.dtype.kind == "f":
            columns.append(
                ("Prediction (probability)", probability_overlay(image, _downsample(pred, factor, labels=False)))
            )
        else:
            pred = _downsample(pred, factor, labels=True)
            columns.append(("Prediction (classes)", label_overlay(image, pred, alpha=0.4, outline=(1.0, 1.0, 1.0))))
    if panel.instances is not None:
        inst = _downsample(_as_2d(panel.instances)[crop], factor, labels=True)
        count = len(np.unique(inst)) - 1
        columns.append((f"Instances ({count})", label_overlay(image, inst, alpha=0.6, outline=(0.0, 0.0, 0.0))))
    return columns


def overlay_png(panel: OverlayPanel) -> bytes:
    """One overlay figure for ``panel``: a row of input | ground truth | prediction | instances, and for
    images larger than :data:`ZOOM_ABOVE_PX` a second row with a full-resolution crop."""
    from matplotlib.patches import Rectangle

    image2d = to_display(panel.image)
    height, width = image2d.shape[:2]
    factor = max(1, math.ceil(max(height, width) / MAX_DISPLAY_PX))
    zoom = max(height, width) > ZOOM_ABOVE_PX
    rows = [_panel_images(panel, None, factor)]
    if zoom:
        size = min(ZOOM_PX, height, width)
        reference = next((a for a in (panel.instances, panel.ground_truth) if a is not None), None)
        y, x = _busiest_window(None if reference is None else _as_2d(reference), (height, width), size)
        rows.append(_panel_images(panel, (slice(y, y + size), slice(x, x + size)), 1))
    columns = len(rows[0])
    figure = _figure(3.6 * columns, 3.8 * len(rows) * min(1.6, max(0.6, height / width)))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, row in enumerate(rows):
        for c, (title, picture) in enumerate(row):
            ax = axes[r][c]
            ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            suffix = f" (1:{factor})" if r == 0 and factor > 1 else (f" (zoom {picture.shape[1]} px, 1:1)" if r else "")
            ax.set_title(title + suffix, fontsize=10)
            ax.set_axis_off()
            if r == 0 and zoom:
                ax.add_patch(
                    Rectangle(
                        (x / factor, y / factor),
                        size / factor,
                        size / factor,
                        fill=False,
                        edgecolor="#00e5ff",
                        linewidth=1.2,
                    )
                )
    figure.suptitle(f"{panel.name}  ({height} x {width} px)", fontsize=11)
    return _png(figure)
