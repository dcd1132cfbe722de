"""biounet.io.hashing: streaming SHA-256 of files, with an opt-in cache keyed by path, size and mtime."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from biounet.io.hashing import BLOCK_BYTES, sha256_file


def test_matches_hashlib_across_block_boundaries(tmp_path: Path):
    for size in (0, 1, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 2 * BLOCK_BYTES + 17):
        data = os.urandom(size)
        path = tmp_path / f"{size}.bin"
        path.write_bytes(data)
        assert sha256_file(path) == hashlib.sha256(data).hexdigest()
        assert sha256_file(str(path), cached=True) == hashlib.sha256(data).hexdigest()


def test_uncached_sees_a_same_size_rewrite_with_the_same_mtime(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    stat = path.stat()
    assert sha256_file(path, cached=True) == hashlib.sha256(b"a" * 100).hexdigest()
    path.write_bytes(b"b" * 100)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: a cache hit
    assert sha256_file(path) == hashlib.sha256(b"b" * 100).hexdigest()
    assert sha256_file(path, cached=True) == hashlib.sha256(b"a" * 100).hexdigest()  # why caching is opt-in


def test_cache_notices_a_changed_size_or_mtime(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    assert sha256_file(path, cached=True) == hashlib.sha256(b"one").hexdigest()
    path.write_bytes(b"three")
    assert sha256_file(path, cached=True) == hashlib.sha256(b"three").hexdigest()
    os.utime(path, ns=(0, 10**9))
    path.write_bytes(b"THREE")
    os.utime(path, ns=(0, 2 * 10**9))
    assert sha256_file(path, cached=True) == hashlib.sha256(b"THREE").hexdigest()
