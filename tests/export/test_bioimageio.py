"""bioimage.io packages: biounet's export passes the zoo's own test, and ``biounet predict`` runs packages.

Offline, as the zoo's CI would run it here: ``bioimageio.core.test_model`` is given the local ``.zip``, whose
files are all inside it, and the description is read with the spec's I/O checks on local files only
(``perform_io_checks`` checks hashes of the package's own files; the licence id is checked against the
SPDX list bundled with ``bioimageio.spec``); ``BIOIMAGEIO_CACHE_PATH`` points into the test's temporary
folder so nothing outside it is written.  No network is reachable here and none is needed.

The model is a real one: a small same-padded U-Net with batch norm (the README tour's recipe at depth 2)
trained for a few steps on crops of real DSB 2018 images.  Its state-dict weights are a ``torch.save``
file because the spec requires one; biounet itself never loads that file (it loads the attached
``model.safetensors``; see :mod:`biounet.io.bioimageio`), only ``bioimageio.core`` does in its test, with
``torch.load(weights_only=True)``.  The foreign package's TorchScript is loaded with ``torch.jit.load``,
which runs code from the file: biounet does so only for a package the user passes explicitly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("bioimageio.core", reason="the bioimageio extra is not installed")

from bioimageio.spec.model import v0_5  # noqa: E402

from biounet.data.normalization import NormalizationConfig, normalize  # noqa: E402
from biounet.export.bioimageio import exact_context, input_sizes  # noqa: E402
from biounet.io.checkpoint import load_bundle  # noqa: E402
from biounet.io.images import read_image, write_image  # noqa: E402
from biounet.model import UNetConfig, sizes  # noqa: E402
from biounet.training.config import TrainConfig, merge  # noqa: E402
from biounet.training.recipes import preset, recipe  # noqa: E402
from biounet.training.trainer import train  # noqa: E402

TINY = {
    "model": {"depth": 2, "base_channels": 4, "padding": "same", "norm": "batch", "dropout": 0.0},
    "tile_shape": [64], "batch_size": 2, "precision": "fp32", "device": "cpu", "log_every": 2,
    "optim": {"lr": 0.01, "warmup_steps": 0},
}


def biounet_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BIOIMAGEIO_CACHE_PATH": str(cwd / "bioimageio-cache")}
    return subprocess.run([sys.executable, "-m", "biounet", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def dsb_run(shared_data, tmp_path_factory) -> Path:
    """A run directory: 2 steps on 64 px crops of 3 real DSB images (the last one validates)."""
    root = tmp_path_factory.mktemp("dsb") / "stage1_train"
    source = shared_data / "dsb2018_nuclei_fluo256" / "stage1_train"
    kept = 0
    for sample in sorted(source.iterdir()):
        masks = [(m.name, read_image(m)[:64, :64]) for m in sorted((sample / "masks").iterdir())]
        masks = [(name, mask) for name, mask in masks if mask.any()]
        if len(masks) < 3:
            continue  # a crop without nuclei teaches nothing
        image = read_image(sample / "images" / f"{sample.name}.png")[:64, :64]
        write_image(root / sample.name / "images" / f"{sample.name}.png", image)
        for name, mask in masks:
            write_image(root / sample.name / "masks" / name, mask)
        kept += 1
        if kept == 3:
            break
    config = TrainConfig.from_dict(merge(merge(recipe("default"), TINY), merge(preset("dsb2018"), {
        "data": {"images": str(root.parent), "val_split": 0.34, "foreground_prob": 0.5}, "steps": 2, "val_every": 2,
    })))
    run = root.parent / "run"
    train(config, run, progress=False)
    return run


def test_export_passes_bioimageio_core_and_matches_biounet_predict(dsb_run, tmp_path):
    """The package of a trained model (same padding, batch norm: the README tour's recipe) passes
    bioimageio.core's test: every weight format reproduces the test output, and the parametrised sizes at
    n = 0, 1, 2 with batch 1 and 2 give the declared shapes.  Its ONNX weights, run on the test input as
    bioimageio.core runs them, give biounet predict's probabilities of that image within 1e-4 (an image that
    fits in memory is one pass for a same-padded model), and biounet predict of the package equals biounet
    predict of the run (the package carries biounet's own model file)."""
    from bioimageio.core import test_model
    from bioimageio.spec import load_model_description

    import biounet

    package = tmp_path / "model.zip"
    done = biounet_cli("export", str(dsb_run), str(package), "--format", "bioimageio", "--test-size", "64",
                       "--no-test", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {"rdf.yaml", "model.onnx", "torchscript.pt", "state_dict.pt", "model.safetensors", "cover.png",
            "README.md", "LICENSE", "test_input.npy", "test_output.npy"} <= set(zipfile.ZipFile(package).namelist())

    os.environ["BIOIMAGEIO_CACHE_PATH"] = str(tmp_path / "bioimageio-cache")
    summary = test_model(package, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    names = [d.name for d in summary.details if d.status == "passed"]
    for weights in ("onnx", "torchscript", "pytorch_state_dict"):
        assert any(weights in n and "n: 2" in n and "batch_size: 2" in n for n in names), weights
        assert any("Reproduce test outputs" in n and weights in n for n in names), weights

    config = load_bundle(dsb_run).config
    descr = load_model_description(package, perform_io_checks=False)
    assert [a.halo for a in descr.outputs[0].axes if a.type == "space"] == list(exact_context(config))
    assert descr.inputs[0].pad.mode == "reflect"  # consumers mirror the border, as biounet does
    raw = _package_array(package, "test_input.npy")[0]
    expected = biounet.predict(dsb_run, raw, precision="fp32", progress=False, channel_axis="first")
    onnx = _onnx_probabilities(package, normalize(raw, load_bundle(dsb_run).pipeline.normalization))
    assert np.abs(onnx - expected).max() < 1e-4

    from_package = biounet.predict(package, raw, precision="fp32", progress=False, channel_axis="first")
    np.testing.assert_array_equal(from_package, expected)
    instances = biounet.predict(package, raw, output="instances", precision="fp32", progress=False,
                                channel_axis="first")
    assert instances.shape == raw.shape[1:] and instances.dtype == np.int32


def test_valid_padded_package_tiled_by_its_size_offset_equals_biounet_predict(shared_data, tmp_path):
    """A valid-padded model (the paper's kind) declares its output as the input minus twice the halo; a
    consumer that mirrors the image by that halo and runs the ONNX weights gets biounet predict's result,
    which biounet made here from several tiles."""
    import biounet
    from biounet.export.bioimageio import PackageInfo, export_bioimageio
    from biounet.io.checkpoint import save_model
    from biounet.model.unet import UNet
    from biounet.pipeline import Pipeline

    torch.manual_seed(0)
    model = save_model(UNet(depth=2, base_channels=4, dropout=0.0), tmp_path / "valid", pipeline=Pipeline())
    image = shared_data / "stardist_examples" / "img2d.tif"
    package = export_bioimageio(model, tmp_path / "valid.zip", PackageInfo(test_image=image, test_size=96),
                                test=False)
    descr = _description(package)
    offsets = [a.size.offset for a in descr.outputs[0].axes if a.type == "space"]
    halo = sizes.halo(load_bundle(model).config)
    assert offsets == [-2 * h for h in halo]
    raw = read_image(image)[None, :150, :130].astype(np.float32)
    expected = biounet.predict(model, raw, tile_size=80, precision="fp32", progress=False)
    # mirrored by the halo, and on the right by what rounds the input up to a size the package takes
    valid = sizes.valid_input_shape(load_bundle(model).config, [s + 2 * h for s, h in zip(raw.shape[1:], halo)])
    padded = np.pad(normalize(raw, NormalizationConfig()),
                    [(0, 0)] + [(h, v - s - h) for h, v, s in zip(halo, valid, raw.shape[1:])], mode="reflect")
    onnx = _onnx_probabilities(package, padded)[:, :150, :130]
    assert np.abs(onnx - expected).max() < 1e-4


def _description(package: Path):
    from bioimageio.spec import load_model_description

    return load_model_description(package, perform_io_checks=False)


def _package_array(package: Path, name: str) -> np.ndarray:
    import io

    with zipfile.ZipFile(package) as archive:
        return np.load(io.BytesIO(archive.read(name)))


def _onnx_probabilities(package: Path, x: np.ndarray) -> np.ndarray:
    """The package's ONNX weights on the normalised image ``x`` ``(C, *S)``, softmax as its post-processing."""
    import onnxruntime

    with zipfile.ZipFile(package) as archive:
        session = onnxruntime.InferenceSession(archive.read("model.onnx"), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": x[None].astype(np.float32)})
    return torch.softmax(torch.from_numpy(logits), dim=1)[0].numpy()


@pytest.mark.parametrize("padding", ["valid", "same"])
def test_declared_sizes_are_biounets_size_rules(padding, tmp_path):
    """The spec's own size arithmetic on the declared axes gives biounet's output shapes for n = 0..3."""
    from biounet.export.bioimageio import _input_descr, _output_descr
    from biounet.io.checkpoint import ModelBundle
    from biounet.model.unet import UNet

    config = UNetConfig(depth=3, base_channels=4, padding=padding)
    bundle = ModelBundle(UNet(config))
    lows, steps = input_sizes(config)
    np.save(tmp_path / "test_input.npy", np.zeros((1, 1, *lows), np.float32))
    out_shape = sizes.output_shape(config, lows)
    np.save(tmp_path / "test_output.npy", np.zeros((1, 2, *out_shape), np.float32))
    inputs, outputs = _input_descr(config, bundle, tmp_path), _output_descr(config, bundle, tmp_path)
    for n in range(4):
        shape = tuple(lo + n * st for lo, st in zip(lows, steps))
        assert sizes.is_valid_input_shape(config, shape)
        declared = [
            a.size.get_size(a, next(b for b in inputs.axes if b.id == a.size.axis_id), n=n)
            for a in outputs.axes if a.type == "space"
        ]
        assert tuple(declared) == sizes.output_shape(config, shape)
    if padding == "valid":
        assert lows == sizes.min_input_shape(config) and all(not hasattr(a, "halo") for a in outputs.axes)
    else:
        assert all(lo - 2 * a.halo >= 1 for lo, a in zip(lows, [a for a in outputs.axes if a.type == "space"]))
    assert v0_5.ScaleRangeDescr in {type(op) for op in inputs.preprocessing}


class PlainNet(torch.nn.Module):
    """A network as other tools make them: three 3x3 convolutions (receptive radius 3 px), one foreground channel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
            torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * 4.0


@pytest.mark.parametrize("weights", ["torchscript", "onnx"])
def test_biounet_predict_runs_a_plain_package(weights, shared_data, tmp_path):
    """A package with only TorchScript (or only ONNX) weights, built with bioimageio.spec the way other tools
    build theirs (scale_range, sigmoid, ParameterizedSize, output halo), runs through biounet's tiler in a real
    `biounet predict`: the tiled probabilities equal one pass over the mirrored image, and instances come out."""
    from bioimageio.spec import save_bioimageio_package

    net = torch.jit.script(PlainNet().eval())
    net.save(str(tmp_path / "weights.pt"))
    torch.onnx.export(PlainNet().eval(), (torch.zeros(1, 1, 24, 24),), str(tmp_path / "weights.onnx"),
                      input_names=["input"], output_names=["out"], dynamo=False,
                      dynamic_axes={"input": {0: "b", 2: "y", 3: "x"}, "out": {0: "b", 2: "y", 3: "x"}})
    version = v0_5.Version(torch.__version__.split("+")[0])
    entry = v0_5.WeightsDescr(torchscript=v0_5.TorchscriptWeightsDescr(
        source=tmp_path / "weights.pt", pytorch_version=version)) if weights == "torchscript" else v0_5.WeightsDescr(
        onnx=v0_5.OnnxWeightsDescr(source=tmp_path / "weights.onnx", opset_version=17))
    image = read_image(next((shared_data / "dsb2018_nuclei_fluo256" / "stage1_train").iterdir()).joinpath(
        "images").glob("*.png").__next__())[..., 0]
    norm = NormalizationConfig()  # percentiles 1 / 99.8 per channel, as the package declares
    x = normalize(image[None].astype(np.float32), norm)
    with torch.no_grad():
        test_out = torch.sigmoid(net(torch.from_numpy(x[None, :, :64, :64]))).numpy()
    np.save(tmp_path / "in.npy", image[None, None, :64, :64].astype(np.float32))
    np.save(tmp_path / "out.npy", test_out)
    yx = [v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=24, step=8)) for a in "yx"]
    descr = v0_5.ModelDescr(
        name="plain torchscript nuclei", description="a TorchScript network from another tool",
        authors=[v0_5.Author(name="someone")], cite=[v0_5.CiteEntry(text="a paper", doi=v0_5.Doi("10.1000/1"))],
        license="MIT", documentation=v0_5.FileDescr(source=_readme(tmp_path)),
        inputs=[v0_5.InputTensorDescr(
            id=v0_5.TensorId("input"), axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=["grey"]), *yx],
            test_tensor=v0_5.FileDescr(source=tmp_path / "in.npy"),
            preprocessing=[v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(
                axes=[v0_5.AxisId("y"), v0_5.AxisId("x")], min_percentile=1.0, max_percentile=99.8))],
        )],
        outputs=[v0_5.OutputTensorDescr(
            id=v0_5.TensorId("foreground"), axes=[v0_5.BatchAxis(), v0_5.ChannelAxis(channel_names=["nuclei"]), *[
                v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(a), halo=8, size=v0_5.SizeReference(
                    tensor_id=v0_5.TensorId("input"), axis_id=v0_5.AxisId(a))) for a in "yx"]],
            test_tensor=v0_5.FileDescr(source=tmp_path / "out.npy"),
            postprocessing=[v0_5.SigmoidDescr()],
        )],
        weights=entry,
    )
    package = save_bioimageio_package(descr, output_path=tmp_path / "plain.zip")
    write_image(tmp_path / "nuclei.tif", image)

    done = biounet_cli("predict", str(package), "nuclei.tif", "--out", "pred", "--output", "probabilities",
                       "--output", "instances", "--tile-size", "96", "--precision", "fp32",
                       "--probability-dtype", "float32", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    probabilities = read_image(tmp_path / "pred" / "nuclei_probabilities.tif")
    padded = np.pad(x, [(0, 0), (16, 16), (16, 16)], mode="reflect")
    with torch.no_grad():
        whole = torch.sigmoid(net(torch.from_numpy(padded[None]))).numpy()[0, 0, 16:-16, 16:-16]
    assert probabilities.shape == (2, *image.shape)
    assert np.abs(probabilities[1] - whole).max() < 1e-5 and np.abs(probabilities.sum(0) - 1).max() < 1e-5
    assert load_bundle(package).model.weights_format == weights
    instances = read_image(tmp_path / "pred" / "nuclei_instances.tif")
    assert instances.max() >= 2 and ((instances > 0) <= (whole > 0.3)).all()


def _readme(folder: Path) -> Path:
    (folder / "README.md").write_text("# plain\n", encoding="utf-8")
    return folder / "README.md"


def test_bad_packages_and_requests_are_one_line_errors_naming_the_file(tmp_path):
    """A zip whose description is not a valid model, and an export without a test image or to a non-zip,
    are refused with one line that names the file (no traceback, nothing written)."""
    from biounet.errors import BiounetError, ModelFileError
    from biounet.export.bioimageio import PackageInfo, export_bioimageio
    from biounet.io.checkpoint import save_model
    from biounet.model.unet import UNet

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nformat_version: 0.5.4\nname: nothing else\n")
    refused = r"broken\.zip: not a valid bioimage\.io model package \(.*inputs: Field required"
    with pytest.raises(ModelFileError, match=refused) as error:
        load_bundle(broken)
    assert "\n" not in str(error.value)

    model = save_model(UNet(depth=1, base_channels=2), tmp_path / "bare.safetensors")
    with pytest.raises(BiounetError, match="give one with --test-image"):
        export_bioimageio(model, tmp_path / "bare.zip", PackageInfo(), test=False)
    with pytest.raises(BiounetError, match=r"model\.onnx: a bioimage\.io package is a \.zip file"):
        export_bioimageio(model, tmp_path / "model.onnx", PackageInfo(), test=False)
    assert not (tmp_path / "bare.zip").exists() and not (tmp_path / "model.onnx").exists()


def test_a_2_5d_model_is_refused_in_one_line(tmp_path):
    """A bioimage.io package takes one image; a 2.5D model needs the neighbouring sections as channels."""
    from biounet.errors import BiounetError
    from biounet.export.bioimageio import export_bioimageio
    from biounet.io.checkpoint import save_model
    from biounet.model import UNet

    model = save_model(UNet(in_channels=3, base_channels=4, depth=1, padding="same"), tmp_path / "m.safetensors",
                       pipeline={"z_context": 1})
    with pytest.raises(BiounetError) as error:
        export_bioimageio(model, tmp_path / "m.zip")
    assert "2.5D" in str(error.value) and "\n" not in str(error.value) and not (tmp_path / "m.zip").exists()


def test_a_model_with_a_distance_output_is_refused_in_one_line(tmp_path):
    """The package's one softmax post-processing would turn the distance channel into a fourth class."""
    from biounet.errors import BiounetError
    from biounet.export.bioimageio import export_bioimageio
    from biounet.io.checkpoint import save_model
    from biounet.model import UNet

    target = {"kind": "instances", "style": "touching", "interior_class": 1, "foreground_classes": [1, 2],
              "class_names": ["background", "interior", "boundary"], "distance_channel": 3}
    model = save_model(UNet(num_classes=4, base_channels=4, depth=1, padding="same"), tmp_path / "m.safetensors",
                       pipeline={"target": target})
    with pytest.raises(BiounetError) as error:
        export_bioimageio(model, tmp_path / "m.zip")
    assert "distance output" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "m.zip").exists()
