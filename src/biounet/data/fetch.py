"""Public datasets: download (resumable, checksum-verified) or import a local copy, in biounet's layout.

The public entry of ``biounet data``.  Every dataset ends up in the layout that ``biounet train --images
DIR/images --masks DIR/masks`` reads::

    DIR/images/<name>.<ext>    the input images
    DIR/masks/<name>.<ext>     the label image with the same file name
    DIR/dataset.json           what was fetched, from where, checksums, label encoding, citation, licence
    DIR/raw/...                the downloaded original files (kept, so a second run downloads nothing)

The work is split by concern: :mod:`biounet.data.registry` (which datasets, their files and SHA-256,
from the packaged ``registry.json``), :mod:`biounet.data.download` (one file over HTTP: resume, retries,
verification) and :mod:`biounet.data.convert` (original layout -> biounet's layout).  Set
``BIOUNET_DATA_MIRROR=<url>`` (or pass ``base_url``) to download ``<url>/<dataset>/<relative path>`` from a
mirror instead of the public location.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from biounet.data.convert import lay_out, record
from biounet.data.download import DownloadError, download
from biounet.data.registry import DATASETS, Dataset, RemoteFile, describe, get_dataset
from biounet.errors import DataError
from biounet.io.hashing import sha256_file

__all__ = [
    "DATASETS",
    "MIRROR_ENV",
    "Dataset",
    "DownloadError",
    "RemoteFile",
    "describe",
    "fetch",
    "get_dataset",
    "import_local",
    "mirror_base_url",
]

MIRROR_ENV = "BIOUNET_DATA_MIRROR"


def mirror_base_url(dataset: Dataset) -> str | None:
    """``$BIOUNET_DATA_MIRROR/<dataset name>/`` when the variable is set, else ``None``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{dataset.name}/" if mirror else None


def fetch(
    dataset: str | Dataset,
    to: str | os.PathLike,
    *,
    source: str | os.PathLike | None = None,
    base_url: str | None = None,
    limit: int | None = None,
    fluorescence_only: bool = False,
    retries: int = 3,
    retry_wait: float = 2.0,
    progress: bool = True,
) -> Path:
    """Download (or, with ``source``, import a local copy of) a dataset into ``to`` in biounet's layout.

    Args:
        dataset: a name in :data:`DATASETS` or a :class:`Dataset` (e.g. a subset of one, for tests).
        to: output folder; gets ``images/``, ``masks/``, ``dataset.json`` (and ``raw/`` when downloading).
        source: a local folder (or ``.zip``) holding the original files: no network access.  Known
            checksums are verified (the registry's, and those of a ``SHA256SUMS`` file in ``source``).
        base_url: download from here instead of the public location (default: ``$BIOUNET_DATA_MIRROR``).
        limit: ``dsb2018`` only: convert just the first ``limit`` images (sorted by id).
        fluorescence_only: ``dsb2018`` only: keep only dark-background greyscale (fluorescence) images.
        retries, retry_wait, progress: see :func:`download`.

    Returns:
        ``to``.
    """
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    options: dict[str, Any] = {"limit": limit, "fluorescence_only": fluorescence_only, "progress": progress}
    if source is not None:
        return import_local(spec, source, to, **options)
    out = Path(to)
    base = base_url or mirror_base_url(spec) or spec.base_url
    records = []
    for remote in spec.files:
        url = spec.url(remote, base)
        path = download(
            url,
            out / "raw" / remote.path,
            sha256=remote.sha256,
            size=remote.size,
            retries=retries,
            retry_wait=retry_wait,
            progress=progress,
        )
        records.append(record(remote.path, remote.sha256 or sha256_file(path), remote.sha256 is not None))
    return lay_out(spec, out / "raw", out, records, source=base, **options)


def import_local(
    dataset: str | Dataset,
    source: str | os.PathLike,
    to: str | os.PathLike,
    *,
    limit: int | None = None,
    fluorescence_only: bool = False,
    progress: bool = True,
) -> Path:
    """Lay out a local copy of ``dataset`` (a folder, or a ``.zip`` of one) in ``to``; see :func:`fetch`."""
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    src = Path(source)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    if not (src.is_dir() or src.suffix.lower() == ".zip"):
        raise DataError(f"{src}: expected a folder (or a .zip) with the {spec.name} files")
    options: dict[str, Any] = {"limit": limit, "fluorescence_only": fluorescence_only, "progress": progress}
    return lay_out(spec, src, Path(to), [], source=str(src), **options)
