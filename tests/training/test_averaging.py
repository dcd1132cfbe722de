"""The moving average of the weights."""

from __future__ import annotations

from biounet.training.averaging import build_weight_average


def test_weight_average_warms_up_then_follows_the_decay():
    import torch

    model = torch.nn.BatchNorm1d(3)
    average = build_weight_average(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(2.0)
        average.update_parameters(model)  # the first update copies
        assert torch.equal(average.module.weight, model.weight)
        model.weight.fill_(13.0)
        model.num_batches_tracked.fill_(7)
        average.update_parameters(model)  # n = 1: decay min(0.5, 2 / 11), so 2 + (13 - 2) * 9 / 11 = 11
        assert torch.allclose(average.module.weight, torch.full((3,), 11.0))
        assert int(average.module.num_batches_tracked) == 7  # integer buffers are copied
        for _ in range(20):
            average.update_parameters(model)
        model.weight.fill_(1.0)
        average.update_parameters(model)  # n = 22: decay 0.5
        assert torch.allclose(average.module.weight, torch.full((3,), 7.0))
