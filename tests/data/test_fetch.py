"""biounet.data.fetch end to end against a real HTTP server on 127.0.0.1 (the ``server`` fixture of
conftest.py): download, verify, lay out, mirrors, and a downloaded DSB archive."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from biounet.data.download import DownloadError
from biounet.data.fetch import DATASETS, RemoteFile, fetch
from biounet.io.hashing import sha256_file


def _isbi_subset(served: tuple[str, ...]):
    """The real registry entry restricted to the served files (their real SHA-256 are checked)."""
    spec = DATASETS["isbi2012"]
    files = tuple(f for f in spec.files if f.path in served)
    assert len(files) == len(served) and all(f.sha256 for f in files)
    return replace(spec, files=files)


def test_fetch_downloads_verifies_and_lays_out(server, tmp_path: Path, shared_data: Path):
    out = fetch(_isbi_subset(server.files), tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
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
    fetch(_isbi_subset(server.files), tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
    assert len(server.requests) == count


def test_mirror_environment_variable(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BIOUNET_DATA_MIRROR", server.url + "/")
    fetch(_isbi_subset(server.files), tmp_path / "isbi", progress=False)
    assert {path for path, _ in server.requests} == {f"isbi2012/{p}" for p in server.files}


def test_checksum_mismatch_is_refused_and_nothing_kept(server, tmp_path: Path):
    spec = replace(_isbi_subset(server.files), files=(RemoteFile("train/image/0.png", "0" * 64),))
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch(spec, tmp_path / "isbi", base_url=f"{server.url}/isbi2012/", progress=False)
    raw = tmp_path / "isbi" / "raw" / "train" / "image"
    assert not (raw / "0.png").exists()
    assert not (raw / "0.png.part").exists()
    assert not (tmp_path / "isbi" / "images").exists()


def test_dsb_archive_download_is_extracted_and_converted(server, tmp_path: Path, shared_data: Path):
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
    assert record["verified"] is False and record["sha256"] == sha256_file(archive)
