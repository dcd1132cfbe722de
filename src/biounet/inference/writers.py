"""Progressive, atomic outputs: the predictor writes strips of rows as it goes, never the whole image at once.

A writer receives blocks (``write(key, block)``, ``key`` a tuple of slices/ints into the output array)
and is committed by :meth:`Writer.close` or discarded by :meth:`Writer.abort`.  File writers write to a
temporary name beside the final one (:func:`biounet.io.atomic.atomic_path`) and rename it at the end, so
a crash, a kill or bad input never leaves a partial file under the final name.

- ``.npy``: ``np.lib.format.open_memmap`` on the temporary file; ``.tif``: ``tifffile.memmap`` (an
  uncompressed, contiguous TIFF that any reader opens).  Each block is written through a fresh memory
  map of the file that is flushed and unmapped right away, so the process's resident memory holds one
  block, not the image.
- ``.zarr``: a chunked, compressed zarr array (directory), written block by block.
- ``.png`` (2D only): kept in memory and written at the end (PNG cannot be written progressively);
  an array with a class axis ``(C, Y, X)`` becomes one PNG per class, ``NAME_<class>.png``.
- no path: an in-memory NumPy array, returned by ``close()``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from biounet.errors import DataError
from biounet.io.atomic import atomic_path
from biounet.io.images import image_suffix, write_image

FILE_SUFFIXES = (".npy", ".tif", ".tiff", ".zarr", ".png")


class Writer:
    """Base class: an output array of ``shape`` and ``dtype`` filled block by block."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)

    def write(self, key: tuple[Any, ...], block: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> Any:
        """Commit the output; returns the array (in memory) or the final path(s)."""
        raise NotImplementedError

    def abort(self) -> None:
        """Discard everything written (no file under the final name)."""


class MemoryWriter(Writer):
    """Collects the output in a NumPy array; ``close()`` returns it."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        super().__init__(shape, dtype)
        self.array = np.zeros(self.shape, self.dtype)

    def write(self, key: tuple[Any, ...], block: np.ndarray) -> None:
        self.array[key] = block

    def close(self) -> np.ndarray:
        return self.array


class _AtomicFileWriter(Writer):
    """Owns an :func:`atomic_path` context: a temporary name renamed onto ``path`` by :meth:`close`."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        super().__init__(shape, dtype)
        self.path = Path(path)
        self._context = atomic_path(self.path)
        self.tmp = self._context.__enter__()
        self._open = True

    def _commit(self) -> Path:
        self._open = False
        self._context.__exit__(None, None, None)
        return self.path

    def abort(self) -> None:
        if self._open:
            self._open = False
            with contextlib.suppress(_Discard):
                self._context.__exit__(_Discard, _Discard(), None)


def reserve_space(tmp: Path, final: Path) -> None:
    """Allocate the disk blocks of the (sparse) file ``tmp`` now, so that a full disk is an ``OSError`` naming
    ``final`` here rather than a SIGBUS later, when a write through the memory map finds no free block."""
    with open(tmp, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return  # a file system without preallocation: writes will report what they find
            raise OSError(error.errno, os.strerror(error.errno), str(final)) from None


class _Discard(Exception):
    """Raised into the atomic context to make it discard the temporary file."""


class MemmapWriter(_AtomicFileWriter):
    """``.npy`` or uncompressed ``.tif`` written through short-lived memory maps of the temporary file."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        super().__init__(path, shape, dtype)
        try:
            if image_suffix(self.path) == ".npy":
                created = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=self.shape)
            else:
                import tifffile

                created = tifffile.memmap(self.tmp, shape=self.shape, dtype=self.dtype, photometric="minisblack")
            self.offset = int(created.offset)
            created.flush()
            del created
            reserve_space(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def write(self, key: tuple[Any, ...], block: np.ndarray) -> None:
        mapped = np.memmap(self.tmp, dtype=self.dtype, mode="r+", offset=self.offset, shape=self.shape)
        mapped[key] = block
        mapped.flush()
        del mapped  # unmapping releases the written pages from this process's resident memory

    def close(self) -> Path:
        return self._commit()


class ZarrWriter(_AtomicFileWriter):
    """A chunked zarr array (directory) at a temporary name, renamed at the end."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | str, chunks: tuple[int, ...]) -> None:
        super().__init__(path, shape, dtype)
        import zarr

        self.tmp.unlink()
        self.array = zarr.open_array(str(self.tmp), mode="w", shape=self.shape, dtype=self.dtype, chunks=chunks)

    def write(self, key: tuple[Any, ...], block: np.ndarray) -> None:
        try:
            self.array[key] = block
        except OSError as error:  # zarr's chunk writes do not name the store
            _settle_zarr_writes()
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from None

    def close(self) -> Path:
        del self.array
        return self._commit()

    def abort(self) -> None:
        super().abort()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _settle_zarr_writes() -> None:
    """Wait for the chunk writes zarr still has in flight after one of them failed.

    zarr writes the chunks of one assignment concurrently on its own event loop; when one fails (a full
    disk) the others are left running, and would write into the temporary store after it was removed and
    be reported by asyncio at exit.  Best effort: it uses zarr's ``sync`` helper, and does nothing if that
    is not there.
    """
    import asyncio

    try:
        from zarr.core.sync import sync
    except ImportError:  # pragma: no cover - another zarr layout
        return

    async def others_done() -> None:
        current = asyncio.current_task()
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not current), return_exceptions=True)

    with contextlib.suppress(Exception):
        sync(others_done())


