"""Mirroring by index arithmetic equals np.pad(mode="reflect") and reads only a tile-sized box."""

from __future__ import annotations

import numpy as np
import pytest

from biounet.tiling import read_mirrored, reflect_indices


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("pads", [(0, 0), (1, 0), (3, 20), (17, 4), (40, 41)])
def test_reflect_indices_match_numpy_reflect_padding(size: int, pads: tuple[int, int]) -> None:
    before, after = pads
    expected = np.pad(np.arange(size), (before, after), mode="reflect")
    assert np.array_equal(reflect_indices(np.arange(-before, size + after), size), expected)


def test_reflect_indices_rejects_empty_axis() -> None:
    with pytest.raises(ValueError):
        reflect_indices(np.arange(3), 0)


class RecordingArray:
    """An array that records every key it is read with (to check reads stay tile-sized)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.keys = data, []
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key):
        self.keys.append(key)
        return self.data[key]


@pytest.mark.parametrize(
    ("shape", "start", "box"),
    [
        ((13, 17), (-5, -9), (20, 30)),  # beyond both borders, larger than the image
        ((13, 17), (4, 3), (5, 6)),  # inside
        ((1, 1), (-92, -92), (204, 204)),  # a 1-pixel image
        ((6, 40, 33), (-3, 30, -40), (10, 20, 50)),  # 3D, far outside in x
    ],
)
def test_read_mirrored_equals_a_crop_of_the_padded_image(shape, start, box, rng) -> None:
    image = rng.random((2, *shape)).astype(np.float32)
    pad = 200
    padded = np.pad(image, [(0, 0)] + [(pad, pad)] * len(shape), mode="reflect")
    expected = padded[(slice(None),) + tuple(slice(s + pad, s + pad + n) for s, n in zip(start, box))]
    source = RecordingArray(image)
    tile = read_mirrored(source, start, box, leading=(slice(None),))
    assert tile.shape == (2, *box)
    assert np.array_equal(tile, expected)
    (key,) = source.keys  # one read, of a box no larger than the tile or the image
    for s, n, size in zip(key[1:], box, shape):
        assert s.stop - s.start <= min(n, size)


def test_read_mirrored_with_stack_index(rng) -> None:
    stack = rng.random((1, 4, 9, 8))
    tile = read_mirrored(stack, (-2, 5), (6, 6), leading=(slice(None), 2))
    expected = np.pad(stack[:, 2], [(0, 0), (2, 0), (0, 3)], mode="reflect")[:, :6, 5:11]
    assert np.array_equal(tile, expected)
