"""The paper's weight map (eq. 2): class balance plus the border term (biounet.losses.weight_map)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

from biounet.errors import DataError
from biounet.io.images import read_image
from biounet.losses import (
    WeightMapCache,
    border_cutoff,
    border_weights,
    border_weights_bruteforce,
    cell_colouring,
    class_balance_weights,
    unet_weight_map,
)
from biounet.losses import weight_map as weight_map_module


def random_discs(shape, count, rng, radius=(4.0, 9.0), gap=(1.0, 3.0)) -> np.ndarray:
    """Instance map of up to ``count`` non-overlapping balls (2D discs or 3D balls), many nearly touching."""
    grid = np.indices(shape, dtype=np.float64)
    instances = np.zeros(shape, dtype=np.int32)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    for _ in range(count * 50):
        if len(centres) == count:
            break
        centre, r = rng.uniform(0, shape), rng.uniform(*radius)
        if centres:
            clearance = np.sqrt(((np.array(centres) - centre) ** 2).sum(axis=1)) - np.array(radii) - r
            if clearance.min() < rng.uniform(*gap):
                continue
        centres.append(centre)
        radii.append(r)
        inside = ((grid - centre.reshape((-1,) + (1,) * len(shape))) ** 2).sum(axis=0) <= r * r
        instances[inside & (instances == 0)] = len(centres)
    return instances


def test_class_balance_weights_equalise_the_classes():
    target = np.array([0, 0, 0, 1, -1, 1, 0, 0, 5])  # -1 and 5 are not classes of 3
    weights = class_balance_weights(target, num_classes=3)
    assert weights.dtype == np.float32 and weights.shape == (3,)
    assert weights[2] == 0  # absent class
    assert weights[1] / weights[0] == pytest.approx(5 / 2)
    valid = target[(target >= 0) & (target < 3)]
    assert weights[valid].mean() == pytest.approx(1.0)
    assert np.array_equal(class_balance_weights(np.zeros((4, 4), int), 2), [1.0, 0.0])


def test_border_weight_is_high_between_touching_cells_and_zero_far_and_inside():
    instances = np.zeros((60, 120), dtype=np.int32)
    yy, xx = np.indices(instances.shape)
    instances[(yy - 30) ** 2 + (xx - 30) ** 2 <= 15**2] = 1  # disc ending at x = 45
    instances[(yy - 30) ** 2 + (xx - 62) ** 2 <= 15**2] = 2  # disc starting at x = 47: a 1 px gap at x = 46
    weights = border_weights(instances, w0=10.0, sigma=5.0)
    assert weights[30, 46] == pytest.approx(10.0 * math.exp(-((1 + 1) ** 2) / 50.0), rel=1e-6)  # ~ w0
    assert weights[30, 46] > 9.0
    assert weights[instances > 0].max() == 0.0
    assert weights[:, 110:].max() < 1e-3  # far from the second cell
    assert weights[5, 46] < weights[20, 46] < weights[30, 46]  # falls off away from the contact


def test_unet_weight_map_is_class_term_plus_border_term():
    instances = np.zeros((40, 80), dtype=np.int32)
    instances[10:30, 10:38] = 1
    instances[10:30, 40:70] = 2
    target = (instances > 0).astype(np.int64)
    weights = unet_weight_map(target, instances, num_classes=2)
    class_weights = class_balance_weights(target, 2)
    # column 39 lies in the 2 px gap: 2 px from cell 1 (ends at 37), 1 px from cell 2 (starts at 40)
    assert weights[20, 39] == pytest.approx(class_weights[0] + 10.0 * math.exp(-((2 + 1) ** 2) / 50), rel=1e-5)
    assert weights[20, 20] == pytest.approx(class_weights[1])
    assert weights[0, 0] == pytest.approx(class_weights[0], abs=1e-4)
    ignored = unet_weight_map(np.where(target == 0, -1, target), instances, num_classes=2)
    assert ignored[0, 0] < 1e-4  # ignored pixels get no class weight
    with pytest.raises(DataError, match="shape"):
        unet_weight_map(target[:-1], instances, 2)


def test_fast_border_weights_match_brute_force_2d(rng):
    instances = random_discs((160, 160), 60, rng)
    assert instances.max() >= 30
    fast = border_weights(instances)
    exact = border_weights_bruteforce(instances)
    assert fast.dtype == np.float32 and fast.shape == instances.shape
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-5)
    assert fast.max() > 5.0  # there are touching cells, the test is not trivial


def test_fast_border_weights_match_brute_force_3d_anisotropic(rng):
    instances = random_discs((12, 48, 48), 40, rng, radius=(3.0, 6.0), gap=(0.5, 2.0))
    assert instances.max() >= 30
    sampling = (2.0, 1.0, 1.0)
    fast = border_weights(instances, w0=10.0, sigma=3.0, sampling=sampling)
    exact = border_weights_bruteforce(instances, w0=10.0, sigma=3.0, sampling=sampling)
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-5)
    assert fast.max() > 3.0
    assert not np.allclose(exact, border_weights_bruteforce(instances, w0=10.0, sigma=3.0))  # sampling matters


def test_number_of_distance_transforms_does_not_grow_with_the_cells(rng, monkeypatch):
    calls = []
    original = ndi.distance_transform_edt

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(weight_map_module.ndi, "distance_transform_edt", counting)
    small = random_discs((200, 200), 40, rng)
    large = np.zeros((400, 400), dtype=np.int32)
    for i, (y, x) in enumerate([(0, 0), (0, 200), (200, 0), (200, 200)]):
        large[y : y + 200, x : x + 200] = np.where(small > 0, small + i * 1000, 0)
    border_weights(small)
    small_calls = len(calls)
    calls.clear()
    border_weights(large)
    assert small_calls < small.max() / 2
    assert len(calls) <= small_calls + 3  # four times the cells, about as many transforms


def test_cells_closer_than_the_cutoff_get_different_colours(rng):
    instances = random_discs((120, 120), 40, rng)
    cutoff = border_cutoff(5.0)
    colours = cell_colouring(instances, cutoff)
    ids = np.unique(instances[instances > 0])
    assert np.all(colours[ids] >= 0) and colours[0] == -1
    assert colours.max() + 1 < ids.size / 2  # far fewer colours than cells
    for cell in ids:
        distance = ndi.distance_transform_edt(instances != cell)
        near = np.unique(instances[(distance <= cutoff) & (instances > 0) & (instances != cell)])
        assert not np.isin(colours[near], colours[cell]).any()


def test_border_weights_edge_cases():
    assert not border_weights(np.zeros((10, 10), int)).any()
    one = np.zeros((10, 10), int)
    one[2:5, 2:5] = 7
    assert not border_weights(one).any()  # a single cell has no second-nearest cell
    with pytest.raises(DataError, match="negative"):
        border_weights(-one)
    with pytest.raises(DataError, match="integer"):
        border_weights(one.astype(float))
    assert border_cutoff(5.0, 1e-6) == pytest.approx(5.0 * math.sqrt(2 * math.log(1e6)))


def test_weight_map_cache_computes_once_per_key(monkeypatch):
    calls = []
    original = weight_map_module.unet_weight_map
    monkeypatch.setattr(weight_map_module, "unet_weight_map", lambda *a: calls.append(1) or original(*a))
    instances = np.zeros((20, 20), int)
    instances[2:8, 2:8], instances[2:8, 9:15] = 1, 2
    target = (instances > 0).astype(int)
    cache = WeightMapCache(num_classes=2)
    first = cache.get("a.png", target, instances)
    second = cache.get("a.png", target, instances)
    cache.get("b.png", target, instances)
    assert first is second and len(calls) == 2 and len(cache) == 2 and "a.png" in cache
    np.testing.assert_array_equal(first, unet_weight_map(target, instances, 2))


def test_fast_border_weights_match_brute_force_on_a_real_dsb_image(shared_data: Path):
    folder = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    sample = "c53326fe49fc26b7fe602b9d8c0c2da2cb157690b44c2b9351a93f8d9bd8043d"  # 101 nuclei
    masks = sorted((folder / sample / "masks").glob("*.png"))
    instances = np.zeros(read_image(masks[0]).shape[-2:], dtype=np.int32)
    for i, mask in enumerate(masks, start=1):
        instances[np.squeeze(read_image(mask)) > 0] = i
    assert len(np.unique(instances)) - 1 >= 90
    fast = border_weights(instances)
    np.testing.assert_allclose(fast, border_weights_bruteforce(instances), rtol=0, atol=1e-5)
    assert fast.max() > 5.0


def test_without_class_balance_the_class_term_is_one():
    from biounet.losses.weight_map import WeightMapCache, border_weights, unet_weight_map

    target = np.zeros((40, 40), np.uint8)
    target[5:20, 5:19] = 1
    target[5:20, 21:35] = 1
    instances = np.zeros((40, 40), np.int32)
    instances[5:20, 5:19] = 1
    instances[5:20, 21:35] = 2
    plain = unet_weight_map(target, instances, 2, w0=10, sigma=5, class_balance=False)
    assert plain.dtype == np.float32
    assert np.array_equal(plain, np.float32(1.0) + border_weights(instances, 10, 5))
    cached = WeightMapCache(2, 10, 5, class_balance=False).get("a", target, instances)
    assert np.array_equal(cached, plain)
    assert not np.array_equal(unet_weight_map(target, instances, 2, w0=10, sigma=5), plain)
