"""The eq.-2 weight maps of the training images."""

from __future__ import annotations

import numpy as np
from test_trainer import tiny_config, touching_sample

from biounet.losses import border_weights, class_balance_weights
from biounet.training.weights import attach_weight_maps, compute_weight_map, weight_instances


def test_weight_map_is_high_between_touching_cells_and_cached(tmp_path):
    config = tiny_config(data={"target": {"kind": "instances"}})
    sample = touching_sample()
    attach_weight_maps([sample], config, tmp_path)
    weight = sample.weight
    assert weight.shape == (40, 40) and weight.dtype == np.float32
    between, outer_edge, far = weight[20, 19], weight[20, 5], weight[2, 2]
    assert between > outer_edge > far and between > 5  # the border term between the cells
    cached = list(tmp_path.glob("weights-*.npy"))
    assert len(cached) == 1
    np.save(cached[0], np.full((40, 40), 7.0, np.float32))  # a second sample reads the cache
    again = touching_sample()
    attach_weight_maps([again], config, tmp_path)
    assert np.all(again.weight == 7.0)


def test_weight_map_is_one_plus_the_border_term_without_class_balance():
    sample = touching_sample()
    for balance in (False, True):
        config = tiny_config(data={"target": {"kind": "instances"}}, loss={"class_balance": balance})
        classes = sample.target.classes
        base = class_balance_weights(classes, 3)[classes] if balance else np.ones(classes.shape, np.float32)
        expected = (base + border_weights(weight_instances(sample, config), 25.0, 5.0)).astype(np.float32)
        np.testing.assert_array_equal(compute_weight_map(sample, config), expected)
