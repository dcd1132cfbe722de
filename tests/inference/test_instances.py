"""Instances from probabilities: touching cells are separated, every cell keeps its pixels."""

from __future__ import annotations

import numpy as np

from biounet.inference import instances_from_probabilities


def touching_discs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two overlapping discs (centres 18 px apart, radius 10) as 3-class probabilities, and their masks."""
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 < 100
    b = (yy - 20) ** 2 + (xx - 38) ** 2 < 100
    foreground = a | b
    interior = ((yy - 20) ** 2 + (xx - 20) ** 2 < 49) | ((yy - 20) ** 2 + (xx - 38) ** 2 < 49)
    probs = np.zeros((3, 40, 60), np.float32)  # background, interior, boundary
    probs[0] = ~foreground
    probs[1] = interior * 0.9
    probs[2] = foreground & ~interior
    probs[2][interior] = 0.1
    return probs, a, b


def test_touching_discs_become_two_instances() -> None:
    probs, a, b = touching_discs()
    assert np.count_nonzero(a & b) > 0  # they really touch
    labels = instances_from_probabilities(probs, interior_class=1, foreground_classes=[1, 2])
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.array_equal(labels > 0, a | b)  # grown back over the whole foreground
    left, right = labels[20, 20], labels[20, 38]
    assert left != right and left > 0 and right > 0
    assert np.mean(labels[a & ~b] == left) > 0.95 and np.mean(labels[b & ~a] == right) > 0.95


def test_foreground_everywhere_labels_every_pixel() -> None:
    """ISBI 2012 style: foreground = all classes, so the cells fill the image (membranes included)."""
    probs, _, _ = touching_discs()
    labels = instances_from_probabilities(probs, interior_class=1, foreground_classes=[0, 1, 2])
    assert np.all(labels > 0)
    assert len(np.unique(labels)) == 2


def test_small_seeds_are_dropped_and_unseeded_cells_kept() -> None:
    probs = np.zeros((2, 30, 30), np.float32)  # background, interior
    probs[0] = 1.0
    probs[:, 2:4, 2:4] = [[[0.0]], [[1.0]]]  # a 4-pixel seed: too small
    probs[:, 10:20, 10:20] = [[[0.0]], [[1.0]]]  # a real cell
    probs[:, 24:28, 24:28] = [[[0.45]], [[0.55]]]  # foreground but below the seed threshold
    labels = instances_from_probabilities(probs, 1, [1], threshold=0.6, min_size=8)
    assert labels[3, 3] == 0
    assert labels[15, 15] > 0 and labels[25, 25] > 0 and labels[15, 15] != labels[25, 25]
    assert len(np.unique(labels)) == 3


def joined_interiors(gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(3, 40, 70)`` of one interior blob: two discs of radius 9 whose centres are ``gap`` px apart
    (a neck where they meet when ``gap`` < 18: a missed boundary), and the two discs' masks stacked."""
    yy, xx = np.mgrid[:40, :70]
    discs = np.stack([(yy - 20) ** 2 + (xx - 20) ** 2 < 81, (yy - 20) ** 2 + (xx - 20 - gap) ** 2 < 81])
    probs = np.zeros((3, 40, 70), np.float32)
    probs[1] = discs.any(axis=0) * 0.9
    probs[0] = 1 - probs[1]
    return probs, discs


def test_h_maxima_seeds_split_two_joined_nuclei_where_threshold_seeds_do_not() -> None:
    probs, discs = joined_interiors(gap=15)
    threshold_seeds = instances_from_probabilities(probs, 1, [1, 2])
    assert len(np.unique(threshold_seeds)) == 2  # one interior component: one nucleus
    labels = instances_from_probabilities(probs, 1, [1, 2], seed_height=0.2)
    assert len(np.unique(labels)) == 3
    left, right = labels[20, 20], labels[20, 35]
    assert left != right and left > 0 and right > 0
    assert np.mean(labels[discs[0] & ~discs[1]] == left) > 0.95
    assert np.mean(labels[discs[1] & ~discs[0]] == right) > 0.95


