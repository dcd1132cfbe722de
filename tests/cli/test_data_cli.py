"""``biounet data list|fetch|synth`` through its argparse parser (no network: --from and a dead mirror)."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from biounet.cli import data as data_cli
from biounet.errors import BiounetError
from biounet.io.images import read_image


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="biounet")
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_help_explains_layout_and_datasets(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        _run(["data", "fetch", "--help"])
    text = capsys.readouterr().out
    for needle in ("isbi2012", "dsb2018", "--from", "BIOUNET_DATA_MIRROR", "SHA-256", "0 = membrane"):
        assert needle in text
    assert _run(["data"]) == 2  # no action: usage, exit status 2


def test_list(capsys: pytest.CaptureFixture[str]):
    assert _run(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "isbi2012" in out and "dsb2018" in out and "verified SHA-256" in out


def test_fetch_from_local_isbi_copy(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = _run(
        [
            "data",
            "fetch",
            "isbi2012",
            "--to",
            str(tmp_path / "isbi"),
            "--from",
            str(shared_data / "isbi2012_em"),
            "--no-progress",
        ]
    )
    assert code == 0
    assert "22 image/label pairs" in capsys.readouterr().out
    assert len(list((tmp_path / "isbi" / "images").glob("*.png"))) == 22
    assert json.loads((tmp_path / "isbi" / "dataset.json").read_text())["dataset"] == "isbi2012"


def test_fetch_dsb_with_limit(shared_data: Path, tmp_path: Path):
    code = _run(
        [
            "data",
            "fetch",
            "dsb2018",
            "--to",
            str(tmp_path / "dsb"),
            "--from",
            str(shared_data / "dsb2018_nuclei_fluo256"),
            "--limit",
            "2",
            "--fluorescence-only",
            "--no-progress",
        ]
    )
    assert code == 0
    masks = sorted((tmp_path / "dsb" / "masks").glob("*.tif"))
    assert len(masks) == 2 and read_image(masks[0]).dtype == np.uint16


def test_fetch_errors_are_biounet_errors(tmp_path: Path):
    with pytest.raises(BiounetError, match="unknown dataset 'nope'"):
        _run(["data", "fetch", "nope", "--to", str(tmp_path)])
    with pytest.raises(BiounetError, match="no such file"):
        _run(["data", "fetch", "isbi2012", "--to", str(tmp_path), "--from", str(tmp_path / "missing")])
    with socket.socket() as sock:  # a port with nobody listening: the download fails at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BiounetError, match="download failed"):
        _run(
            [
                "data",
                "fetch",
                "isbi2012",
                "--to",
                str(tmp_path / "x"),
                "--mirror",
                f"http://127.0.0.1:{port}",
                "--retries",
                "0",
                "--no-progress",
            ]
        )
    assert not list((tmp_path / "x").rglob("*.png"))


def test_synth_writes_matching_images_and_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert (
        _run(
            [
                "data",
                "synth",
                "nuclei",
                "--to",
                str(tmp_path),
                "--count",
                "2",
                "--shape",
                "64",
                "96",
                "--seed",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["nuclei_000.tif", "nuclei_001.tif"]
    assert read_image(tmp_path / "images" / names[0]).shape == (64, 96)
    with pytest.raises(BiounetError, match="--shape"):
        _run(["data", "synth", "membrane", "--to", str(tmp_path), "--shape", "4", "4"])
