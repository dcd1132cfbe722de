"""biounet.data.registry: the dataset list is loaded from the packaged registry.json and is well formed."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from biounet.data.download import read_sha256sums
from biounet.data.registry import DATASETS, REGISTRY_FILE, describe, get_dataset, parse_registry
from biounet.errors import DataError


def test_registry_is_package_data_and_lists_both_datasets():
    assert resources.files("biounet.data").joinpath(REGISTRY_FILE).is_file()
    assert list(DATASETS) == ["isbi2012", "dsb2018"]
    assert {spec.layout for spec in DATASETS.values()} == {"isbi2012", "dsb2018"}


def test_isbi_file_list_and_checksums():
    files = DATASETS["isbi2012"].files
    paths = [f.path for f in files]
    assert paths[:4] == ["train/image/0.png", "train/label/0.png", "train/image/1.png", "train/label/1.png"]
    assert len(files) == len(set(paths)) == 90 and paths[-1] == "test/29.png"
    verified = [f for f in files if f.sha256 is not None]
    assert len(verified) == 74  # slices 22-29 of the training set have no verified checksum
    assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) and f.size > 0 for f in verified)
    assert all(f.size is None for f in files if f.sha256 is None)
    assert {f.path for f in files if f.sha256 is None} == {
        f"train/{kind}/{n}.png" for n in range(22, 30) for kind in ("image", "label")
    }


def test_registry_matches_the_shared_isbi_copy(shared_data):
    """The shared data's own SHA256SUMS agree with the registry for every file they both list."""
    sums = read_sha256sums(shared_data / "isbi2012_em" / "SHA256SUMS")
    both = [f for f in DATASETS["isbi2012"].files if f.sha256 and f.path in sums]
    assert len(both) == 74 and all(sums[f.path] == f.sha256 for f in both)


def test_get_dataset_and_unknown_names():
    assert get_dataset("dsb2018").files[0].sha256 is None  # GitHub archives are built on demand: no checksum
    with pytest.raises(DataError, match=r"unknown dataset 'nope' \(known: isbi2012, dsb2018\)"):
        get_dataset("nope")


def test_parse_registry_lowercases_digests_and_drops_notes():
    document = {
        "datasets": {
            "x": {
                "title": "X",
                "base_url": "https://example.org/x/",
                "layout": "isbi2012",
                "label_encoding": "0/255",
                "citation": "someone",
                "licence": "CC0",
                "notes": ["for people"],
                "files": [{"path": "a.png", "sha256": "AB" * 32, "size": 3}, {"path": "b.png"}],
            }
        }
    }
    spec = parse_registry(json.loads(json.dumps(document)))["x"]
    assert spec.files[0].sha256 == "ab" * 32 and spec.files[1].sha256 is None and spec.homepage == ""
    assert spec.url(spec.files[1]) == "https://example.org/x/b.png"
    assert spec.url(spec.files[0], "https://mirror/x") == "https://mirror/x/a.png"


def test_describe_lists_every_dataset():
    text = describe()
    assert "isbi2012" in text and "dsb2018" in text
    assert "90 file(s), 74 with a verified SHA-256" in text
