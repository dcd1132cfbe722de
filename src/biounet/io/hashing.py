"""SHA-256 of files: the one helper the whole package uses (downloads, training state, prediction sidecars).

Files are read in 1 MiB blocks, so memory stays flat for multi-GB archives and models while each read is
large enough that hashing, not I/O calls, sets the speed.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

#: Bytes read per block (1 MiB).
BLOCK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike, *, cached: bool = False) -> str:
    """Hex SHA-256 of the file at ``path``.

    ``cached=True`` reuses an earlier result for the same resolved path, size (bytes) and modification
    time (ns): prediction hashes the same model once per output file.  It is opt-in because mtimes tick
    coarsely (milliseconds on Linux), so a same-size rewrite right after hashing could return a stale
    digest; checks that exist to catch changed files (downloads, training state) must read the bytes.
    """
    if not cached:
        return _sha256_uncached(str(path))
    stat = os.stat(path)
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _sha256_uncached(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """``size`` and ``mtime_ns`` are only part of the cache key: a changed file gets a new entry."""
    return _sha256_uncached(path)
