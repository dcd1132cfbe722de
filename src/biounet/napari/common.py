"""What the Segment and Train widgets share: one-line messages for errors, layer data and geometry.

No Qt here (only NumPy), so the widgets' logic can be tested without a display.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from biounet.errors import BiounetError

log = logging.getLogger("biounet.napari")


class Cancelled(Exception):
    """Raised from a progress callback when the user pressed Cancel; the prediction stops, nothing is added."""


def message_for(error: BaseException) -> str:
    """The one line a widget shows for ``error``: the message of biounet's input errors, else the type too.

    The full traceback of an unexpected error goes to the ``biounet.napari`` logger (napari's console),
    not into the widget.
    """
    if isinstance(error, Cancelled):
        return "cancelled; nothing was added"
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (BiounetError, ValueError, OSError, MemoryError)):
        return text
    log.error("biounet napari widget failed", exc_info=(type(error), error, error.__traceback__))
    return f"{type(error).__name__}: {text}"


def layer_array(layer: Any) -> Any:
    """The full-resolution data of an Image or Labels layer (level 0 of a multiscale layer), not copied."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def spatial_geometry(layer: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(scale, translate)`` of ``layer``'s non-channel axes (an RGB layer's colour axis has none in napari).

    Result layers get these, so they sit on the image in world coordinates (e.g. micrometres).
    """
    return tuple(float(s) for s in layer.scale), tuple(float(t) for t in layer.translate)


def as_label_image(data: Any, name: str) -> np.ndarray:
    """A Labels layer's data as a non-negative integer array for a mask file (uint8/uint16/uint32).

    Raises :class:`ValueError` naming the layer for negative or non-integer labels.
    """
    array = np.asarray(data)
    if array.dtype.kind == "b":
        return array.astype(np.uint8)
    if array.dtype.kind not in "iu":
        raise ValueError(f"labels layer {name!r}: labels must be whole numbers, not {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError(f"labels layer {name!r}: labels must not be negative (found {int(array.min())})")
    top = int(array.max()) if array.size else 0
    dtype = np.uint8 if top < 2**8 else np.uint16 if top < 2**16 else np.uint32
    return array.astype(dtype, copy=False)


__all__ = ["Cancelled", "as_label_image", "layer_array", "log", "message_for", "spatial_geometry"]
