"""bfloat16 inference on real EM data agrees with float32."""

from __future__ import annotations

import numpy as np
import pytest

from biounet import predict
from biounet.io.images import read_image
from biounet.runtime import cpu_has_bf16


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 / AMX); bf16 is slow")
def test_bf16_matches_fp32_on_isbi(shared_data, small_unet) -> None:
    image = read_image(shared_data / "isbi2012_em" / "train" / "image" / "0.png")
    model = small_unet(base_channels=8, depth=3)
    fp32 = predict(model, image, precision="fp32", progress=False)
    bf16 = predict(model, image, precision="bf16", progress=False)
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (2, 512, 512)
    assert np.abs(bf16 - fp32).max() < 0.02
    assert np.mean(bf16.argmax(axis=0) == fp32.argmax(axis=0)) >= 0.995
    assert not np.array_equal(bf16, fp32)  # the bf16 path really ran
