"""A trained biounet model as a bioimage.io model package (spec 0.5), tested by ``bioimageio.core`` before it is kept.

The package (one ``.zip``) holds:

- weights in three formats, all giving logits ``(B, K, *S_out)`` for every valid input size: TorchScript
  and ONNX traced through :class:`~biounet.export.formats.SizeGeneralForward` (sizes kept symbolic), and a
  PyTorch state dict whose architecture is ``biounet.model.unet.UNet`` with the keyword arguments of its
  :class:`~biounet.model.config.UNetConfig`.  The state dict is a ``torch.save`` file because the spec
  requires one; biounet itself never loads it (see :mod:`biounet.io.bioimageio`): it loads the
  ``model.safetensors`` attached beside it, biounet's own file with the typed pipeline;
- the normalisation as the spec's own operations: percentile scaling -> ``scale_range`` with the same
  percentiles per channel (``axes`` = the spatial axes; no clipping, as biounet does not clip), min-max ->
  ``scale_range`` 0..100, z-score -> ``zero_mean_unit_variance``; ``softmax`` over the channel axis as
  post-processing (the weights return logits, as every biounet model does);
- sizes from :mod:`biounet.model.sizes`: input ``min + n * step`` with ``step`` the total pooling factor
  (``min``: the smallest valid input of a valid-padded network; for a same-padded one the smallest
  multiple of the step larger than twice the halo, as the spec requires).  A valid-padded output is
  ``input - 2 * halo`` (``SizeReference`` offset: the halo the network already cropped); a same-padded
  output has the input's size and ``halo`` = the receptive-field radius on the pooling grid
  (:func:`exact_context`), so a consumer that tiles with it keeps only centres that equal a whole-image pass;
  the input's ``pad`` is ``reflect``: a consumer mirrors the image border, as biounet does;
- test tensors from a real image (by default a validation image of the run), a cover (image |
  prediction), a README (training data, validation metrics, citation) and the licence.

``export_bioimageio`` runs ``bioimageio.core``'s model test (every weight format must reproduce the test
output; the parametrised sizes must give the declared output shapes) and writes the zip only if it passed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biounet.errors import BiounetError
from biounet.export import package_files
from biounet.export.formats import export_onnx_size_general, trace_size_general
from biounet.io.atomic import atomic_path
from biounet.io.checkpoint import ModelBundle, load_bundle, save_model
from biounet.model import sizes
from biounet.model.config import UNetConfig

INPUT_ID = "raw"
OUTPUT_ID = "probabilities"
UNET_CITATION = (
    "O. Ronneberger, P. Fischer, T. Brox. U-Net: Convolutional Networks for Biomedical Image Segmentation. "
    "MICCAI 2015, LNCS 9351, pp. 234-241."
)
UNET_DOI = "10.1007/978-3-319-24574-4_28"


@dataclass
class PackageInfo:
    """What a package says beyond the model (all optional; defaults name biounet and the run).

    Attributes:
        name: the model's name in the zoo (letters, digits, spaces, ``_-``).
        description: one sentence.
        authors: people who made the model.
        license: an SPDX identifier (``"MIT"``, ``"CC-BY-4.0"``, ...).
        test_image: image file for the test tensors; ``None``: a validation image of the run.
        test_size: largest test-input size per axis in pixels (a valid size at most this is cut from the
            image's centre); small keeps the zoo's own test fast.
        tags: extra tags.
    """

    name: str | None = None
    description: str | None = None
    authors: list[str] = field(default_factory=lambda: ["biounet user"])
    license: str = "MIT"
    test_image: str | os.PathLike | None = None
    test_size: int = 256
    tags: list[str] = field(default_factory=list)


def export_bioimageio(
    model: str | os.PathLike, out: str | os.PathLike, info: PackageInfo | None = None, *, test: bool = True
) -> Path:
    """Write the bioimage.io package of ``model`` (a run directory or ``.safetensors`` file) to ``out`` (``.zip``).

    With ``test`` (default), ``bioimageio.core``'s model test runs on the finished package first and any
    failure is a :class:`~biounet.errors.BiounetError` naming the package and the first failing check;
    nothing is written under ``out`` then.  Returns ``out``.
    """
    info = info or PackageInfo()
    out = Path(out)
    if out.suffix != ".zip":
        raise BiounetError(f"{out}: a bioimage.io package is a .zip file")
    bundle = load_bundle(model)
    if bundle.pipeline.z_context:
        raise BiounetError(f"{model}: a 2.5D model (z context {bundle.pipeline.z_context}) reads a section with its "
                           "neighbours as channels, which a bioimage.io package cannot describe; export it as ONNX or "
                           "TorchScript (--format onnx|torchscript) or train it as a 3D model")
    if bundle.pipeline.distance_channel is not None:
        raise BiounetError(f"{model}: a model with a distance output (channel {bundle.pipeline.distance_channel}, a "
                           "sigmoid beside the softmax classes) does not fit the package's one softmax "
                           "post-processing; export it as ONNX or TorchScript (--format onnx|torchscript: logits)")
    run_dir = Path(model) if Path(model).is_dir() else None
    with tempfile.TemporaryDirectory(prefix="biounet-bioimageio-") as tmp:
        folder = Path(tmp)
        descr = describe(bundle, folder, info, run_dir)
        with atomic_path(out) as staged:
            _save_package(descr, staged)
            if test:
                check_package(staged, name=out)
    return out


def describe(bundle: ModelBundle, folder: Path, info: PackageInfo, run_dir: Path | None) -> Any:
    """Write the package's files into ``folder`` and return their ``bioimageio.spec`` ``ModelDescr``."""
    from bioimageio.spec.model import v0_5

    net = bundle.model.eval()
    config = net.config
    image_path = Path(info.test_image) if info.test_image else package_files.validation_image(run_dir)
    raw = package_files.test_input(image_path, bundle, info.test_size, input_sizes(config))
    probabilities = package_files.reference_output(net, raw, bundle.pipeline.normalization)
    np.save(folder / "test_input.npy", raw[None])
    np.save(folder / "test_output.npy", probabilities[None])
    package_files.write_cover(folder / "cover.png", raw, probabilities, bundle.pipeline)
    save_model(net, folder / "model.safetensors", pipeline=bundle.pipeline)
    example = torch.from_numpy(raw[None].astype(np.float32))
    trace_size_general(net, example).save(str(folder / "torchscript.pt"))
    export_onnx_size_general(net, folder / "model.onnx", example)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, folder / "state_dict.pt")
    name = info.name or f"biounet U-Net {_kind(bundle)}"
    (folder / "README.md").write_text(
        package_files.readme(name, bundle, image_path, run_dir, UNET_CITATION), encoding="utf-8"
    )
    (folder / "LICENSE").write_text(f"{info.license}\n", encoding="utf-8")
    return v0_5.ModelDescr(
        name=name,
        description=info.description or f"biounet U-Net, {_kind(bundle)}, softmax probabilities per class",
        authors=[v0_5.Author(name=a) for a in info.authors],
        cite=[v0_5.CiteEntry(text=UNET_CITATION, doi=v0_5.Doi(UNET_DOI))],
        license=info.license,
        documentation=v0_5.FileDescr(source=folder / "README.md"),
        covers=[v0_5.FileDescr(source=folder / "cover.png")],
        attachments=[v0_5.FileDescr(source=folder / "model.safetensors"), v0_5.FileDescr(source=folder / "LICENSE")],
        tags=["unet", "segmentation", "biounet", f"{config.spatial_dims}d", *info.tags],
        inputs=[_input_descr(config, bundle, folder)],
        outputs=[_output_descr(config, bundle, folder)],
        weights=_weights(config, folder),
        config=v0_5.Config(bioimageio=v0_5.BioimageioConfig(reproducibility_tolerance=[
            v0_5.ReproducibilityTolerance(absolute_tolerance=1e-4, relative_tolerance=1e-4)
        ])),
        version="0.1.0",
    )