def test_h_maxima_seeds_do_not_split_one_elongated_nucleus() -> None:
    yy, xx = np.mgrid[:40, :90]
    ellipse = ((yy - 20) / 8.0) ** 2 + ((xx - 45) / 35.0) ** 2 < 1  # 70 x 16 px, no neck
    probs = np.zeros((3, 40, 90), np.float32)
    probs[1] = ellipse * 0.9
    probs[0] = 1 - probs[1]
    labels = instances_from_probabilities(probs, 1, [1, 2], seed_height=0.2)
    assert len(np.unique(labels)) == 2 and np.array_equal(labels > 0, ellipse)


def test_a_distance_output_gives_the_seeds_and_the_landscape() -> None:
    """With a distance channel the seeds are its h-maxima: two peaks split one interior blob, one peak does not."""
    probs, discs = joined_interiors(gap=15)
    yy, xx = np.mgrid[:40, :70]
    two_peaks = np.maximum(*(np.clip(1 - np.hypot(yy - 20, xx - c) / 9, 0, 1) for c in (20, 35)))
    one_peak = np.clip(1 - np.hypot(yy - 20, xx - 27.5) / 12, 0, 1)
    for distance, count in ((two_peaks, 2), (one_peak, 1)):
        with_distance = np.concatenate([probs, distance[None].astype(np.float32)])
        labels = instances_from_probabilities(with_distance, 1, [1, 2], seed_height=0.2, distance_channel=3)
        assert len(np.unique(labels)) == count + 1
        assert np.array_equal(labels > 0, discs.any(axis=0))


def test_predict_uses_the_seed_settings_saved_in_the_model(rng, small_unet, tmp_path) -> None:
    """Training saves the seed threshold, min size and seed height that validation chose in the model's pipeline
    target; ``predict`` uses them unless the caller gives its own, and the sidecar records what was used."""
    import json

    from biounet import predict
    from biounet.io.checkpoint import load_bundle, save_model

    model = small_unet(depth=2, num_classes=3)
    image = rng.random((64, 64)).astype(np.float32)
    target = {"kind": "instances", "interior_class": 1, "foreground_classes": [1, 2]}
    probs = predict(model, image, precision="fp32", progress=False, pipeline={"target": target})
    chosen = (round(float(np.quantile(probs[1], 0.7)), 3), 3)  # a threshold with seeds, unlike 0.5 here
    save_model(model, tmp_path / "run", pipeline={"target": {**target, "threshold": chosen[0], "min_size": chosen[1]}})
    bundle = load_bundle(tmp_path / "run")

    expected = instances_from_probabilities(probs, 1, [1, 2], threshold=chosen[0], min_size=chosen[1])
    plain = instances_from_probabilities(probs, 1, [1, 2], threshold=0.5, min_size=8)
    assert not np.array_equal(expected, plain)
    saved = predict(bundle, image, output="instances", precision="fp32", progress=False)
    assert np.array_equal(saved, expected)
    given = predict(bundle, image, output="instances", precision="fp32", progress=False, threshold=0.5, min_size=8)
    assert np.array_equal(given, plain)
    predict(bundle, image, output="instances", precision="fp32", progress=False, out=tmp_path / "cells.tif")
    settings = json.loads((tmp_path / "cells.tif.json").read_text())["settings"]
    assert (settings["threshold"], settings["min_size"], settings["seed_height"]) == (*chosen, 0.0)

    low, median = 0.05, round(float(np.quantile(probs[1], 0.5)), 3)  # larger seeds, some with two tops
    save_model(model, tmp_path / "run-h", pipeline={"target": {**target, "threshold": median, "min_size": 3,
                                                               "seed_height": low}})
    split = instances_from_probabilities(probs, 1, [1, 2], threshold=median, min_size=3, seed_height=low)
    assert split.max() > instances_from_probabilities(probs, 1, [1, 2], threshold=median, min_size=3).max()
    bundle = load_bundle(tmp_path / "run-h")
    assert np.array_equal(predict(bundle, image, output="instances", precision="fp32", progress=False), split)
    predict(bundle, image, output="instances", precision="fp32", progress=False, out=tmp_path / "cells-h.tif")
    assert json.loads((tmp_path / "cells-h.tif.json").read_text())["settings"]["seed_height"] == low


