"""biounet.data.download against a real HTTP server on 127.0.0.1 (the ``server`` fixture of conftest.py):
resume with Range, retries, servers that ignore Range, HTTP errors; and the checksum helpers."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from biounet.data.download import DownloadError, download, read_sha256sums
from biounet.data.registry import DATASETS
from biounet.io.hashing import sha256_file


def test_interrupted_download_resumes_with_range(server, tmp_path: Path):
    relative = "train/image/0.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    url, dest = f"{server.url}/isbi2012/{relative}", tmp_path / "0.png"
    server.cut_once.add(f"isbi2012/{relative}")
    with pytest.raises(DownloadError, match="run again to resume"):
        download(url, dest, sha256=expected, retries=0, progress=False)
    part = tmp_path / "0.png.part"
    assert not dest.exists() and 0 < part.stat().st_size < (server.root / "isbi2012" / relative).stat().st_size
    kept = part.stat().st_size
    download(url, dest, sha256=expected, retries=0, progress=False)
    assert server.requests[-1] == (f"isbi2012/{relative}", f"bytes={kept}-")
    assert sha256_file(dest) == expected and not part.exists()


def test_interruption_is_retried_within_one_call(server, tmp_path: Path):
    relative = "train/label/1.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    server.cut_once.add(f"isbi2012/{relative}")
    download(f"{server.url}/isbi2012/{relative}", tmp_path / "1.png", sha256=expected, retry_wait=0, progress=False)
    assert sha256_file(tmp_path / "1.png") == expected
    assert len(server.requests) == 2 and server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={(server.root / 'isbi2012' / relative).stat().st_size // 3}-"


def test_server_ignoring_range_restarts(server, tmp_path: Path):
    relative = "test/0.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    url, dest = f"{server.url}/isbi2012/{relative}", tmp_path / "0.png"
    server.honour_range = False
    server.cut_once.add(f"isbi2012/{relative}")
    with pytest.raises(DownloadError):
        download(url, dest, sha256=expected, retries=0, progress=False)
    assert (tmp_path / "0.png.part").is_file()
    download(url, dest, sha256=expected, retries=0, progress=False)  # Range sent, 200 received: restart
    assert server.requests[-1][1] is not None
    assert sha256_file(dest) == expected and dest.stat().st_size == (server.root / "isbi2012" / relative).stat().st_size


def test_complete_part_file_answered_416_is_accepted(server, tmp_path: Path):
    relative = "train/label/0.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    shutil.copyfile(server.root / "isbi2012" / relative, tmp_path / "0.png.part")
    download(f"{server.url}/isbi2012/{relative}", tmp_path / "0.png", sha256=expected, retries=0, progress=False)
    assert sha256_file(tmp_path / "0.png") == expected


def test_http_error_is_a_one_line_download_error(server, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(f"{server.url}/isbi2012/missing.png", tmp_path / "x.png", retries=0, progress=False)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("x.png*"))


def test_read_sha256sums_text_and_binary_mode_lines(tmp_path: Path):
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{a.upper()}  dir/a.png\n{b} *b.png\nnot a checksum line\n\n")
    assert read_sha256sums(tmp_path / "SHA256SUMS") == {"dir/a.png": a, "b.png": b}
