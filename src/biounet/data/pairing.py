"""Pairing two sets of image files by file-name stem: one rule for training data and for evaluation.

Training pairs images with masks (:func:`biounet.data.readers.pair_files`: mask endings such as
``_mask``, and trailing numbers as a fallback); ``biounet evaluate`` pairs predictions with ground
truth (:mod:`biounet.evaluation.pairing`: the suffixes ``biounet predict`` adds are dropped).  Both
name each file by a stem, refuse two files of one stem, and then call :func:`pair_by_stem`.

This module is in :mod:`biounet.data` (and needs only :mod:`biounet.io`) so that imports stay one-way:
evaluation imports data, data never imports evaluation.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biounet.errors import DataError


@dataclass(frozen=True)
class StemPairs:
    """Files of two sets paired by stem, and the files left without a partner.

    Attributes:
        pairs: ``(stem, first_path, second_path)`` in the order of the first set.
        unmatched_first, unmatched_second: files of each set whose stem the other set lacks, in set order.
    """

    pairs: list[tuple[str, Path, Path]]
    unmatched_first: list[Path] = field(default_factory=list)
    unmatched_second: list[Path] = field(default_factory=list)


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``2`` before ``10`` (case-insensitive)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def file_stem(path: Path) -> str:
    """Name without the image suffix (``a.ome.tif`` -> ``a``)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def strip_ending(stem: str, endings: Iterable[str], *, ignore_case: bool = False) -> str | None:
    """``stem`` without the first of ``endings`` it ends in (``None`` if none, or nothing would be left)."""
    compared = stem.lower() if ignore_case else stem
    for ending in endings:
        if compared.endswith(ending) and len(stem) > len(ending):
            return stem[: -len(ending)]
    return None


def index_by_stem(files: Iterable[Path], stem: Callable[[Path], str]) -> dict[str, Path]:
    """``{stem(path): path}`` in the order of ``files``; DataError when two files share a stem."""
    found: dict[str, Path] = {}
    for path in files:
        key = stem(path)
        if key in found:
            raise DataError(f"{path}: two files named {key!r} ({found[key].name} and {path.name}); keep one")
        found[key] = path
    return found


def pair_by_stem(first: Mapping[str, Path], second: Mapping[str, Path]) -> StemPairs:
    """Pair the files of two ``{stem: path}`` maps that share a stem.

    ``second`` may hold one path under several stems (a mask under ``a_mask`` and ``a``); a path counts
    as unmatched only when none of its stems found a partner.  Orders are kept, not re-sorted, so each
    caller decides its own (natural order of names, of stems, ...).
    """
    pairs = [(stem, path, second[stem]) for stem, path in first.items() if stem in second]
    used = {partner for _, _, partner in pairs}
    return StemPairs(
        pairs=pairs,
        unmatched_first=[path for stem, path in first.items() if stem not in second],
        unmatched_second=list(dict.fromkeys(path for path in second.values() if path not in used)),
    )


def trailing_number(stem: str) -> int | None:
    """The number a name ends in (``labels00000007`` -> 7), or None."""
    match = re.search(r"(\d+)$", stem)
    return int(match.group(1)) if match else None


def pair_by_number(first: Mapping[str, Path], second: Iterable[Path]) -> list[tuple[str, Path, Path]] | None:
    """Pairs by the unique number every name ends in, in number order; None unless both sets match exactly."""
    second = list(second)
    first_numbers = {trailing_number(stem): path for stem, path in first.items()}
    second_numbers = {trailing_number(file_stem(path)): path for path in second}
    if (
        None in first_numbers
        or None in second_numbers
        or len(first_numbers) != len(first)
        or len(second_numbers) != len(second)
        or set(first_numbers) != set(second_numbers)
    ):
        return None
    return [(file_stem(first_numbers[n]), first_numbers[n], second_numbers[n]) for n in sorted(first_numbers)]


__all__ = [
    "StemPairs",
    "file_stem",
    "index_by_stem",
    "natural_key",
    "pair_by_number",
    "pair_by_stem",
    "strip_ending",
    "trailing_number",
]