def test_the_foreground_threshold_places_the_outlines() -> None:
    """Seeds grow over the pixels whose foreground probability exceeds the foreground threshold: a nucleus whose
    probability falls off from 1 at radius 6 px to 0 at 14 px is drawn to radius 10 at 0.5, 8.4 at 0.7 and 11.6
    at 0.3, one object each time."""
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    foreground = np.clip((14 - radius) / 8, 0, 1).astype(np.float32)
    probs = np.zeros((3, 40, 40), np.float32)
    probs[1] = np.where(radius < 6, 0.9, 0.0)
    probs[2] = foreground - probs[1]
    probs[0] = 1 - foreground
    for threshold, reach in ((0.5, 10.0), (0.7, 8.4), (0.3, 11.6)):
        labels = instances_from_probabilities(probs, 1, [1, 2], foreground_threshold=threshold)
        assert np.array_equal(labels > 0, radius < reach - 1e-6) and labels.max() == 1


def test_predict_uses_the_foreground_threshold_saved_in_the_model(rng, small_unet, tmp_path) -> None:
    """A model's foreground threshold (chosen by validation) draws its instances unless the caller gives one; a
    model saved without one (pipeline schema 4 and older) uses 0.5; a threshold outside (0, 1) is refused naming
    the model."""
    import json

    import pytest

    from biounet import predict
    from biounet.errors import DataError
    from biounet.inference.instances import instance_target
    from biounet.io.checkpoint import load_bundle, save_model

    model = small_unet(depth=2, num_classes=3)
    image = rng.random((64, 64)).astype(np.float32)
    target = {"kind": "instances", "interior_class": 1, "foreground_classes": [1, 2], "threshold": 0.3,
              "min_size": 3}
    probs = predict(model, image, precision="fp32", progress=False, pipeline={"target": target})
    chosen = round(float(np.quantile(probs[1] + probs[2], 0.3)), 3)
    save_model(model, tmp_path / "old", pipeline={"target": target})
    save_model(model, tmp_path / "run", pipeline={"target": {**target, "foreground_threshold": chosen}})
    old, bundle = load_bundle(tmp_path / "old"), load_bundle(tmp_path / "run")

    expected = instances_from_probabilities(probs, 1, [1, 2], 0.3, 3, foreground_threshold=chosen)
    plain = instances_from_probabilities(probs, 1, [1, 2], 0.3, 3)
    assert not np.array_equal(expected > 0, plain > 0)
    assert instance_target(old).foreground_threshold == 0.5
    assert np.array_equal(predict(old, image, output="instances", precision="fp32", progress=False), plain)
    assert np.array_equal(predict(bundle, image, output="instances", precision="fp32", progress=False), expected)
    given = predict(bundle, image, output="instances", precision="fp32", progress=False, foreground_threshold=0.5)
    assert np.array_equal(given, plain)
    predict(bundle, image, output="instances", precision="fp32", progress=False, out=tmp_path / "cells.tif")
    assert json.loads((tmp_path / "cells.tif.json").read_text())["settings"]["foreground_threshold"] == chosen
    for bad in (0.0, 1.0):
        with pytest.raises(DataError, match=r"model.safetensors: foreground threshold must be in \(0, 1\)"):
            instance_target(bundle, foreground_threshold=bad)


