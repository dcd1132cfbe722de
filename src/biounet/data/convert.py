"""Converters: a local copy of a public dataset (folder or ``.zip``) -> biounet's training layout.

``DIR/images/<name>``, ``DIR/masks/<name>`` (same file name) and ``DIR/dataset.json`` (what was converted,
from where, checksums, label encoding, citation, licence), read by ``biounet train --images DIR/images
--masks DIR/masks``.  Source files are checked against the registry's SHA-256 and any ``SHA256SUMS``
beside them, so a modified copy is refused rather than trained on.

``isbi2012``: per-slice PNGs (or the challenge's multi-page TIFFs) -> ``images/NN.png``, ``masks/NN.png``
(0 = membrane, 255 = cell interior, as published), ``test/images/NN.png``.
``dsb2018``: ``<id>/images/<id>.png`` + ``<id>/masks/*.png`` -> ``images/<id>.tif`` (channel 0, uint8) and
``masks/<id>.tif`` (uint16 instance labels).  The DSB layout is read with :mod:`biounet.data.readers`
(:func:`~biounet.data.readers.scan_dsb`, :func:`~biounet.data.readers.dsb_instance_map`), so training
from the original folders and from the converted files sees the same objects.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from biounet.data.download import read_sha256sums
from biounet.data.dsb import dsb_instance_map, scan_dsb
from biounet.data.registry import Dataset
from biounet.errors import DataError
from biounet.io.hashing import sha256_file

log = logging.getLogger(__name__)


def lay_out(
    spec: Dataset,
    src: Path,
    out: Path,
    records: list[dict[str, Any]],
    *,
    source: str,
    limit: int | None,
    fluorescence_only: bool,
    progress: bool,
) -> Path:
    """Run the dataset's layout step on ``src`` (a folder, or a folder holding one ``.zip``) and write
    ``dataset.json``."""
    from biounet import __version__
    from biounet.io.atomic import write_json_atomic

    archives = [src] if src.is_file() else []
    if spec.layout == "dsb2018" and src.is_dir() and _find_dsb_root(src, required=False) is None:
        archives = sorted(src.glob("*.zip"))[:1]  # e.g. raw/<commit>.zip after a download
    scratch = out / ".extract"
    try:
        if archives:
            shutil.rmtree(scratch, ignore_errors=True)
            _extract_zip(archives[0], scratch)
            src = scratch
        if spec.layout == "isbi2012":
            summary = _lay_out_isbi(spec, src, out, records)
        elif spec.layout == "dsb2018":
            summary = _lay_out_dsb(
                src, out, records, limit=limit, fluorescence_only=fluorescence_only, progress=progress
            )
        else:
            raise DataError(f"dataset {spec.name!r}: unknown layout {spec.layout!r}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_json_atomic(
        out / "dataset.json",
        {
            "dataset": spec.name,
            "title": spec.title,
            "source": source,
            "images": "images/",
            "masks": "masks/",
            **summary,
            "label_encoding": spec.label_encoding,
            "citation": spec.citation,
            "licence": spec.licence,
            "homepage": spec.homepage,
            "files": records,
            "biounet_version": __version__,
        },
    )
    return out


def record(path: str, sha256: str, verified: bool) -> dict[str, Any]:
    return {"path": path, "sha256": sha256, "verified": verified}


def _extract_zip(archive: Path, into: Path) -> None:
    """Extract ``archive`` into ``into``, refusing absolute paths and ``..`` (zip slip)."""
    import zipfile

    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = Path(member.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise DataError(f"{archive}: unsafe path {member.filename!r} in the archive")
            bundle.extractall(into)
    except zipfile.BadZipFile as error:
        raise DataError(f"{archive}: not a valid zip archive ({error})") from None


#: At most this many checksum mismatches are named in the error (the count says how many there were).
MAX_LISTED_MISMATCHES = 10


def verify_all(files: Iterable[tuple[Path, str | None]]) -> None:
    """Hash every file that has an expected SHA-256 and raise one :class:`DataError` naming every mismatch.

    Run before anything is laid out, so that a damaged copy is reported whole, not one file per attempt.
    """
    mismatched = []  # (path, expected, actual)
    for path, expected in files:
        actual = sha256_file(path) if expected is not None else None
        if actual != expected:
            mismatched.append((path, expected, actual))
    if len(mismatched) == 1:
        path, expected, actual = mismatched[0]
        raise DataError(f"{path}: SHA-256 mismatch (expected {expected}, got {actual}); not the published file")
    if mismatched:
        shown = "; ".join(f"{path}: SHA-256 mismatch" for path, _, _ in mismatched[:MAX_LISTED_MISMATCHES])
        more = len(mismatched) - MAX_LISTED_MISMATCHES
        raise DataError(
            f"{len(mismatched)} files are not the published ones (nothing was laid out): {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )


class _Verifier:
    """Checks source files against the registry's checksums and a ``SHA256SUMS`` beside them."""

    def __init__(self, spec: Dataset, root: Path, records: list[dict[str, Any]]) -> None:
        self.registry = {f.path: f.sha256 for f in spec.files if f.sha256}
        self.sums = {}
        for folder in (root, *root.parents[:2]):
            if (folder / "SHA256SUMS").is_file():
                prefix = root.relative_to(folder).as_posix()
                for path, digest in read_sha256sums(folder / "SHA256SUMS").items():
                    if prefix == "." or path.startswith(prefix + "/"):
                        self.sums[path if prefix == "." else path[len(prefix) + 1 :]] = digest
                break
        self.records = records
        self.seen = {r["path"] for r in records}

    def expected(self, relative: str) -> str | None:
        """The published SHA-256 of ``relative`` (registry first, then ``SHA256SUMS``), if known."""
        return self.registry.get(relative) or self.sums.get(relative)

    def read(self, path: Path, relative: str) -> bytes:
        """The bytes of ``path``, verified when a checksum for ``relative`` is known."""
        data = path.read_bytes()
        if relative in self.seen:  # downloaded: already verified
            return data
        expected = self.expected(relative)
        actual = hashlib.sha256(data).hexdigest()
        if expected is not None and actual != expected:
            raise DataError(f"{path}: SHA-256 mismatch (expected {expected}, got {actual}); not the published file")
        self.records.append(record(relative, actual, expected is not None))
        return data


