"""The files of a bioimage.io package besides the weights: test tensors, cover image, README.

The test input is a real image cut to a size the package declares; the test output is what the
package's own pipeline gives for it (the spec's ``scale_range`` / ``zero_mean_unit_variance`` formulas
with their ``eps``, the network in float32, softmax), so ``bioimageio.core``'s test checks every weight
format against biounet's network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from biounet import __version__
from biounet.data.dsb import find_dsb
from biounet.data.normalization import NormalizationConfig
from biounet.data.pairing import natural_key
from biounet.errors import BiounetError
from biounet.inference.sources import open_for_model
from biounet.io.checkpoint import ModelBundle
from biounet.io.images import is_image_file
from biounet.model.config import UNetConfig
from biounet.model.unet import UNet
from biounet.pipeline import Pipeline

#: ``eps`` of the spec's ``scale_range`` and ``zero_mean_unit_variance`` (their defaults, which the package uses).
SPEC_EPS = 1e-6


def validation_image(run_dir: Path | None) -> Path:
    """A validation image of the training run in ``run_dir`` (from its ``config.json``), for the test tensors.

    The image training validated on: the first of ``--val-images`` or ``--val-names``, else the last image
    in name order (``--val-split`` holds out the last images).  Raises a one-line error when the run
    does not say (a bare ``.safetensors`` file): then pass ``--test-image``.
    """
    config_path = run_dir / "config.json" if run_dir else None
    if config_path is None or not config_path.is_file():
        raise BiounetError(f"{run_dir or 'the model'}: no run configuration to find a validation image; "
                           "give one with --test-image")
    data = json.loads(config_path.read_text(encoding="utf-8")).get("data") or {}
    folder = data.get("val_images") or data.get("images")
    if not folder or not Path(folder).is_dir():
        raise BiounetError(f"{config_path}: the training images ({folder}) are not here; give --test-image")
    if data.get("layout") == "dsb":
        found = find_dsb(folder)
        name = (data.get("val_names") or [None])[0]
        chosen = next((f for f in found if f[0] == name), None) if name else None
        chosen = chosen or (found[0] if data.get("val_images") else found[-1])
        return Path(chosen[1])
    files = sorted((p for p in Path(folder).iterdir() if is_image_file(p)), key=lambda p: natural_key(p.name))
    names = data.get("val_names")
    if names:
        files = [p for p in files if p.name.split(".")[0] == str(names[0])] or files
    if not files:
        raise BiounetError(f"{folder}: no image files; give --test-image")
    return files[0] if data.get("val_images") or names else files[-1]


def test_input(
    path: str | os.PathLike, bundle: ModelBundle, largest: int, rules: tuple[Sequence[int], Sequence[int]]
) -> np.ndarray:
    """The image at ``path`` as the model reads it, ``(C, *S)`` float32, cut (centre) to a valid package size.

    ``S`` per axis is the largest ``min + n * step`` (``rules``) not above ``largest`` nor the image;
    an image smaller than ``min`` is mirrored up to it.
    """
    pipeline = bundle.pipeline
    source, _ = open_for_model(path, bundle.config, channel_axis=pipeline.channel_axis or "auto",
                               channels=pipeline.channels, allow_stack=True)
    image = np.asarray(source[...], dtype=np.float32)
    d = bundle.config.spatial_dims
    image = image[(slice(None),) + (0,) * (image.ndim - 1 - d)]  # first slice of a stack
    lows, steps = rules
    for axis, (low, step) in enumerate(zip(lows, steps)):
        n = image.shape[1 + axis]
        if n < low:
            pad = [(0, 0)] * image.ndim
            pad[1 + axis] = ((low - n) // 2, low - n - (low - n) // 2)
            image = np.pad(image, pad, mode="symmetric")
            continue
        size = low + (min(n, max(largest, low)) - low) // step * step
        start = (n - size) // 2
        image = np.take(image, range(start, start + size), axis=1 + axis)
    return np.ascontiguousarray(image)


def normalise_as_spec(raw: np.ndarray, norm: NormalizationConfig) -> np.ndarray:
    """``raw`` ``(C, *S)`` normalised by the formulas of the spec's operations the package declares."""
    spatial = tuple(range(1, raw.ndim)) if norm.per_channel else tuple(range(raw.ndim))
    x = raw.astype(np.float64)
    if norm.method in ("percentile", "minmax"):
        low, high = (norm.low, norm.high) if norm.method == "percentile" else (0.0, 100.0)
        lo = np.percentile(x, low, axis=spatial, keepdims=True)
        hi = np.percentile(x, high, axis=spatial, keepdims=True)
        x = (x - lo) / (hi - lo + SPEC_EPS)
    elif norm.method == "zscore":
        x = (x - x.mean(axis=spatial, keepdims=True)) / (x.std(axis=spatial, keepdims=True) + SPEC_EPS)
    return x.astype(np.float32)