def test_flooding_only_shared_components_equals_one_watershed_over_the_foreground(rng) -> None:
    """Components with one seed are labelled whole and only those with several are flooded: the labels are
    those of a single seeded watershed over the whole foreground (plus the unseeded components)."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    from biounet.inference.instances import instances_from_interior

    interior = ndimage.gaussian_filter(rng.random((120, 140)), 3.0).astype(np.float32)
    interior = (interior - interior.min()) / (interior.max() - interior.min())
    foreground = interior > 0.35
    for threshold, min_size in [(0.5, 1), (0.6, 8), (0.75, 20)]:
        seeds, _ = ndimage.label((interior > threshold) & foreground)
        counts = np.bincount(seeds.ravel())
        kept = np.flatnonzero(counts >= min_size)
        kept = kept[kept > 0]
        seeds = np.where(np.isin(seeds, kept), np.searchsorted(kept, seeds) + 1, 0)
        reference = watershed(-interior, markers=seeds, mask=foreground)
        unseeded, _ = ndimage.label(foreground & (reference == 0))
        sizes = np.bincount(unseeded.ravel())
        big = np.flatnonzero(sizes >= min_size)
        big = big[big > 0]
        reference = np.where(np.isin(unseeded, big), np.searchsorted(big, unseeded) + 1 + len(kept), reference)
        labels = instances_from_interior(interior, foreground, threshold=threshold, min_size=min_size)
        assert np.array_equal(labels, reference)
    shared = ndimage.label(foreground)[0]
    assert any(len(np.unique(labels[(shared == c) & (labels > 0)])) > 1 for c in range(1, shared.max() + 1))


def test_predict_makes_the_cells_of_a_membrane_model_with_its_cell_settings(rng, small_unet, tmp_path) -> None:
    """A membrane model's instances are :func:`~biounet.inference.cells.cells_from_membranes` of P(interior)
    with the model's cell settings (a given threshold replaces the interior threshold); the sidecar says so."""
    import json

    from biounet import predict
    from biounet.inference.cells import CellSettings, cells_from_membranes
    from biounet.io.checkpoint import load_bundle, save_model

    model = small_unet(depth=2, num_classes=2)
    image = rng.random((64, 64)).astype(np.float32)
    target = {"kind": "instances", "style": "membrane", "interior_class": 1, "foreground_classes": [0, 1]}
    probs = predict(model, image, precision="fp32", progress=False, pipeline={"target": target})
    median = round(float(np.median(probs[1])), 3)
    cells = CellSettings(interior_threshold=median, seed_distance=1.0, merge_threshold=0.5, min_size=4)
    save_model(model, tmp_path / "run", pipeline={"target": {**target, "threshold": median, "cells": cells}})
    bundle = load_bundle(tmp_path / "run")

    saved = predict(bundle, image, output="instances", precision="fp32", progress=False)
    assert np.array_equal(saved, cells_from_membranes(probs[1], cells)) and saved.min() >= 1
    given = predict(bundle, image, output="instances", precision="fp32", progress=False, threshold=0.4)
    expected = cells_from_membranes(probs[1], CellSettings(0.4, 1.0, 0.5, 4))
    assert np.array_equal(given, expected)
    predict(bundle, image, output="instances", precision="fp32", progress=False, out=tmp_path / "cells.tif")
    settings = json.loads((tmp_path / "cells.tif.json").read_text())["settings"]
    assert settings["cells"] == {"interior_threshold": median, "seed_distance": 1.0, "merge_threshold": 0.5,
                                 "min_size": 4}


def test_cells_are_made_per_section_only_for_a_membrane_target_on_thick_sections() -> None:
    from biounet.inference.instances import InstanceTarget
    from biounet.pipeline import CellSettings

    def target(cells: CellSettings | None, spacing: tuple[float, ...] | None) -> InstanceTarget:
        return InstanceTarget(1, [0, 1], 0.5, 4, cells=cells, spacing=spacing)

    assert target(CellSettings(), (50.0, 4.6, 4.6)).cells_per_section(3)
    assert not target(CellSettings(), (1.0, 1.0, 1.0)).cells_per_section(3)  # isotropic: one 3D watershed
    assert not target(CellSettings(), None).cells_per_section(3)
    assert not target(None, (50.0, 4.6, 4.6)).cells_per_section(3)  # nuclei-style instances, no cells
