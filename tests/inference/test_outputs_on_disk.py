"""Lazy inputs, progressive atomic outputs (.npy, .tif, .zarr, .png), sidecars and bounded memory."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile

from biounet import predict
from biounet.errors import ImageReadError
from biounet.io.checkpoint import save_model
from biounet.io.images import read_image, write_image


@pytest.fixture
def image(rng) -> np.ndarray:
    return (rng.random((300, 257)) * 255).astype(np.uint8)


@pytest.mark.parametrize("source", ["npy", "tif", "zarr"])
@pytest.mark.parametrize("target", ["npy", "tif", "zarr"])
def test_lazy_input_to_progressive_output_equals_in_memory(source, target, image, tmp_path, small_unet) -> None:
    model = small_unet()
    path = tmp_path / f"in.{source}"
    if source == "tif":
        tifffile.imwrite(path, image)
    else:
        write_image(path, image)
    expected = predict(model, image, precision="fp32", progress=False, tile_size=100)
    out = tmp_path / f"out.{target}"
    kwargs = dict(precision="fp32", progress=False, tile_size=100)
    written = predict(model, path, out=out, probability_dtype="float32", **kwargs)
    assert written == out
    assert np.array_equal(read_image(out), expected)
    labels = predict(model, path, out=tmp_path / f"labels.{target}", output="labels", **kwargs)
    assert np.array_equal(read_image(labels), expected.argmax(axis=0))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [path.name, out.name, f"{out.name}.json", f"labels.{target}", f"labels.{target}.json"]
    )


def test_probability_dtypes_and_png(image, tmp_path, small_unet) -> None:
    model = small_unet()
    expected = predict(model, image, precision="fp32", progress=False)
    half = read_image(predict(model, image, out=tmp_path / "p16.npy", precision="fp32", progress=False))
    assert half.dtype == np.float16 and np.abs(half - expected).max() < 1e-3
    byte = read_image(
        predict(model, image, out=tmp_path / "p8.tif", probability_dtype="uint8", precision="fp32", progress=False)
    )
    assert byte.dtype == np.uint8 and np.abs(byte / 255.0 - expected).max() <= 0.5 / 255 + 1e-6
    pngs = predict(model, image, out=tmp_path / "p.png", probability_dtype="uint8", precision="fp32", progress=False)
    assert [p.name for p in pngs] == ["p_0.png", "p_1.png"]  # one PNG per class
    assert np.array_equal(read_image(pngs[1]), byte[1])


def test_sidecar_names_the_model_and_settings(image, tmp_path, small_unet) -> None:
    model_path = save_model(small_unet(), tmp_path / "model.safetensors")
    out = predict(model_path, image, out=tmp_path / "out.tif", tta=4, tile_size=100, progress=False)
    sidecar = json.loads((tmp_path / "out.tif.json").read_text())
    assert sidecar["model"]["path"] == str(model_path)
    assert sidecar["model"]["sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert sidecar["model"]["config"]["base_channels"] == 4
    assert sidecar["image"]["shape"] == [300, 257]
    assert sidecar["settings"]["tta"] == 4 and sidecar["settings"]["tiles"] > 1
    assert sidecar["settings"]["precision"] in ("fp32", "bf16")
    assert sidecar["timings"]["total_s"] > 0 and sidecar["biounet_version"]
    assert sidecar["output"] == {"kind": "probabilities", "file": out.name}


class FailingArray:
    """A lazy image whose reads fail after ``ok`` successful ones (a file truncated halfway)."""

    def __init__(self, data: np.ndarray, ok: int) -> None:
        self.data, self.ok = data, ok
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key):
        self.ok -= 1
        if self.ok < 0:
            raise ImageReadError("broken.tif: cannot read image (truncated)")
        return self.data[key]


@pytest.mark.parametrize("target", ["npy", "tif", "zarr"])
def test_error_midway_leaves_no_output(target, image, tmp_path, small_unet) -> None:
    out = tmp_path / f"out.{target}"
    with pytest.raises(ImageReadError):
        predict(small_unet(), FailingArray(image, ok=4), out=out, tile_size=64, batch_size=1, progress=False)
    assert list(tmp_path.iterdir()) == []  # no final file, no temporary file, no sidecar


RSS_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from biounet import predict
    from biounet.model import UNet

    model = UNet(base_channels=4, depth=2, num_classes=4, dropout=0.0).eval()
    predict(model, np.zeros((64, 64)), progress=False)  # warm up: libraries, thread pools
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    predict(model, sys.argv[1], out=sys.argv[2], probability_dtype="float32",
            tile_size=256, batch_size=1, progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"before": before, "after": after}))
    """
)


def test_peak_memory_does_not_grow_with_the_image(tmp_path) -> None:
    """4096 x 4096, 4 classes: the float32 output is 256 MiB; the process grows by less than half of that.

    What it may hold: the intensity statistics (a subsample of at most 4 M pixels, ~50 MB while the
    percentiles are sorted), one tile's activations (256^2 px x ~320 B = 20 MB in float32, half in
    bf16), one strip of rows
    (4 x 236 x 4096 x 4 B = 15 MB) and the memory map of the strip being written, then released.
    An in-memory output alone would need the whole 256 MiB.
    """
    size = 4096
    source = tmp_path / "in.npy"
    image = np.lib.format.open_memmap(source, mode="w+", dtype=np.uint8, shape=(size, size))
    for row in range(0, size, 512):
        image[row : row + 512] = (np.arange(row, row + 512)[:, None] * 7 + np.arange(size) * 3) % 251
    image.flush()
    del image
    out = tmp_path / "out.npy"
    result = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(source), str(out)], capture_output=True, text=True, check=True
    )
    rss = json.loads(result.stdout.strip().splitlines()[-1])
    output_bytes = 4 * size * size * 4
    probs = np.load(out, mmap_mode="r")
    assert probs.shape == (4, size, size) and np.allclose(probs[:, ::512, ::512].sum(axis=0), 1.0, atol=1e-5)
    assert rss["after"] - rss["before"] < output_bytes / 2, rss


def test_on_progress_reports_tiles_and_an_exception_from_it_cancels_leaving_no_output(tmp_path):
    """A GUI's bar gets (done, total) after every batch; its cancel (an exception) stops the run, no file left."""
    from biounet.model import UNet

    model = UNet(padding="same", base_channels=4, depth=2)
    image = np.random.default_rng(0).random((200, 180)).astype(np.float32)
    calls = []
    predict(model, image, tile_size=64, batch_size=1, progress=False, on_progress=lambda d, t: calls.append((d, t)))
    assert len(calls) > 2 and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)

    class Cancelled(Exception):
        pass

    def cancel_after_two(done: int, total: int) -> None:
        if done >= 2:
            raise Cancelled

    out = tmp_path / "p.tif"
    with pytest.raises(Cancelled):
        predict(model, image, tile_size=64, batch_size=1, progress=False, out=out, on_progress=cancel_after_two)
    assert list(tmp_path.iterdir()) == []
