"""Atomic file writes: a crash or kill never leaves a half-written file under the final name.

Every output and checkpoint of biounet goes through :func:`atomic_path`: the data is written to a
temporary file in the same directory, flushed to disk, and renamed over the final name, which POSIX
guarantees to be atomic.  A reader sees either the old file or the complete new one.

Nothing the user made is replaced: a folder standing where an output should go is an error before any
work starts (:class:`OutputInTheWayError`), unless biounet wrote that folder itself as an output of the
same name (a zarr store carries a marker file, :data:`OUTPUT_MARKER`, for that).  Temporary names hold
the writing process's id, so the next write of the same output removes the leftovers of a killed run
(and only biounet's own: ``.NAME.PID.*.part*`` whose process is gone).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biounet.errors import BiounetError

#: A file inside every folder biounet writes as an output (zarr stores): such a folder may be replaced
#: by a later output of the same name; any other folder in the way is left alone.
OUTPUT_MARKER = ".biounet-output"


class OutputInTheWayError(BiounetError, FileExistsError):
    """A folder that biounet did not write stands where an output should go; nothing was written."""


def check_output_path(path: str | os.PathLike) -> Path:
    """Raise :class:`OutputInTheWayError` if ``path`` is a folder that biounet may not replace.

    Call it before long work, so that a wrong output name fails at once; :func:`atomic_path` calls it too.
    """
    final = Path(path)
    if final.is_dir() and not final.is_symlink() and not (final / OUTPUT_MARKER).is_file():
        raise OutputInTheWayError(
            f"{final}: a folder is in the way of this output; nothing was written (move the folder or choose "
            "another output name)"
        )
    return final


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final extension (``suffix`` overrides it), so libraries that choose
    the format by extension (tifffile, PIL, numpy) still do the right thing.  On error the temporary
    file (or directory, for zarr stores) is removed and the exception propagates.
    """
    final = check_output_path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(final)
    ext = suffix if suffix is not None else "".join(final.suffixes[-1:])
    with _naming(final):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.{os.getpid()}.", suffix=f".part{ext}", dir=final.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        elif tmp.is_dir():
            (tmp / OUTPUT_MARKER).write_text("written by biounet: a later output of this name may replace it\n")
        _commit(tmp, final)
    except BaseException as error:
        _remove(tmp)
        if isinstance(error, OSError) and not error.filename:
            raise _named(error, final) from error
        raise


@contextlib.contextmanager
def _naming(final: Path) -> Iterator[None]:
    """Give an ``OSError`` without a file name the output's name, outside the ``try`` of :func:`atomic_path`
    (whose ``except`` does the same for the writing and the rename)."""
    try:
        yield
    except OSError as error:
        if error.filename:
            raise
        raise _named(error, final) from error


def _named(error: OSError, final: Path) -> OSError:
    """``error`` with ``final`` as its file name.  A short write without an error number (numpy's "4096
    requested and 2016 written") on a disk with no room left is called what it is: no space left."""
    code = error.errno
    if code is None and shutil.disk_usage(final.parent).free < 1 << 20:
        code = errno.ENOSPC
    return OSError(code, os.strerror(code) if code else str(error), str(final))


def _commit(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; a folder there is first moved aside (it was checked to be ours)."""
    if final.is_dir() and not final.is_symlink():
        check_output_path(final)  # again: a folder may have appeared while the output was written
        if not tmp.is_dir():
            raise OutputInTheWayError(f"{final}: a folder is in the way of this output; nothing was written")
        old = final.with_name(f".{final.name}.{os.getpid()}.old.part")
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def _remove_leftovers(final: Path) -> None:
    """Remove ``.NAME.PID.*.part*`` temporaries of ``final`` left by processes that no longer run."""
    with contextlib.suppress(OSError):
        for leftover in final.parent.glob(f".{glob.escape(final.name)}.*.part*"):
            pid = leftover.name[len(final.name) + 2 :].split(".", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                _remove(leftover)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return pid != 0


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