class PngWriter(MemoryWriter):
    """A 2D image kept in memory and written as PNG at the end; ``(C, Y, X)`` -> one PNG per class."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype | str, class_names: list[str]) -> None:
        super().__init__(shape, dtype)
        self.path = Path(path)
        self.class_names = class_names

    def close(self) -> Path | list[Path]:
        """Write the PNG(s): the path for a 2D array, the list of per-class paths for ``(C, Y, X)``."""
        array = self.array
        if array.ndim == 2:
            return write_image(self.path, _png_ready(array, self.path))
        paths = []
        for index, values in enumerate(array):
            name = self.class_names[index] if index < len(self.class_names) else str(index)
            target = self.path.with_name(f"{self.path.stem}_{name}{self.path.suffix}")
            paths.append(write_image(target, _png_ready(values, target)))
        return paths


def _png_ready(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.integer):
        if array.min() < 0 or array.max() > 65535:
            raise DataError(f"{path}: values up to {array.max()} do not fit a 16-bit PNG; use --format tif")
        return array.astype(np.uint16)
    raise DataError(f"{path}: PNG holds 8/16-bit integers, not {array.dtype}; use uint8 probabilities or tif")


def chunks_for(shape: tuple[int, ...], spatial_dims: int) -> tuple[int, ...]:
    """zarr chunks: one per class / stack index, 512 x 512 in 2D and 64 x 128 x 128 in 3D (clipped)."""
    lead = len(shape) - spatial_dims
    spatial = (512, 512) if spatial_dims == 2 else (64, 128, 128)
    return (1,) * lead + tuple(min(int(n), c) for n, c in zip(shape[lead:], spatial))


def open_writer(
    path: str | Path | None,
    shape: tuple[int, ...],
    dtype: np.dtype | str,
    *,
    spatial_dims: int,
    has_classes: bool = False,
    class_names: list[str] | None = None,
) -> Writer:
    """A writer for ``path`` chosen by its suffix (``None``: in memory).

    ``has_classes``: the first axis of ``shape`` is the class axis (probabilities, logits).
    """
    if path is None:
        return MemoryWriter(shape, dtype)
    path = Path(path)
    suffix = image_suffix(path)
    if suffix in (".npy", ".tif", ".tiff"):
        return MemmapWriter(path, shape, dtype)
    if suffix == ".zarr":
        return ZarrWriter(path, shape, dtype, chunks_for(shape, spatial_dims))
    if suffix == ".png":
        if len(shape) - has_classes != 2:
            raise DataError(f"{path}: PNG holds 2D images, this output has shape {shape}; use tif, zarr or npy")
        return PngWriter(path, shape, dtype, class_names or [])
    raise DataError(f"{path}: unsupported output format {suffix!r} (use {', '.join(FILE_SUFFIXES)})")


def encode_probabilities(probs: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 probabilities -> ``dtype`` (uint8 maps [0, 1] to 0..255, rounded)."""
    if np.dtype(dtype) == np.uint8:
        return np.rint(np.clip(probs, 0.0, 1.0) * 255.0).astype(np.uint8)
    return probs.astype(dtype, copy=False)


def label_dtype(classes: int) -> np.dtype:
    return np.dtype(np.uint8 if classes <= 256 else np.uint16)


def open_output(
    kind: str,
    path: str | os.PathLike | None,
    classes: int,
    stack: tuple[int, ...],
    spatial: tuple[int, ...],
    d: int,
    probability_dtype: str,
    class_names: list[str],
) -> Writer:
    """An output writer of ``kind`` (see :data:`~biounet.inference.outputs.OUTPUT_KINDS`) at ``path``
    (``None``: in memory) for ``classes`` classes over ``(*stack, *spatial)`` pixels."""
    has_classes = kind in ("logits", "probabilities")
    shape = (classes, *stack, *spatial) if has_classes else (*stack, *spatial)
    if kind == "logits":
        dtype = np.dtype(np.float32)
    elif kind == "probabilities":
        dtype = np.dtype(np.float32 if path is None else probability_dtype)
    elif kind == "labels":
        dtype = label_dtype(classes)
    else:
        dtype = np.dtype(np.int32)
    return open_writer(path, shape, dtype, spatial_dims=d, has_classes=has_classes, class_names=class_names)
