"""Weighted cross-entropy (eq. 1), soft Dice and the named losses (biounet.losses.segmentation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biounet.losses import LOSS_NAMES, SegmentationLoss, build_loss, soft_dice_loss, weighted_cross_entropy


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 12, 14, generator=generator)
    target = torch.randint(0, 3, (2, 12, 14), generator=generator)
    return logits, target


def perfect_logits(target: torch.Tensor, classes: int, margin: float = 20.0) -> torch.Tensor:
    return F.one_hot(target, classes).movedim(-1, 1).float() * margin


def test_weighted_cross_entropy_with_unit_weights_is_cross_entropy(batch):
    logits, target = batch
    expected = F.cross_entropy(logits, target)
    assert torch.allclose(weighted_cross_entropy(logits, target), expected)
    assert torch.allclose(weighted_cross_entropy(logits, target, torch.ones_like(logits[:, 0])), expected)


def test_weighted_cross_entropy_scales_with_the_weights(batch):
    logits, target = batch
    weight = torch.rand(target.shape, generator=torch.Generator().manual_seed(1))
    nll = F.cross_entropy(logits, target, reduction="none")
    assert torch.allclose(weighted_cross_entropy(logits, target, weight), (weight * nll).mean())
    doubled = weighted_cross_entropy(logits, target, 2 * weight)
    assert torch.allclose(doubled, 2 * weighted_cross_entropy(logits, target, weight))
    only_first = torch.zeros_like(weight)
    only_first[0, 0, 0] = 1.0
    assert torch.allclose(weighted_cross_entropy(logits, target, only_first), nll[0, 0, 0] / target.numel())


def test_weighted_cross_entropy_ignores_pixels(batch):
    logits, target = batch
    ignored = target.clone()
    ignored[:, :4] = -1
    expected = F.cross_entropy(logits, ignored, ignore_index=-1)
    assert torch.allclose(weighted_cross_entropy(logits, ignored), expected)
    assert weighted_cross_entropy(logits, torch.full_like(target, -1)).item() == 0.0


def test_soft_dice_is_zero_for_perfect_and_high_for_wrong_logits(batch):
    _, target = batch
    assert soft_dice_loss(perfect_logits(target, 3), target).item() < 1e-4
    wrong = perfect_logits((target + 1) % 3, 3)
    assert soft_dice_loss(wrong, target).item() > 0.99
    assert soft_dice_loss(wrong, target, include_background=True).item() > 0.99
    with pytest.raises(ValueError, match="2 classes"):
        soft_dice_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


def test_soft_dice_skips_ignored_pixels(batch):
    _, target = batch
    logits = perfect_logits(target, 3)
    noisy_target = target.clone()
    noisy_target[:, :3] = (target[:, :3] + 1) % 3
    assert soft_dice_loss(logits, noisy_target).item() > 0.05
    noisy_target[:, :3] = -1
    assert soft_dice_loss(logits, noisy_target).item() < 1e-4


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_losses_accept_bf16_logits_and_backpropagate(batch, name):
    logits, target = batch
    weight = torch.rand(target.shape)
    loss_fn = build_loss(name)
    reference = loss_fn(logits, target, weight)
    half = logits.to(torch.bfloat16).requires_grad_(True)
    loss = loss_fn(half, target, weight)
    assert loss.dtype == torch.float32 and loss.ndim == 0
    assert torch.allclose(loss, reference, rtol=0.02, atol=0.02)
    loss.backward()
    assert half.grad is not None and half.grad.dtype == torch.bfloat16 and half.grad.abs().sum() > 0


def test_named_losses_combine_as_documented(batch):
    logits, target = batch
    weight = 1 + torch.rand(target.shape)
    wce = weighted_cross_entropy(logits, target, weight)
    dice = soft_dice_loss(logits, target)
    assert torch.allclose(SegmentationLoss("wce")(logits, target, weight), wce)
    assert torch.allclose(SegmentationLoss("ce")(logits, target, weight), F.cross_entropy(logits, target))
    assert torch.allclose(SegmentationLoss("dice")(logits, target, weight), dice)
    combined = SegmentationLoss("dice_ce", dice_weight=0.5, ce_weight=2.0)(logits, target, weight)
    assert torch.allclose(combined, 0.5 * dice + 2.0 * wce)
    assert SegmentationLoss("wce").uses_weight_map and not SegmentationLoss("dice").uses_weight_map
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("focal")


def test_losses_work_on_3d_logits_and_check_shapes():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 2, 4, 6, 6, generator=generator)
    target = torch.randint(0, 2, (1, 4, 6, 6), generator=generator)
    assert torch.allclose(weighted_cross_entropy(logits, target), F.cross_entropy(logits, target))
    assert 0 < soft_dice_loss(logits, target).item() < 1
    with pytest.raises(ValueError, match="target"):
        weighted_cross_entropy(logits, target[..., :-1])
    with pytest.raises(ValueError, match="weight"):
        weighted_cross_entropy(logits, target, torch.ones(1, 4, 6, 5))
