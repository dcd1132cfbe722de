"""Building a run: the loss and the optimiser."""

from __future__ import annotations

import numpy as np
import pytest
from test_trainer import tiny_config, write_synthetic_dsb

from biounet.training.config import ConfigError
from biounet.training.recipes import preset
from biounet.training.setup import build_criterion


def test_cldice_term_follows_the_target_and_refuses_a_missing_class():
    membrane = tiny_config(preset("isbi2012"), loss={"cldice": 0.5})
    touching = tiny_config(preset("dsb2018"), loss={"cldice": 0.5})
    assert build_criterion(membrane).cldice_class == 0 and build_criterion(touching).cldice_class == 2
    assert build_criterion(tiny_config(preset("isbi2012"))).cldice_weight == 0
    with pytest.raises(ConfigError, match="cldice_class"):
        build_criterion(tiny_config(preset("isbi2012"), loss={"cldice": 0.5, "cldice_class": 2}))


def test_a_distance_output_adds_its_term_to_the_class_loss_and_a_channel_to_the_network(tmp_path):
    import torch

    from biounet.training.setup import build_run
    from biounet.training.step import forward_loss

    root = tmp_path / "stage1_train"
    write_synthetic_dsb(root, 2)
    config = tiny_config(preset("dsb2018"), data={"images": str(tmp_path), "val_split": 0.5,
                                                     "target": {"distance": True}}, loss={"distance_weight": 0.3})
    parts = build_run(config, tmp_path / "run")
    assert parts.model_config.num_classes == 4 and parts.model.head.out_channels == 4
    loss = parts.criterion.loss
    assert (loss.distance_channel, loss.distance_weight, loss.classes.name) == (3, 0.3, "wce")
    for sample in parts.train_data.samples:
        assert sample.distance is not None and sample.distance.shape == sample.target.classes.shape
    batch = parts.sampler.batch(2, np.random.default_rng(0))
    assert batch.distances.shape == batch.labels.shape and batch.weights is not None
    assert (batch.distances[batch.labels == 0] < 0.5).all() and batch.distances.max() > 0.5
    value = forward_loss(parts, batch)
    assert torch.isfinite(value) and parts.criterion.value == pytest.approx(float(value))
