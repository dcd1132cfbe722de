"""The public datasets biounet can fetch: names, URLs, file lists with SHA-256 and size, labels, licences.

The entries live in ``registry.json`` beside this module (package data), not in code: checksums are
data, a new dataset or mirror is a data change, and the file can be read and diffed without Python.
Sizes are in bytes; ``sha256``/``size`` are ``null`` where no published checksum could be verified.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from biounet.errors import DataError

REGISTRY_FILE = "registry.json"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: ``path`` relative to the dataset's base URL (and to ``DIR/raw/``).

    ``sha256``/``size`` (bytes) are ``None`` where no published checksum could be verified (the file is
    then accepted after download with a warning that prints its actual SHA-256).
    """

    path: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Dataset:
    """A public dataset: where its files are and how to lay them out (``layout``: "isbi2012"/"dsb2018")."""

    name: str
    title: str
    base_url: str
    files: tuple[RemoteFile, ...]
    layout: str
    label_encoding: str
    citation: str
    licence: str
    homepage: str = ""

    def url(self, file: RemoteFile, base_url: str | None = None) -> str:
        return (base_url or self.base_url).rstrip("/") + "/" + file.path


def parse_registry(document: dict[str, Any]) -> dict[str, Dataset]:
    """``{name: Dataset}`` from the JSON document (``notes`` are for readers of the file and are dropped)."""
    datasets = {}
    for name, entry in document["datasets"].items():
        files = tuple(
            RemoteFile(f["path"], f.get("sha256") and f["sha256"].lower(), f.get("size")) for f in entry["files"]
        )
        fields = {key: entry[key] for key in ("title", "base_url", "layout", "label_encoding", "citation", "licence")}
        datasets[name] = Dataset(name=name, files=files, homepage=entry.get("homepage", ""), **fields)
    return datasets


def load_registry() -> dict[str, Dataset]:
    """The datasets of the ``registry.json`` shipped in the package."""
    text = resources.files("biounet.data").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return parse_registry(json.loads(text))


DATASETS: dict[str, Dataset] = load_registry()


def get_dataset(name: str) -> Dataset:
    """The registry entry ``name``; raises :class:`DataError` naming the known datasets otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None


def describe() -> str:
    """A human-readable list of the registry (for ``biounet data list``)."""
    lines = []
    for spec in DATASETS.values():
        known = sum(f.sha256 is not None for f in spec.files)
        lines.append(f"{spec.name:10s} {spec.title}")
        lines.append(f"{'':10s} {len(spec.files)} file(s), {known} with a verified SHA-256; licence: {spec.licence}")
        lines.append(f"{'':10s} labels: {spec.label_encoding}")
    return "\n".join(lines)