def _numbered(folder: Path, suffixes: Iterable[str] = (".png", ".tif", ".tiff")) -> dict[int, Path]:
    """``{N: path}`` for the files ``N.<suffix>`` in ``folder`` (N a non-negative integer)."""
    if not folder.is_dir():
        return {}
    return {int(p.stem): p for p in folder.iterdir() if p.stem.isdigit() and p.suffix.lower() in suffixes}


def _lay_out_isbi(spec: Dataset, src: Path, out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """ISBI 2012: per-slice PNGs (``train/image``, ``train/label``, ``test``) or the challenge's
    multi-page TIFFs -> ``images/NN.png``, ``masks/NN.png``, ``test/images/NN.png``."""
    from biounet.io.atomic import write_bytes_atomic

    roots = [src, src / "data" / "membrane", src / "membrane"]
    root = next((r for r in roots if (r / "train" / "image").is_dir() and (r / "train" / "label").is_dir()), None)
    if root is None:
        volumes = next((r for r in roots if (r / "train-volume.tif").is_file()), None)
        if volumes is not None:
            return _lay_out_isbi_volumes(volumes, out, records)
        raise DataError(
            f"{src}: no ISBI 2012 data found (expected train/image/N.png + train/label/N.png, "
            "or train-volume.tif + train-labels.tif)"
        )
    verify = _Verifier(spec, root, records)
    images, labels = _numbered(root / "train" / "image"), _numbered(root / "train" / "label")
    pairs = sorted(set(images) & set(labels))
    if not pairs:
        raise DataError(f"{root / 'train'}: no image with a label of the same number")
    for n in sorted(set(images) ^ set(labels)):
        log.warning("ISBI slice %d has an image or a label but not both; skipped", n)
    tests = _numbered(root / "test")
    listed = [(images[n], f"train/image/{images[n].name}") for n in pairs]
    listed += [(labels[n], f"train/label/{labels[n].name}") for n in pairs]
    listed += [(path, f"test/{path.name}") for path in tests.values()]
    verify_all((path, verify.expected(relative)) for path, relative in listed if relative not in verify.seen)
    for n in pairs:
        for kind, table, folder in (("image", images, "images"), ("label", labels, "masks")):
            path = table[n]
            data = verify.read(path, f"train/{kind}/{path.name}")
            write_bytes_atomic(out / folder / f"{n:02d}{path.suffix.lower()}", data)
        _check_binary_label(out / "masks" / f"{n:02d}{labels[n].suffix.lower()}")
    for n, path in sorted(tests.items()):
        data = verify.read(path, f"test/{path.name}")
        write_bytes_atomic(out / "test" / "images" / f"{n:02d}{path.suffix.lower()}", data)
    return {"pairs": len(pairs), "slices": pairs, "test_images": len(tests)}


def _lay_out_isbi_volumes(root: Path, out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The challenge's original ``train-volume.tif``/``train-labels.tif`` (30 pages) -> per-slice PNGs."""
    from biounet.io.images import read_image, write_image

    volume = read_image(root / "train-volume.tif")
    if not (root / "train-labels.tif").is_file():
        raise DataError(f"{root / 'train-labels.tif'}: no such file (needed beside train-volume.tif)")
    labels = read_image(root / "train-labels.tif")
    if volume.shape != labels.shape or volume.ndim != 3:
        raise DataError(f"{root}: train-volume.tif {volume.shape} and train-labels.tif {labels.shape} differ")
    for n in range(volume.shape[0]):
        write_image(out / "images" / f"{n:02d}.png", volume[n].astype(np.uint8))
        write_image(out / "masks" / f"{n:02d}.png", labels[n].astype(np.uint8))
        _check_binary_label(out / "masks" / f"{n:02d}.png")
    tests = 0
    if (root / "test-volume.tif").is_file():
        test = read_image(root / "test-volume.tif")
        for n in range(test.shape[0]):
            write_image(out / "test" / "images" / f"{n:02d}.png", test[n].astype(np.uint8))
        tests = test.shape[0]
    for name in ("train-volume.tif", "train-labels.tif"):
        records.append(record(name, sha256_file(root / name), False))
    return {"pairs": volume.shape[0], "slices": list(range(volume.shape[0])), "test_images": tests}


def _check_binary_label(path: Path) -> None:
    from biounet.io.images import read_image

    values = np.unique(read_image(path))
    if not set(values.tolist()) <= {0, 255}:
        raise DataError(f"{path}: ISBI labels must be 0 (membrane) / 255 (interior), found {values[:8].tolist()}")


def _find_dsb_root(src: Path, *, required: bool = True) -> Path | None:
    """The folder whose sub-folders are ``<id>/images`` + ``<id>/masks`` (``stage1_train`` or ``src``)."""
    candidates = [src / "stage1_train", *sorted(src.glob("*/stage1_train")), src]
    for folder in candidates:
        if folder.is_dir() and any((child / "images").is_dir() for child in folder.iterdir() if child.is_dir()):
            return folder
    if not required:
        return None
    raise DataError(f"{src}: no DSB 2018 data found (expected stage1_train/<id>/images and <id>/masks)")


def _lay_out_dsb(
    src: Path,
    out: Path,
    records: list[dict[str, Any]],
    *,
    limit: int | None,
    fluorescence_only: bool,
    progress: bool,
) -> dict[str, Any]:
    """DSB 2018: ``<id>/images/<id>.png`` + ``<id>/masks/*.png`` -> ``images/<id>.tif`` (channel 0,
    uint8) and ``masks/<id>.tif`` (uint16 instance labels, masks enumerated in file-name order).

    Ids are taken in plain string order (``limit`` keeps the first ones); a folder without an image or
    without masks is skipped with a warning rather than failing a conversion of hundreds of images.
    """
    from tqdm import tqdm

    from biounet.io.images import read_image, write_image

    root = _find_dsb_root(src)
    assert root is not None
    sums_owner = next((f for f in (root, *root.parents[:2]) if (f / "SHA256SUMS").is_file()), None)
    sums = read_sha256sums(sums_owner / "SHA256SUMS") if sums_owner else {}
    entries = sorted(scan_dsb(root), key=lambda entry: entry[0])
    if sums_owner is not None:
        files = [path for _, image_files, mask_files in entries for path in (*image_files[:1], *mask_files)]
        verify_all((path, sums.get(path.relative_to(sums_owner).as_posix())) for path in files)
    written, skipped, verified = [], 0, 0
    for image_id, image_files, mask_files in tqdm(entries, desc="dsb2018: converting", unit="image",
                                                  disable=not progress):
        if limit is not None and len(written) >= limit:
            break
        if not image_files or not mask_files:
            log.warning("%s: no image or no masks; skipped", root / image_id)
            skipped += 1
            continue
        if sums_owner is not None:  # checked by verify_all above: count them, do not hash them again
            verified += sum(path.relative_to(sums_owner).as_posix() in sums for path in (image_files[0], *mask_files))
        rgba = read_image(image_files[0])
        if fluorescence_only and not _is_fluorescence(rgba):
            skipped += 1
            continue
        image = rgba[..., 0] if rgba.ndim == 3 else rgba
        if len(mask_files) > np.iinfo(np.uint16).max:
            raise DataError(f"{mask_files[0].parent}: {len(mask_files)} masks do not fit a uint16 label map")
        labels = dsb_instance_map(mask_files, image.shape[:2]).astype(np.uint16)
        write_image(out / "images" / f"{image_id}.tif", image.astype(np.uint8))
        write_image(out / "masks" / f"{image_id}.tif", labels)
        written.append(image_id)
    if not written:
        raise DataError(f"{root}: no DSB image was converted (all {len(entries)} skipped)")
    records.append({"path": "stage1_train", "images": len(written), "files_verified": verified})
    return {"pairs": len(written), "skipped": skipped}


def _is_fluorescence(rgba: np.ndarray) -> bool:
    """Greyscale (R = G = B) with a dark background (mean < 100): the DSB fluorescence images."""
    if rgba.ndim == 3:
        rgb = rgba[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            return False
        rgba = rgb[..., 0]
    return float(rgba.mean()) < 100.0
