"""HTTP download of one file: resumable, retried, checked against a SHA-256, renamed only when verified.

Data stream into ``<file>.part``; a later call resumes it with an HTTP ``Range`` request (and restarts if
the server ignores it), so an interrupted multi-MB download is not fetched again from byte 0.  Only a
file whose SHA-256 matches is renamed to its final name, so a partial or corrupt file never carries it.
Also the ``sha256sum``-file parser and the checksum check the dataset converters use on local copies.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from biounet.errors import BiounetError
from biounet.io.hashing import sha256_file

log = logging.getLogger(__name__)

#: Bytes read from the network per write (1 MiB): progress updates often enough, few system calls.
CHUNK_BYTES = 1 << 20


class DownloadError(BiounetError, OSError):
    """A download failed (network, HTTP status) or its content does not match the published checksum."""


# ------------------------------------------------------------------------------------------- checksums


def read_sha256sums(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``sha256sum`` output file into ``{relative path: hex digest}``."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r"^([0-9a-fA-F]{64}) [ *](.+)$", line.strip())
        if match:
            sums[match.group(2).strip()] = match.group(1).lower()
    return sums


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
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256.lower()):
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
                if sha256 is not None and sha256_file(part) == sha256.lower():
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
    actual = sha256_file(part)
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
