"""The loss of a network with a distance output: class loss on the class channels plus the distance BCE."""

from __future__ import annotations

import pytest
import torch

from biounet.losses import LOSS_NAMES, ClassAndDistanceLoss, build_loss, distance_loss


def batch(seed: int = 0, classes: int = 3, shape: tuple[int, ...] = (2, 9, 11)):
    """Logits ``(B, classes + 1, *S)`` (the last one the distance logit), class targets, weights, distances."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape[0], classes + 1, *shape[1:], generator=generator)
    target = torch.randint(0, classes, shape, generator=generator)
    weight = 1 + 4 * torch.rand(shape, generator=generator)
    distance = torch.where(target > 0, torch.rand(shape, generator=generator), torch.zeros(shape))
    return logits, target, weight, distance


def bce_by_hand(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    probability = torch.sigmoid(logits.double())
    return -(target * probability.log() + (1 - target) * (1 - probability).log()).mean()


def test_distance_loss_is_the_mean_bce_over_every_pixel_in_float32():
    logits, _, _, distance = batch()
    value = distance_loss(logits[:, 3].bfloat16(), distance)
    assert value.dtype == torch.float32
    assert float(distance_loss(logits[:, 3], distance)) == pytest.approx(float(bce_by_hand(logits[:, 3], distance)))
    background = distance == 0  # the background counts too: its target is 0
    assert background.float().mean() > 0.2
    only_objects = bce_by_hand(logits[:, 3][~background], distance[~background])
    assert float(distance_loss(logits[:, 3], distance)) != pytest.approx(float(only_objects))
    with pytest.raises(ValueError, match="distance target has shape"):
        distance_loss(logits[:, 3], distance[:, :-1])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_with_weight_zero_the_loss_is_the_class_loss_of_the_first_channels(name):
    logits, target, weight, distance = batch()
    options = {"cldice_weight": 0.5, "cldice_class": 2} if name == "wce" else {}
    plain = build_loss(name, **options)(logits[:, :3], target, weight)
    combined = ClassAndDistanceLoss(build_loss(name, **options), distance_channel=3, distance_weight=0.0)
    assert float(combined(logits, target, weight, distance)) == pytest.approx(float(plain), rel=1e-6)
    louder = logits.clone()
    louder[:, 3] = 50.0  # the class loss never sees the distance logit (the softmax is over the classes only)
    class_loss, _ = combined.terms(louder, target, weight, distance)
    assert float(class_loss) == pytest.approx(float(plain), rel=1e-6)


def test_the_distance_term_is_added_with_its_weight_and_its_gradient_reaches_the_distance_logit():
    logits, target, weight, distance = batch(1)
    logits.requires_grad_(True)
    loss = ClassAndDistanceLoss(build_loss("wce"), distance_channel=3, distance_weight=0.7)
    value = loss(logits, target, weight, distance)
    expected = build_loss("wce")(logits[:, :3], target, weight) + 0.7 * bce_by_hand(logits[:, 3], distance)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    value.backward()
    # d/dz of 0.7 * mean BCE is 0.7 * (sigmoid(z) - t) / pixels
    by_hand = 0.7 * (torch.sigmoid(logits[:, 3].detach()) - distance) / distance.numel()
    torch.testing.assert_close(logits.grad[:, 3], by_hand, rtol=1e-5, atol=1e-8)
    assert logits.grad[:, :3].abs().sum() > 0
    logits.grad = None
    ClassAndDistanceLoss(build_loss("wce"), 3, 0.0)(logits, target, weight, distance).backward()
    assert logits.grad[:, 3].abs().max() == 0  # weight 0: the distance channel is not trained


def test_without_a_distance_channel_the_loss_is_the_class_loss_and_misuse_is_refused():
    logits, target, weight, distance = batch()
    plain = ClassAndDistanceLoss(build_loss("wce"))
    assert float(plain(logits[:, :3], target, weight)) == float(build_loss("wce")(logits[:, :3], target, weight))
    assert plain.terms(logits[:, :3], target, weight)[1] is None
    with pytest.raises(ValueError, match="no distance channel"):
        plain(logits[:, :3], target, weight, distance)
    with_distance = ClassAndDistanceLoss(build_loss("wce"), distance_channel=3)
    with pytest.raises(ValueError, match="needs a distance target"):
        with_distance(logits, target, weight)
    with pytest.raises(ValueError, match="3 class channels and the distance channel"):
        with_distance(logits[:, :3], target, weight, distance)
    with pytest.raises(ValueError, match="distance_weight"):
        ClassAndDistanceLoss(build_loss("wce"), 3, -1.0)
    with pytest.raises(ValueError, match="distance_weight"):
        ClassAndDistanceLoss(build_loss("wce"), 3, float("nan"))
