"""bfloat16 inference on real EM data agrees with float32.

Runs on every CPU: where bfloat16 is not native (no AVX-512 BF16 / AMX) torch still computes it, only
slowly (1.7 s for this small network on such a CPU), and ``precision="auto"`` does not choose it there.
"""

from __future__ import annotations

import numpy as np

from biounet import predict
from biounet.io.images import read_image


def test_bf16_matches_fp32_on_isbi(shared_data, small_unet) -> None:
    image = read_image(shared_data / "isbi2012_em" / "train" / "image" / "0.png")
    model = small_unet(base_channels=8, depth=3)
    fp32 = predict(model, image, precision="fp32", progress=False)
    bf16 = predict(model, image, precision="bf16", progress=False)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (2, 512, 512)
    assert np.abs(bf16 - fp32).max() < 0.02
    assert np.mean(bf16.argmax(axis=0) == fp32.argmax(axis=0)) >= 0.995
    assert not np.array_equal(bf16, fp32)  # the bf16 path really ran
