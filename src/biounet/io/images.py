"""Reading and writing image files: PNG, TIFF (single- and multi-page), NumPy ``.npy`` and zarr.

Arrays come back as stored: ``(Y, X)`` or ``(Y, X, C)`` for PNG, ``(Z, Y, X)`` / ``(Y, X)`` /
``(..., C)`` for TIFF, whatever was saved for ``.npy`` and zarr.  Which axis is the channel axis is
decided by the caller (:mod:`biounet.data`), not here.  Every failure is an
:class:`~biounet.errors.ImageReadError` whose one-line message names the file.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from biounet.errors import ImageReadError
from biounet.io.atomic import atomic_path

PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = PIL_SUFFIXES + TIFF_SUFFIXES + (".npy", ".zarr")

# The most a compressed file can expand: deflate 1032-fold, PackBits 128-fold, LZW (12-bit codes) ~3640-fold.
DEFLATE_MAX_RATIO = 1100
TIFF_MAX_RATIO = {1: 1, 8: DEFLATE_MAX_RATIO, 32946: DEFLATE_MAX_RATIO, 32773: 130, 5: 4096}
ZARR_MAX_EMPTY_CHUNKS = 10_000


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
            array = _read_tiff(p)
        elif suffix == ".npy":
            _check_npy(p)
            array = np.load(p, allow_pickle=False)
        else:
            array = np.asarray(_open_zarr(p, whole=True)[...])
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
            _check_npy(p)
            return np.load(p, mmap_mode="r", allow_pickle=False)
        if suffix == ".zarr":
            return LazyImage(_open_zarr(p, whole=False), p)
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

    _check_png_header(path)
    with Image.open(path) as img:
        _check_memory(path, img.width * img.height * _pil_bytes_per_pixel(img.mode), f"{img.width}x{img.height}")
        img.load()
        if img.mode == "1":
            return np.asarray(img, dtype=np.uint8)
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(img).astype(np.uint16)
        return np.asarray(img)


def _pil_bytes_per_pixel(mode: str) -> int:
    from PIL import Image

    depth = 2 if "16" in mode else 4 if mode in ("I", "F") else 1
    return max(Image.getmodebands(mode), 1) * depth


def _check_png_header(path: Path) -> None:
    """Refuse a PNG whose chunks or header declare more than the file can hold, before PIL allocates it.

    Every chunk must end inside the file (PIL reads a chunk's declared length in one go), and deflate
    expands at most 1032-fold, so a PNG of ``n`` bytes holds at most ~1032 n bytes of raw rows.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(29)
        if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
            return  # not a PNG, or no header: PIL says what is wrong
        position = 8
        while position + 8 <= size:
            handle.seek(position)
            length, kind = struct.unpack(">I4s", handle.read(8))
            if position + 12 + length > size:
                raise ImageReadError(
                    f"{path}: truncated or corrupt PNG (chunk {kind!r} at byte {position} declares {length} bytes; "
                    f"the file has {size})"
                )
            if kind == b"IEND":
                break
            position += 12 + length
    width, height, bits, colour = struct.unpack(">IIBB", head[16:26])
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    raw = height * (1 + (width * samples * bits + 7) // 8)
    if raw > DEFLATE_MAX_RATIO * size:
        raise ImageReadError(
            f"{path}: corrupt PNG header ({width}x{height} pixels of {bits} bits cannot come from a file of "
            f"{size} bytes)"
        )


def _read_tiff(path: Path) -> np.ndarray:
    """The first series of a TIFF file, its declared size checked against the file and memory first."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        declared = math.prod(int(n) for n in series.shape) * np.dtype(series.dtype).itemsize
        ratios = [TIFF_MAX_RATIO.get(int(getattr(page, "compression", 0)), 0) for page in series.pages]
        if ratios and min(ratios) > 0 and declared > max(ratios) * path.stat().st_size:
            raise ImageReadError(
                f"{path}: truncated or corrupt TIFF (the header declares {declared} bytes of pixels, shape "
                f"{tuple(series.shape)}, more than a file of {path.stat().st_size} bytes can hold)"
            )
        _check_memory(path, declared, tuple(series.shape))
        return tif.asarray()


def _check_npy(path: Path) -> None:
    """Refuse a ``.npy`` file whose header declares more data than the file holds (before allocating it)."""
    from numpy.lib import format as npy

    with open(path, "rb") as handle:
        version = npy.read_magic(handle)
        read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = read_header(handle)
        offset = handle.tell()
    if dtype.hasobject:
        return  # np.load refuses it (no pickles)
    if any(n < 0 for n in shape):
        raise ImageReadError(f"{path}: corrupt .npy header (shape {shape})")
    declared = math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if offset + declared > size:
        raise ImageReadError(
            f"{path}: truncated .npy file (the header declares shape {shape} of {dtype}, {declared} bytes, "
            f"the file holds {size - offset})"
        )


def _open_zarr(path: Path, *, whole: bool) -> Any:
    """Open a zarr array (of an OME-Zarr image: level 0, see :mod:`biounet.io.omezarr`); refuse chunks (and,
    for ``whole`` reads, arrays) that cannot fit in memory.

    A whole read visits every chunk, stored or not (missing chunks are the fill value), at about 0.2 ms
    each; an array that declares far more chunks than it stores is refused rather than read for minutes.
    """
    import zarr

    from biounet.io.omezarr import is_omezarr, open_level0

    z = open_level0(path)[0] if is_omezarr(path) else zarr.open_array(str(path), mode="r")
    itemsize = np.dtype(z.dtype).itemsize
    shape = tuple(int(n) for n in z.shape)
    chunk = tuple(int(n) for n in (getattr(z, "shards", None) or z.chunks))
    if any(n < 0 for n in shape) or any(n < 1 for n in chunk):
        raise ImageReadError(f"{path}: corrupt zarr metadata (shape {shape}, chunks {chunk})")
    _check_memory(path, math.prod(chunk) * itemsize, chunk, what="a chunk")
    if whole:
        _check_memory(path, math.prod(shape) * itemsize, shape)
        declared, stored = int(z.nchunks), int(z.nchunks_initialized)
        if declared > ZARR_MAX_EMPTY_CHUNKS + 4 * stored:
            raise ImageReadError(
                f"{path}: the zarr array declares {declared} chunks (shape {shape}, chunks {chunk}) but stores "
                f"{stored}; refusing to read it whole"
            )
    return z


class LazyImage:
    """A read-only array read on slicing (a zarr array), whose read errors are :class:`ImageReadError`.

    Supports ``.shape``, ``.dtype``, ``.ndim`` and NumPy basic indexing; a damaged chunk met while
    reading a tile becomes the one-line error naming the file rather than the codec's own exception.
    """

    def __init__(self, array: Any, path: Path) -> None:
        self.array = array
        self.path = path
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except Exception as error:  # codecs, stores and shapes all have their own exceptions
            raise ImageReadError(f"{self.path}: cannot read image data ({_reason(error)})") from error

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[...]
        return data if dtype is None else data.astype(dtype, copy=False)


def _check_memory(path: Path, nbytes: int, shape: Any, *, what: str = "the image") -> None:
    """Refuse, before allocating, ``nbytes`` that this process cannot get (RAM available, address-space limit)."""
    budget = memory_budget()
    if nbytes > budget:
        raise ImageReadError(
            f"{path}: {what} (shape {shape}) needs {nbytes / 2**30:.1f} GiB of memory, more than the "
            f"{budget / 2**30:.1f} GiB this process can use"
        )


def memory_budget() -> int:
    """Bytes one array may take: half the available memory, or of the headroom under an address-space limit."""
    import psutil

    budget = psutil.virtual_memory().available
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            budget = min(budget, soft - psutil.Process().memory_info().vms)
    except (ImportError, OSError, ValueError):
        pass
    return max(budget, 0) // 2


def _pil_format(suffix: str) -> str:
    return {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".gif": "GIF"}[suffix]


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
