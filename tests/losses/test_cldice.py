"""clDice (Shit et al. 2021): soft morphology, the soft skeleton, and the topology term of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from biounet.losses import SegmentationLoss, cldice_loss, soft_skeleton
from biounet.losses.segmentation import soft_dilate, soft_erode


@pytest.mark.parametrize("spatial", [(17, 23), (5, 9, 11)])
def test_soft_morphology_equals_grey_erosion_and_dilation(spatial):
    x = torch.rand(2, 1, *spatial, generator=torch.Generator().manual_seed(0))
    cross = ndi.generate_binary_structure(len(spatial), 1)
    square = np.ones((3,) * len(spatial), dtype=bool)
    for b in range(2):
        image = x[b, 0].numpy()
        expected_erosion = ndi.grey_erosion(image, footprint=cross, mode="nearest")
        expected_dilation = ndi.grey_dilation(image, footprint=square, mode="nearest")
        np.testing.assert_array_equal(soft_erode(x)[b, 0].numpy(), expected_erosion)
        np.testing.assert_array_equal(soft_dilate(x)[b, 0].numpy(), expected_dilation)


def test_soft_skeleton_of_a_band_is_its_centre_line():
    band = torch.zeros(1, 1, 40, 40)
    band[0, 0, 10:15, 5:35] = 1.0  # 5 px thick
    skeleton = soft_skeleton(band, iterations=5)[0, 0]
    assert torch.all(skeleton[:10] == 0) and torch.all(skeleton[15:] == 0)
    assert torch.all(skeleton[12, 8:32] == 1)  # the centre row, away from the ends
    assert torch.all(skeleton[[10, 11, 13, 14], 8:32] == 0)


def _membrane_batch() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.ones(2, 64, 64, dtype=torch.long)  # class 1 = interior
    target[:, 30:34, :] = 0  # a 4 px membrane (class 0) across the tile
    membrane = torch.where(target == 0, 8.0, -8.0).unsqueeze(1)
    return torch.cat([membrane, -membrane], dim=1), target


def test_cldice_is_zero_for_a_perfect_prediction_and_penalises_a_gap_more_than_a_thickening():
    logits, target = _membrane_batch()
    assert float(cldice_loss(logits, target, structure_class=0)) < 1e-3
    gap = logits.clone()
    gap[:, :, 30:34, 28:36] = gap[:, :, 30:34, 28:36].flip(1)  # 8 px of the membrane predicted as interior
    thicker = logits.clone()
    thicker[:, :, 26:30, 28:36] = thicker[:, :, 30:34, 28:36]  # 8 px of the membrane twice as thick
    gap_loss = float(cldice_loss(gap, target, 0))
    assert gap_loss > 0.03
    assert float(cldice_loss(thicker, target, 0)) < gap_loss / 3
    # pixel-wise, the gap and the thickening are the same number of wrong pixels
    assert torch.isclose(F.cross_entropy(gap, target), F.cross_entropy(thicker, target))


def test_cldice_gradient_closes_the_gap():
    logits, target = _membrane_batch()
    logits[:, :, 30:34, 28:36] = 0.0  # undecided in the gap
    logits.requires_grad_(True)
    cldice_loss(logits, target, 0).backward()
    gap_gradient = logits.grad[:, 0, 30:34, 28:36]
    assert torch.all(gap_gradient <= 0) and gap_gradient.sum() < 0  # descent raises the membrane logit there


def test_ignored_pixels_do_not_count():
    logits, target = _membrane_batch()
    wrong = logits.clone()
    wrong[:, :, :, :20] = wrong[:, :, :, :20].flip(1)
    ignored = target.clone()
    ignored[:, :, :20] = -1
    assert float(cldice_loss(wrong, ignored, 0)) < 1e-3 < float(cldice_loss(wrong, target, 0))


def test_segmentation_loss_adds_the_weighted_cldice_term():
    logits, target = _membrane_batch()
    logits = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(3))
    plain = SegmentationLoss("wce")(logits, target)
    with_cldice = SegmentationLoss("wce", cldice_weight=0.5, cldice_class=0, cldice_iterations=3)(logits, target)
    assert torch.isclose(with_cldice, plain + 0.5 * cldice_loss(logits, target, 0, iterations=3))