def reference_output(net: UNet, raw: np.ndarray, norm: NormalizationConfig) -> np.ndarray:
    """The package's output for ``raw`` ``(C, *S)``: softmax probabilities ``(K, *S_out)`` float32."""
    x = torch.from_numpy(normalise_as_spec(raw, norm)[None])
    with torch.inference_mode():
        logits = net.eval()(x)
    return torch.softmax(logits.float(), dim=1)[0].numpy()


def write_cover(path: Path, raw: np.ndarray, probabilities: np.ndarray, pipeline: Pipeline) -> Path:
    """A 2:1 PNG: the (normalised) image on the left, the prediction on the right (middle slice in 3D).

    The prediction shows the interior class for instance models, else the classes 1.. as colours.
    """
    from PIL import Image

    image = normalise_as_spec(raw, pipeline.normalization)[0]
    probs = probabilities
    while image.ndim > 2:  # 3D: the middle section
        image, probs = image[image.shape[0] // 2], probs[:, probs.shape[1] // 2]
    out_shape = probs.shape[1:]
    start = [(a - b) // 2 for a, b in zip(image.shape, out_shape)]
    image = image[start[0]: start[0] + out_shape[0], start[1]: start[1] + out_shape[1]]
    grey = np.clip(image, 0, 1)
    left = np.repeat(grey[..., None], 3, axis=-1)
    target = pipeline.target
    if target is not None and target.interior_class is not None:
        right = np.repeat(probs[target.interior_class][..., None], 3, axis=-1)
    else:
        colours = np.array([[0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], float)
        right = np.tensordot(np.moveaxis(probs, 0, -1), colours[np.arange(len(probs)) % len(colours)], axes=1)
    both = (np.clip(np.concatenate([left, right], axis=1), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(both).resize((512, 256), Image.NEAREST).save(path)
    return path


def readme(name: str, bundle: ModelBundle, image_path: Path, run_dir: Path | None, citation: str) -> str:
    """The package's README: what the model does, how it was trained, its validation metrics, citation."""
    config, pipeline = bundle.config, bundle.pipeline
    run_config = {}
    if run_dir is not None and (run_dir / "config.json").is_file():
        run_config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    data = run_config.get("data") or {}
    training = pipeline.training
    metrics = (training.validation if training else None) or {}
    lines = [
        f"# {name}", "",
        f"A U-Net (Ronneberger et al. 2015) trained and exported with biounet {__version__}: "
        f"{config.spatial_dims}D, {config.in_channels} input channel(s), {config.num_classes} classes "
        f"({', '.join(pipeline.target.class_names) if pipeline.target else 'unnamed'}), depth {config.depth}, "
        f"{config.base_channels} base channels, '{config.padding}' padding.", "",
        "## Input and output", "",
        f"- Input `raw`: intensities, normalised by the preprocessing ({pipeline.normalization.method}, "
        f"percentiles {pipeline.normalization.low}/{pipeline.normalization.high} per channel for 'percentile').",
        "- Output `probabilities`: softmax probability per class (post-processing `softmax`).",
        "- Sizes: every `min + n * step` of the input axes; tile with the output halo (or, for valid padding, "
        "the size offset) to get biounet's seamless overlap-tile result. biounet itself runs this package "
        "with `biounet predict model.zip IMAGES --out OUT` (mirrored borders, bounded memory, instances).", "",
        *_valid_note(config),
        "## Training", "",
        f"- Data: {data.get('layout') or 'folders'} layout, images `{Path(str(data.get('images') or '?')).name}`"
        f" (validation: {_validation_words(data)}).",
        f"- Recipe {training.recipe if training else '?'}, {training.steps if training else '?'} steps "
        f"(best at step {training.best_step if training else '?'}), precision "
        f"{training.precision if training else '?'}.",
        f"- Test image of this package: `{image_path.name}`.", "",
        "## Validation metrics", "",
    ]
    lines += [f"- {k}: {v:.4g}" if isinstance(v, (int, float)) else f"- {k}: {v}" for k, v in metrics.items()]
    lines += ["- (none recorded)"] if not metrics else []
    lines += ["", "## Citation", "", citation, ""]
    return "\n".join(lines)


def _valid_note(config: UNetConfig) -> list[str]:
    """For a valid-padded network: how a consumer gets an output the size of the image (bioimageio.core 0.11
    does not pad for a size offset and cannot tile such a model; it runs whole images, output cropped)."""
    if config.padding != "valid":
        return []
    from biounet.model import sizes

    per_axis = sizes.halo(config)
    halo = f"{per_axis[0]}" if len(set(per_axis)) == 1 else f"({', '.join(str(h) for h in per_axis)}, per axis)"
    return [f"- Valid padding: the output is the input minus {halo} px on each side. For an output the size of "
            f"the image, mirror the image by {halo} px on each side first (biounet predict does).", ""]


def _validation_words(data: dict) -> str:
    if data.get("val_images"):
        return f"folder `{Path(str(data['val_images'])).name}`"
    if data.get("val_names"):
        return "images " + ", ".join(str(n) for n in data["val_names"])
    return f"the last {data.get('val_split', 0.2):.0%} of the images in name order"
