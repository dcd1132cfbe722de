"""2.5D prediction: a 2D model with ``z_context = 1`` predicts a stack from each section and its neighbours."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import biounet
from biounet.data.normalization import NormalizationConfig, apply_normalization, image_statistics
from biounet.errors import DataError
from biounet.inference.sections import SectionContextView, section_indices
from biounet.io.checkpoint import ModelBundle, load_bundle, save_model
from biounet.model import UNet
from biounet.pipeline import Pipeline

PERCENTILE = {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A small random 2D U-Net taking 3 channels (sections z-1, z, z+1), saved with a z_context 1 pipeline."""
    torch.manual_seed(0)
    model = UNet(in_channels=3, num_classes=2, base_channels=4, depth=2, dropout=0.0)
    root = tmp_path_factory.mktemp("model25d")
    return save_model(model, root / "m.safetensors", pipeline={"normalization": PERCENTILE, "z_context": 1})


def stack_of(z: int = 5, seed: int = 0) -> np.ndarray:
    """``(Z, 36, 28)`` uint8 whose sections differ (so a wrong neighbour changes the output)."""
    rng = np.random.default_rng(seed)
    return (rng.random((z, 36, 28)) * 200 + np.arange(z)[:, None, None] * 10).astype(np.uint8)


def hand_built_logits(path: Path, stack: np.ndarray) -> np.ndarray:
    """Each section's 3-channel image built by hand (np.pad reflect), normalised with the stack's statistics
    and predicted as a plain 3-channel 2D image: ``(K, Z, Y, X)``."""
    stats = image_statistics(stack[None], NormalizationConfig(**PERCENTILE))
    normalised = apply_normalization(stack[None], stats)[0]
    padded = np.pad(normalised, ((1, 1), (0, 0), (0, 0)), mode="reflect")
    bundle = load_bundle(path)
    plain = ModelBundle(bundle.model, Pipeline.from_dict({"normalization": {"method": "none"}}), None)
    sections = [
        biounet.predict(plain, padded[z : z + 3], output="logits", precision="fp32", progress=False)
        for z in range(len(stack))
    ]
    return np.stack(sections, axis=1)


def test_stack_prediction_equals_hand_built_sections(model_path: Path) -> None:
    stack = stack_of()
    logits = biounet.predict(model_path, stack, output="logits", precision="fp32", progress=False)
    assert logits.shape == (2, *stack.shape)
    np.testing.assert_allclose(logits, hand_built_logits(model_path, stack), atol=1e-5)


def test_ends_are_mirrored_about_the_end_section(model_path: Path) -> None:
    """Section 0 sees (1, 0, 1): changing section 1 changes section 0's output, and a (2, 1, 0) order would not
    match; the last section of 4 sees (2, 3, 2)."""
    assert section_indices(0, 5, 1).tolist() == [1, 0, 1]
    assert section_indices(4, 5, 1).tolist() == [3, 4, 3]
    assert section_indices(0, 5, 2).tolist() == [2, 1, 0, 1, 2]
    stack = stack_of(4, seed=1)
    view = SectionContextView(stack[None], 1)
    assert np.array_equal(view[:, 0], stack[[1, 0, 1]])
    assert np.array_equal(view[:, 3], stack[[2, 3, 2]])
    assert np.array_equal(view[:, 1:3, 5:9], np.stack([stack[[0, 1, 2], 5:9], stack[[1, 2, 3], 5:9]], axis=1))
    logits = biounet.predict(model_path, stack, output="logits", precision="fp32", progress=False)
    np.testing.assert_allclose(logits, hand_built_logits(model_path, stack), atol=1e-5)


class CountingStack:
    """A real ``(C, Z, Y, X)`` array that records the sections each read asks for (laziness check)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.reads: list[tuple[int, int]] = []

    def __getitem__(self, key):
        zs = range(*key[1].indices(self.shape[1]))
        self.reads.append((zs.start, zs.stop))
        return self.array[key]


def test_a_tile_reads_only_its_neighbouring_sections() -> None:
    base = CountingStack(stack_of(9)[None])
    view = SectionContextView(base, 1)
    assert view.shape == (3, 9, 36, 28)
    view[:, 4, 0:8, 0:8]
    view[:, 0, 0:8, 0:8]
    assert base.reads == [(3, 6), (0, 2)]


def test_channels_are_section_major_for_multichannel_files() -> None:
    """A (Z, C, Y, X) stack with C = 2: channel j * C + c is channel c of section z - k + j."""
    stack = np.arange(4 * 2 * 3 * 3, dtype=np.float32).reshape(4, 2, 3, 3)
    view = SectionContextView(np.moveaxis(stack, 1, 0), 1)
    expected = np.concatenate([stack[0], stack[1], stack[2]])  # section 1 with sections 0 and 2
    assert np.array_equal(view[:, 1], expected)


def test_a_2d_image_with_a_25d_model_is_a_one_line_error(model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "single.tif"
    tifffile.imwrite(path, stack_of(1)[0])
    with pytest.raises(DataError) as error:
        biounet.predict(model_path, path, progress=False)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "a 2.5D model (z context 1) needs a stack of at least 2 sections" in message


def test_a_multipage_tiff_through_files_writes_z_context_and_spacing(model_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "stack.tif"
    stack = stack_of()
    tifffile.imwrite(path, stack, photometric="minisblack")
    out = biounet.predict(model_path, path, output="probabilities", out=tmp_path / "p.tif", progress=False,
                          precision="fp32")
    probabilities = tifffile.imread(out)
    assert probabilities.shape == (2, *stack.shape)
    expected = torch.softmax(torch.from_numpy(hand_built_logits(model_path, stack)), dim=0).numpy()
    np.testing.assert_allclose(probabilities.astype(np.float32), expected, atol=2e-3)  # float16 on disk
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["settings"]["z_context"] == 1
    assert sidecar["settings"]["spacing"] is None


def test_the_view_builds_the_channels_training_builds() -> None:
    """Prediction's sections are training's (:func:`biounet.data.sections.context_channels`), every z, k = 1, 2."""
    from biounet.data.sections import context_channels

    stack = np.moveaxis(np.arange(5 * 2 * 4 * 3, dtype=np.float32).reshape(5, 2, 4, 3), 1, 0)  # (C=2, Z=5, Y, X)
    for k in (1, 2):
        view = SectionContextView(stack, k)
        for z in range(5):
            assert np.array_equal(view[:, z], context_channels(stack, z, k))


def test_the_dask_driver_refuses_a_25d_model_in_one_line(model_path: Path, tmp_path: Path) -> None:
    """The blockwise driver predicts no stacks of sections: one line before any cluster starts."""
    from biounet.inference.blockwise import predict_blockwise

    np.save(tmp_path / "stack.npy", stack_of())
    with pytest.raises(DataError) as error:
        predict_blockwise(model_path, tmp_path / "stack.npy", tmp_path / "out.zarr", dask="local:1")
    assert "\n" not in str(error.value) and "2.5D model (z context 1)" in str(error.value)
    assert not (tmp_path / "out.zarr").exists()
