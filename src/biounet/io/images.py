"""Reading and writing image files: PNG, TIFF (single- and multi-page), NumPy ``.npy`` and zarr.

Arrays come back as stored: ``(Y, X)`` or ``(Y, X, C)`` for PNG, ``(Z, Y, X)`` / ``(Y, X)`` /
``(..., C)`` for TIFF, whatever was saved for ``.npy`` and zarr.  Which axis is the channel axis is
decided by the caller (:mod:`biounet.data`), not here.  Every failure is an
:class:`~biounet.errors.ImageReadError` whose one-line message names the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from biounet.errors import ImageReadError
from biounet.io.atomic import atomic_path

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES + (".npy", ".zarr")


def image_suffix(path: str | os.PathLike) -> str:
    """The lower-case format suffix of ``path`` (``.ome.tif`` counts as ``.tif``)."""
    return Path(path).suffix.lower()


def is_image_file(path: str | os.PathLike) -> bool:
    """True for a path whose suffix biounet reads (hidden files excluded)."""
    p = Path(path)
    return not p.name.startswith(".") and image_suffix(p) in IMAGE_SUFFIXES


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a whole image file into memory.

    Returns the array as stored; PNG mode ``1`` comes back as ``uint8`` 0/1.
    Raises :class:`ImageReadError` for a missing, empty, truncated or unsupported file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file")
    suffix = image_suffix(p)
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{p}: unsupported image format {suffix!r} (use {', '.join(IMAGE_SUFFIXES)})")
    if p.is_file() and p.stat().st_size == 0:
        raise ImageReadError(f"{p}: the file is empty")
    try:
        if suffix in PIL_SUFFIXES:
            array = _read_pil(p)
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(p)
        elif suffix == ".npy":
            array = np.load(p, allow_pickle=False)
        else:
            import zarr

            array = np.asarray(zarr.open_array(str(p), mode="r")[...])
    except ImageReadError:
        raise
    except Exception as error:  # every reader has its own exceptions; name the file and the cause
        raise ImageReadError(f"{p}: cannot read image ({_reason(error)})") from error
    if array.size == 0:
        raise ImageReadError(f"{p}: the image has no pixels (shape {array.shape})")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array


def open_image(path: str | os.PathLike) -> Any:
    """Open an image for lazy, sliceable access where the format allows it.

    TIFF files that are stored contiguously are memory-mapped, ``.npy`` files are opened with
    ``mmap_mode="r"`` and zarr arrays are returned as zarr arrays; everything else is read whole.
    The result supports ``.shape``, ``.dtype`` and NumPy slicing.
    """
    p = Path(path)
    suffix = image_suffix(p)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            try:
                return tifffile.memmap(p, mode="r")
            except (ValueError, OSError):
                return read_image(p)
        if suffix == ".npy":
            return np.load(p, mmap_mode="r", allow_pickle=False)
        if suffix == ".zarr":
            import zarr

            return zarr.open_array(str(p), mode="r")
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{p}: cannot open image ({_reason(error)})") from error
    return read_image(p)


def write_image(path: str | os.PathLike, array: np.ndarray, *, compress: bool = True) -> Path:
    """Write ``array`` to ``path`` atomically, the format chosen by the suffix.

    PNG takes 2D ``uint8``/``uint16`` (or ``(Y, X, 3|4)`` ``uint8``); TIFF takes any shape and dtype
    (zlib-compressed unless ``compress=False``); ``.npy`` anything; ``.zarr`` anything (chunked).
    """
    p = Path(path)
    suffix = image_suffix(p)
    array = np.asarray(array)
    if suffix not in IMAGE_SUFFIXES:
        raise ImageReadError(f"{p}: cannot write format {suffix!r} (use {', '.join(IMAGE_SUFFIXES)})")
    with atomic_path(p) as tmp:
        if suffix in PIL_SUFFIXES:
            from PIL import Image

            if array.dtype == bool:
                array = array.astype(np.uint8) * 255
            Image.fromarray(array).save(tmp, format=_pil_format(suffix))
        elif suffix in TIFF_SUFFIXES:
            import tifffile

            tifffile.imwrite(tmp, array, compression="zlib" if compress else None)
        elif suffix == ".npy":
            with open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
        else:
            import shutil

            import zarr

            tmp.unlink()
            z = zarr.open_array(str(tmp), mode="w", shape=array.shape, dtype=array.dtype)
            z[...] = array
            del z
            if not tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return p


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode == "1":
            return np.asarray(img, dtype=np.uint8)
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(img).astype(np.uint16)
        return np.asarray(img)


def _pil_format(suffix: str) -> str:
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF"}[suffix]


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
