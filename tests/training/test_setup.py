"""Building a run: the loss and the optimiser."""

from __future__ import annotations

import pytest
from test_trainer import tiny_config

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
