"""How much context does a same-padded model need for its tiles to equal a whole-image pass? (docs/speed.md)

    python benchmarks/same_context.py RUN_DIR IMAGE...

For each context c (0..112 px per side) the image is cut into 128 px output tiles, each predicted from a
(128 + 2c) px input read with mirroring, and compared with one pass over the whole image mirrored by 112 px:
the largest and the mean absolute difference of the probabilities, and the share of pixels whose class flips.
bfloat16 autocast with channels_last, as biounet predicts on such a CPU, so the differences left at c = 112
(the exact receptive field) are bfloat16 rounding: the floor below which no context can go.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from biounet.data.normalization import apply_normalization, image_statistics
from biounet.inference.sources import source_for_array
from biounet.io.checkpoint import load_bundle
from biounet.io.images import read_image

STRIDE = 128
CONTEXTS = (0, 16, 32, 48, 64, 80, 96, 112)


def probabilities(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """``(K, Y, X)`` softmax of one pass over ``image`` ``(Y, X)``."""
    x = torch.from_numpy(np.ascontiguousarray(image))[None, None].contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model(x).float().softmax(1)[0].numpy()


def tiled(model: torch.nn.Module, image: np.ndarray, context: int) -> np.ndarray:
    """Halo-cropped tiles of ``STRIDE`` px with ``context`` px of mirrored context on each side."""
    height, width = image.shape
    padded = np.pad(image, context + STRIDE, mode="symmetric")
    out = np.zeros((model.config.num_classes, height, width), np.float32)
    for y in range(0, height, STRIDE):
        for x in range(0, width, STRIDE):
            tile = padded[y + STRIDE : y + 2 * STRIDE + 2 * context, x + STRIDE : x + 2 * STRIDE + 2 * context]
            kept = probabilities(model, tile)[:, context : context + STRIDE, context : context + STRIDE]
            out[:, y : y + STRIDE, x : x + STRIDE] = kept[:, : height - y, : width - x]
    return out


def main(run_dir: str, paths: list[str]) -> None:
    bundle = load_bundle(run_dir)
    model = bundle.model.eval().to(memory_format=torch.channels_last)
    rows: dict[int, list[tuple[float, float, float]]] = {c: [] for c in CONTEXTS}
    for path in paths:
        image = read_image(path)
        if image.ndim == 3:
            image = image[..., 0] if image.shape[-1] in (3, 4) else image[0]
        image = image.astype(np.float32)
        stats = image_statistics(source_for_array(image, bundle.config)[0], bundle.pipeline.normalization)
        normalised = apply_normalization(image[None], stats)[0]
        height, width = normalised.shape
        reference = probabilities(model, np.pad(normalised, 112, mode="symmetric"))[:, 112 : 112 + height,
                                                                                     112 : 112 + width]
        for context in CONTEXTS:
            result = tiled(model, normalised, context)
            difference = np.abs(result - reference).max(axis=0)
            flips = float((result.argmax(0) != reference.argmax(0)).mean())
            rows[context].append((float(difference.max()), float(difference.mean()), flips))
    for context, values in rows.items():
        v = np.array(values)
        print(f"context {context:3d}: max |dp| {v[:, 0].max():.4f}  mean |dp| {v[:, 1].mean():.5f}  "
              f"label flips {100 * v[:, 2].mean():.3f} %")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(sys.argv[1], sys.argv[2:])
