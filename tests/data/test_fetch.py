"""biounet.data.fetch against a real HTTP server on 127.0.0.1 (Range support switchable, can cut a
response mid-file) serving copies of the shared data, and the ``--from`` import of local copies."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import zipfile
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from biounet.data.fetch import DATASETS, DownloadError, RemoteFile, download, fetch, file_sha256, import_local
from biounet.errors import DataError
from biounet.io.images import read_image

ISBI_SUBSET = ("train/image/0.png", "train/label/0.png", "train/image/1.png", "train/label/1.png", "test/0.png")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        relative = unquote(urlparse(self.path).path).lstrip("/")
        server.requests.append((relative, self.headers.get("Range")))
        path = server.root / relative
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if wanted and server.honour_range:
            start = int(wanted.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if server.honour_range else "none")
        self.end_headers()
        if relative in server.cut_once:  # send part of the body, then drop the connection
            server.cut_once.discard(relative)
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.honour_range = True
        self.cut_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path, shared_data: Path):
    """An HTTP server whose ``/isbi2012/`` holds copies of a few shared ISBI files."""
    root = tmp_path / "www"
    for relative in ISBI_SUBSET:
        target = root / "isbi2012" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012_em" / relative, target)
    httpd = _Server(root)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


def _isbi_subset():
    """The real registry entry restricted to the served files (their real SHA-256 are checked)."""
    spec = DATASETS["isbi2012"]
    files = tuple(f for f in spec.files if f.path in ISBI_SUBSET)
    assert len(files) == len(ISBI_SUBSET) and all(f.sha256 for f in files)
    return replace(spec, files=files)


def test_fetch_downloads_verifies_and_lays_out(server: _Server, tmp_path: Path, shared_data: Path):
    out = fetch(_isbi_subset(), tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
    for n in (0, 1):
        assert (out / "images" / f"0{n}.png").read_bytes() == (
            shared_data / f"isbi2012_em/train/image/{n}.png"
        ).read_bytes()
        assert (out / "masks" / f"0{n}.png").read_bytes() == (
            shared_data / f"isbi2012_em/train/label/{n}.png"
        ).read_bytes()
    assert (out / "test" / "images" / "00.png").is_file()
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["pairs"] == 2 and all(record["verified"] for record in summary["files"])
    assert not list(out.rglob("*.part"))
    # idempotent: everything is present and verified, so a second run sends no request at all
    count = len(server.requests)
    fetch(_isbi_subset(), tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
    assert len(server.requests) == count


def test_mirror_environment_variable(server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BIOUNET_DATA_MIRROR", server.url + "/")
    fetch(_isbi_subset(), tmp_path / "isbi", progress=False)
    assert {path for path, _ in server.requests} == {f"isbi2012/{p}" for p in ISBI_SUBSET}


def test_checksum_mismatch_is_refused_and_nothing_kept(server: _Server, tmp_path: Path):
    spec = replace(_isbi_subset(), files=(RemoteFile("train/image/0.png", "0" * 64),))
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(spec, tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
    raw = tmp_path / "isbi" / "raw" / "train" / "image"
    assert not (raw / "0.png").exists()
    assert not (raw / "0.png.part").exists()
    assert not (tmp_path / "isbi" / "images").exists()


def test_interrupted_download_resumes_with_range(server: _Server, tmp_path: Path):
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
    assert file_sha256(dest) == expected and not part.exists()


def test_interruption_is_retried_within_one_call(server: _Server, tmp_path: Path):
    relative = "train/label/1.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    server.cut_once.add(f"isbi2012/{relative}")
    download(f"{server.url}/isbi2012/{relative}", tmp_path / "1.png", sha256=expected, retry_wait=0, progress=False)
    assert file_sha256(tmp_path / "1.png") == expected
    assert len(server.requests) == 2 and server.requests[0][1] is None
    assert server.requests[1][1] == f"bytes={(server.root / 'isbi2012' / relative).stat().st_size // 3}-"


def test_server_ignoring_range_restarts(server: _Server, tmp_path: Path):
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
    assert file_sha256(dest) == expected and dest.stat().st_size == (server.root / "isbi2012" / relative).stat().st_size


def test_complete_part_file_answered_416_is_accepted(server: _Server, tmp_path: Path):
    relative = "train/label/0.png"
    expected = next(f.sha256 for f in DATASETS["isbi2012"].files if f.path == relative)
    shutil.copyfile(server.root / "isbi2012" / relative, tmp_path / "0.png.part")
    download(f"{server.url}/isbi2012/{relative}", tmp_path / "0.png", sha256=expected, retries=0, progress=False)
    assert file_sha256(tmp_path / "0.png") == expected


def test_http_error_is_a_one_line_download_error(server: _Server, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(f"{server.url}/isbi2012/missing.png", tmp_path / "x.png", retries=0, progress=False)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("x.png*"))


def test_dsb_archive_download_is_extracted_and_converted(server: _Server, tmp_path: Path, shared_data: Path):
    stage = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    ids = sorted(p.name for p in stage.iterdir())[:2]
    spec = DATASETS["dsb2018"]
    archive = server.root / "dsb2018" / spec.files[0].path
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as bundle:  # the GitHub archive's layout: <repo>-<commit>/stage1_train/...
        for image_id in ids:
            for path in (stage / image_id).rglob("*.png"):
                bundle.write(path, f"repo-abc/stage1_train/{path.relative_to(stage)}")
    out = fetch(spec, tmp_path / "dsb", base_url=f"{server.url}/dsb2018/", progress=False)
    assert sorted(p.stem for p in (out / "masks").glob("*.tif")) == ids
    assert (out / "raw" / spec.files[0].path).is_file() and not (out / ".extract").exists()
    record = json.loads((out / "dataset.json").read_text())["files"][0]
    assert record["verified"] is False and record["sha256"] == file_sha256(archive)


def test_import_shared_isbi_folder(shared_data: Path, tmp_path: Path):
    out = import_local("isbi2012", shared_data / "isbi2012_em", tmp_path / "isbi", progress=False)
    images, masks = sorted((out / "images").glob("*.png")), sorted((out / "masks").glob("*.png"))
    assert [p.name for p in images] == [p.name for p in masks] == [f"{n:02d}.png" for n in range(22)]
    assert len(list((out / "test" / "images").glob("*.png"))) == 30
    label = read_image(masks[5])
    assert set(np.unique(label).tolist()) == {0, 255}  # kept as published: 0 membrane, 255 interior
    assert (out / "images" / "21.png").read_bytes() == (shared_data / "isbi2012_em/train/image/21.png").read_bytes()
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["pairs"] == 22 and sum(r["verified"] for r in summary["files"]) == 74


def test_import_refuses_a_modified_isbi_file(shared_data: Path, tmp_path: Path):
    src = tmp_path / "copy"
    for relative in ISBI_SUBSET:
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012_em" / relative, src / relative)
    label = src / "train" / "label" / "1.png"
    label.write_bytes(label.read_bytes()[:-1] + b"\0")
    with pytest.raises(DataError, match=r"1\.png: SHA-256 mismatch"):
        import_local("isbi2012", src, tmp_path / "out", progress=False)


def test_import_isbi_multipage_tiffs(shared_data: Path, tmp_path: Path):
    import tifffile

    src = tmp_path / "challenge"
    src.mkdir()
    pages = [read_image(shared_data / f"isbi2012_em/train/image/{n}.png") for n in range(3)]
    labels = [read_image(shared_data / f"isbi2012_em/train/label/{n}.png") for n in range(3)]
    tifffile.imwrite(src / "train-volume.tif", np.stack(pages), photometric="minisblack")
    tifffile.imwrite(src / "train-labels.tif", np.stack(labels), photometric="minisblack")
    out = import_local("isbi2012", src, tmp_path / "out", progress=False)
    assert np.array_equal(read_image(out / "images" / "02.png"), pages[2])
    assert np.array_equal(read_image(out / "masks" / "01.png"), labels[1])


def _copy_dsb(shared_data: Path, dest: Path, count: int) -> list[str]:
    stage = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    ids = sorted(p.name for p in stage.iterdir())[:count]
    for image_id in ids:
        shutil.copytree(stage / image_id, dest / "stage1_train" / image_id)
    return ids


def test_import_dsb_builds_instance_label_maps(shared_data: Path, tmp_path: Path):
    ids = _copy_dsb(shared_data, tmp_path / "src", 3)
    out = import_local("dsb2018", tmp_path / "src", tmp_path / "dsb", progress=False)
    for image_id in ids:
        folder = tmp_path / "src" / "stage1_train" / image_id
        rgba = read_image(folder / "images" / f"{image_id}.png")
        image, labels = read_image(out / "images" / f"{image_id}.tif"), read_image(out / "masks" / f"{image_id}.tif")
        assert image.dtype == np.uint8 and np.array_equal(image, rgba[..., 0])
        assert labels.dtype == np.uint16 and labels.shape == image.shape
        mask_files = sorted((folder / "masks").glob("*.png"))
        assert labels.max() == len(mask_files) == len(np.unique(labels)) - 1
        first = read_image(mask_files[0]) > 0
        assert np.all(labels[first] == 1) and np.all(first[labels == 1])


def test_import_shared_dsb_with_limit_verifies_sha256sums(shared_data: Path, tmp_path: Path):
    out = import_local("dsb2018", shared_data / "dsb2018_nuclei_fluo256", tmp_path / "dsb", limit=2, progress=False)
    assert len(list((out / "images").glob("*.tif"))) == 2
    record = json.loads((out / "dataset.json").read_text())["files"][0]
    assert record["images"] == 2 and record["files_verified"] > 2


def test_import_dsb_refuses_a_file_that_contradicts_sha256sums(shared_data: Path, tmp_path: Path):
    (image_id,) = _copy_dsb(shared_data, tmp_path / "src", 1)
    image = tmp_path / "src" / "stage1_train" / image_id / "images" / f"{image_id}.png"
    wrong = hashlib.sha256(b"something else").hexdigest()
    (tmp_path / "src" / "SHA256SUMS").write_text(f"{wrong}  stage1_train/{image_id}/images/{image_id}.png\n")
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        import_local("dsb2018", tmp_path / "src", tmp_path / "dsb", progress=False)
    assert image.is_file()


def test_import_rejects_unknown_layouts_and_unsafe_archives(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no ISBI 2012 data found"):
        import_local("isbi2012", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="no DSB 2018 data found"):
        import_local("dsb2018", tmp_path / "empty", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as bundle:
        bundle.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="unsafe path"):
        import_local("dsb2018", tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    with pytest.raises(DataError, match="unknown dataset"):
        fetch("nope", tmp_path / "out")