def input_sizes(config: UNetConfig) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(min, step)`` per spatial axis of the package's input: sizes ``min + n * step`` (see the module docstring)."""
    step = sizes.total_pool_factor(config)
    if config.padding == "valid":
        return sizes.min_input_shape(config), step
    return tuple((2 * m // p + 1) * p for m, p in zip(exact_context(config), step)), step


def exact_context(config: UNetConfig) -> tuple[int, ...]:
    """A same-padded network's receptive-field radius with the pooling phase, ``halo + P - 1``, rounded up to
    a multiple of ``P`` (112 px for depth 4): tiles that discard this much equal a whole-image pass."""
    step = sizes.total_pool_factor(config)
    return tuple(-(-(h + p - 1) // p) * p for h, p in zip(sizes.halo(config), step))


def check_package(path: str | os.PathLike, *, name: str | os.PathLike | None = None) -> Any:
    """Run ``bioimageio.core.test_model`` on the package at ``path``; raise a one-line error unless it passed.

    Offline: every file is inside the package and ``bioimageio.core`` fetches nothing for a local zip
    (the licence id is checked against the SPDX list bundled with ``bioimageio.spec``).
    """
    from bioimageio.core import test_model

    summary = test_model(Path(path), devices=["cpu"])
    if summary.status != "passed":
        failed = [d for d in summary.details if d.status == "failed"]
        first = failed[0] if failed else None
        message = (first.errors[0].msg if first and first.errors else first.name if first else summary.status)
        raise BiounetError(f"{name or path}: bioimageio.core's model test failed: {str(message).splitlines()[0]}")
    return summary


def _save_package(descr: Any, path: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    save_bioimageio_package(descr, output_path=path)


def _kind(bundle: ModelBundle) -> str:
    target = bundle.pipeline.target
    if target is None:
        return f"{bundle.config.num_classes} classes"
    return f"{target.kind}{f' ({target.style})' if target.style else ''}"


def _spatial_ids(config: UNetConfig) -> list[str]:
    return ["y", "x"] if config.spatial_dims == 2 else ["z", "y", "x"]


def _input_descr(config: UNetConfig, bundle: ModelBundle, folder: Path) -> Any:
    from bioimageio.spec.model import v0_5

    lows, steps = input_sizes(config)
    axes: list[Any] = [
        v0_5.BatchAxis(),
        v0_5.ChannelAxis(channel_names=[v0_5.Identifier(f"channel{i}") for i in range(config.in_channels)]),
    ]
    axes += [
        v0_5.SpaceInputAxis(id=v0_5.AxisId(a), size=v0_5.ParameterizedSize(min=lo, step=st))
        for a, lo, st in zip(_spatial_ids(config), lows, steps)
    ]
    return v0_5.InputTensorDescr(
        id=v0_5.TensorId(INPUT_ID),
        description="image intensities (any range); normalised by the preprocessing",
        axes=axes,
        test_tensor=v0_5.FileDescr(source=folder / "test_input.npy"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32"),
        # a consumer mirrors the border as biounet does; mode set explicitly, as the spec's YAML drops unset
        # defaults and reads "pad: {}" back as constant (zero) padding
        pad=v0_5.ReflectPadding(mode="reflect"),
        preprocessing=_preprocessing(config, bundle),
    )


def _preprocessing(config: UNetConfig, bundle: ModelBundle) -> list[Any]:
    """biounet's normalisation (:mod:`biounet.data.normalization`) as the spec's operations."""
    from bioimageio.spec.model import v0_5

    norm = bundle.pipeline.normalization
    axes = [v0_5.AxisId(a) for a in _spatial_ids(config)] + ([] if norm.per_channel else [v0_5.AxisId("channel")])
    if norm.method == "percentile":
        kwargs = v0_5.ScaleRangeKwargs(axes=axes, min_percentile=norm.low, max_percentile=norm.high)
        return [v0_5.ScaleRangeDescr(kwargs=kwargs)]
    if norm.method == "minmax":
        return [v0_5.ScaleRangeDescr(kwargs=v0_5.ScaleRangeKwargs(axes=axes, min_percentile=0, max_percentile=100))]
    if norm.method == "zscore":
        return [v0_5.ZeroMeanUnitVarianceDescr(kwargs=v0_5.ZeroMeanUnitVarianceKwargs(axes=axes))]
    return []


def _output_descr(config: UNetConfig, bundle: ModelBundle, folder: Path) -> Any:
    from bioimageio.spec.model import v0_5

    target = bundle.pipeline.target
    names = [f"class{i}" for i in range(config.num_classes)]
    if target and target.class_names:
        names = list(target.class_names)
    axes: list[Any] = [
        v0_5.BatchAxis(),
        v0_5.ChannelAxis(channel_names=[v0_5.Identifier(_identifier(n)) for n in names]),
    ]
    halo = sizes.halo(config)
    margin = exact_context(config)
    for i, a in enumerate(_spatial_ids(config)):
        if config.padding == "valid":
            ref = v0_5.SizeReference(tensor_id=v0_5.TensorId(INPUT_ID), axis_id=v0_5.AxisId(a), offset=-2 * halo[i])
            axes.append(v0_5.SpaceOutputAxis(id=v0_5.AxisId(a), size=ref))
        else:
            ref = v0_5.SizeReference(tensor_id=v0_5.TensorId(INPUT_ID), axis_id=v0_5.AxisId(a))
            axes.append(v0_5.SpaceOutputAxisWithHalo(id=v0_5.AxisId(a), size=ref, halo=margin[i]))
    return v0_5.OutputTensorDescr(
        id=v0_5.TensorId(OUTPUT_ID),
        description="softmax probability of every class",
        axes=axes,
        test_tensor=v0_5.FileDescr(source=folder / "test_output.npy"),
        data=v0_5.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        postprocessing=[v0_5.SoftmaxDescr(kwargs=v0_5.SoftmaxKwargs(axis=v0_5.AxisId("channel")))],
    )


def _identifier(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name).strip("_")
    return cleaned if cleaned and not cleaned[0].isdigit() else f"class_{cleaned}"


def _weights(config: UNetConfig, folder: Path) -> Any:
    from bioimageio.spec.model import v0_5

    torch_version = v0_5.Version(torch.__version__.split("+")[0])
    kwargs = json.loads(json.dumps(config.to_dict()))
    return v0_5.WeightsDescr(
        pytorch_state_dict=v0_5.PytorchStateDictWeightsDescr(
            source=folder / "state_dict.pt",
            architecture=v0_5.ArchitectureFromLibraryDescr(
                callable=v0_5.Identifier("UNet"), import_from="biounet.model.unet", kwargs=kwargs
            ),
            pytorch_version=torch_version,
            dependencies=None,
        ),
        torchscript=v0_5.TorchscriptWeightsDescr(
            source=folder / "torchscript.pt", pytorch_version=torch_version, parent="pytorch_state_dict"
        ),
        onnx=v0_5.OnnxWeightsDescr(source=folder / "model.onnx", opset_version=17, parent="pytorch_state_dict"),
    )


__all__ = ["PackageInfo", "check_package", "describe", "export_bioimageio", "input_sizes"]
