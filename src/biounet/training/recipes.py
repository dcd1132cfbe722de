"""Named training recipes (how to train) and data presets (what the shared datasets look like).

Recipes:

* ``"paper"``: Ronneberger et al. 2015 as published: the 64..1024-channel network with unpadded
  convolutions, no normalisation and dropout 0.5; one 572x572 tile per step (the paper favours large
  tiles over large batches); SGD with momentum 0.99; cross-entropy weighted per pixel by the eq.-2
  weight map (w0 = 10, sigma = 5 pixels) and class balance; elastic deformation on a 3x3 grid with
  10-pixel standard deviation plus shifts, rotations and grey-value changes; He initialisation (the
  model's). The paper does not state the learning rate or the number of steps: 0.01 and 10,000 here.
* ``"default"``: biounet's default, chosen by validation results on the shared data (below): 32..512
  channels (16..256 on float32-only CPUs, below), padding "same" with batch norm, AdamW (lr 1e-3, weight
  decay 1e-4) with warm-up and cosine decay, an exponential moving average of the weights (decay 0.99)
  for validation and the saved models, cross-entropy weighted by the eq.-2 border term at w0 = 25
  (the paper: 10; sigma = 5 px) but without the class-frequency term w_c, elastic + rotations + flips +
  intensity augmentation, 256x256 tiles, batch 4.

  Why, measured on 2 CPU cores with AVX-512 BF16 (bfloat16 autocast; ISBI 2012: train on slices 0-17,
  validate on 18-21, 20 minutes; adapted Rand error, lower is better):

  - the earlier default (valid padding, one 572 px tile a step, no average): best 0.100, and from one
    validation to the next 0.10-0.27. Padding "same" on 256 px tiles, batch 4, supervises 1.7x more
    pixels a step at about the same speed (a valid 572 tile predicts only 388x388);
  - a plain recipe on those tiles (no elastic deformation, no border term, class-weighted
    cross-entropy, no average): best 0.062 (0.064 with 8-fold test-time augmentation);
  - this recipe: best 0.056 (0.054 with 8-fold test-time augmentation), and steadier: 0.056-0.063 at
    every validation from step 450 (of 1,276) on.

  Why no w_c: measured on the shared DSB 2018 nuclei (15 min, last 20 % for validation), the per-image
  inverse-frequency w_c weights the thin boundary class about 16x, the network then over-predicts it and
  the validation scores fall as training goes on (F1 0.874 -> 0.80, foreground IoU 0.771 -> 0.68);
  without it they rise (best F1 0.899, foreground IoU 0.851).  ``--set loss.class_balance=true``
  restores it.

  On a CPU that computes in float32 only (no CUDA, no AVX-512 BF16 or AMX; measured on a 2-core AMD EPYC
  of the Zen 3 generation) the default recipe is fitted to the machine (:data:`FLOAT32_CPU_DEFAULT`):
  16..256 channels at learning rate 3e-3. There a training step of 4 x 256 px tiles takes 4.1 s at 32
  channels and 1.1 s at 16, so 20 minutes are about 290 steps against about 1,050. Measured there, at 16
  channels, same split and budget as above:

  - ISBI 2012, lr 1e-3: best 0.069 (step 300), then 0.085-0.12; lr 3e-3: best 0.049 (step 400), then
    0.054-0.061 at every validation; lr 1e-2: best 0.049 (step 800), 0.052-0.062 from step 300 on.
    Tried at lr 1e-3 without gain: w_c on (0.070), depth 5 (0.078), a clDice term of weight 0.5
    (0.078), one 512 px tile a step (worse throughout). The plain recipe (as above, 16 channels, lr
    3e-3): best 0.055 (step 400), 0.052 with 8-fold test-time augmentation, against 0.049 and 0.049
    for this recipe. (Those runs validate every 100 steps; the accuracy section of ``make bench``, every
    250: this recipe 0.045 at step 750 of 1,254.)
  - DSB 2018 (15 min): lr 1e-3: F1 0.884, foreground IoU 0.836; lr 3e-3: 0.887 / 0.844; at lr 1e-3,
    Dice + cross-entropy 0.875 / 0.825 and no border term (w0 = 0) 0.858 / 0.838. (Seeds at the fixed
    threshold 0.5 and 8 px; chosen by validation, as now, the lr 3e-3 model's F1 is 0.901.)

  Why w0 = 25 (measured there, lr 3e-3, ISBI every 100 steps): the border term is what makes the network
  close the faint membranes whose gaps merge cells, and the Rand error is all about those merges. At w0 = 10
  the best threshold was nearly always 0.9, the top of the sweep (too little membrane); at 25 it is 0.5-0.7.
  ISBI: w0 = 10 best 0.049 (then 0.054-0.061); w0 = 25 best 0.042 (step 1,059; 0.042-0.046 at every
  validation from step 700 on; 0.040 with 8-fold test-time augmentation), and with seed 1 0.034 (step 500;
  0.039-0.043 later), with seed 2 0.037 (step 1,000), with seed 3 0.070 (step 800), with seed 4 0.061 (step
  800), with the default seed again (``make bench``) 0.046 (step 700; under a time budget the schedule
  follows the clock, so runs differ); w0 = 50 best 0.048, then 0.059. DSB: w0 = 25 F1 0.904, foreground IoU
  0.844 (seed 1: 0.901 / 0.843; ``make bench``: 0.904 / 0.843), beside 0.901 / 0.844 at w0 = 10 (all with
  the seeds chosen by validation).

  Tried on top of it (ISBI, seed 0), without gain: batch 2 instead of 4 (twice the steps a minute): best
  0.063 over its first 1,200 steps (12 of the 20 minutes; batch 4 reaches 0.050 in that time), best
  threshold mostly 0.8-0.9 again; depth 5: best 0.082 (step 400 of 900), 0.083-0.089 later; no dropout: best
  0.043 (step 1,070 of 1,070; 0.045-0.048 from step 700); the slices above and below as two more input
  channels (2.5D; the neighbours of slices 0 and 21 mirrored): best 0.042 (step 800 of 1,050), best
  threshold 0.9 from step 700 on; border-weight sigma 8 px instead of 5: best 0.052 (step 700 of 1,089),
  0.063-0.070 later; sigma 3 px: best 0.052 (step 1,094 of 1,094), best threshold 0.8-0.9 throughout (too
  little membrane, as at w0 = 10); a clDice term of weight 0.5: best 0.055 (step 800 of 951; a step is about
  10 % slower), best threshold 0.9 at most validations (too little membrane again). Six runs of the default
  itself (seeds 0-4, seed 0 twice) gave 0.034-0.070, median 0.044, so a single run cannot show a difference
  of 0.01; the best of these tries (2.5D 0.042, no dropout 0.043) are at that median, no clear gain. 8-fold
  test-time augmentation on the best models of seeds 0, 1 and 2: 0.040, 0.033 and 0.041 (without: 0.042,
  0.034, 0.037), so it does not reliably help here. DSB without dropout: F1 0.904, foreground IoU 0.843
  (step 750), as with it.

  Why elastic deformation and free rotations stay (ISBI, seed 0): without them (flips, 90-degree rotations
  and grey values kept) the network learns faster at first (0.049 at step 400, where the five default runs
  validated there stood at 0.070-0.099) but then stalls: best 0.045 (step 700 of 1,077), 0.047-0.055 later,
  inside the spread of the default (best 0.034-0.070; seeds 0-2 end at 0.038-0.042). On DSB the same change
  gives F1 0.902 / foreground IoU 0.846 (step 783), the default's 0.904 / 0.844 within the spread of seeds.

Presets (layered on top of a recipe):

* ``"isbi2012"``: ISBI 2012 EM membranes: ``image``/``label`` folders of 0/255 PNGs, 0 = membrane; 2
  classes membrane / interior; cells = connected interiors.
* ``"dsb2018"``: 2018 Data Science Bowl nuclei: ``<id>/images/<id>.png`` + one mask per nucleus in
  ``<id>/masks/``; 3 classes background / interior / boundary.
"""

from __future__ import annotations

from typing import Any

from biounet.training.config import ConfigError, merge

RECIPES: dict[str, dict[str, Any]] = {
    "default": {
        "recipe": "default",
        "model": {"depth": 4, "base_channels": 32, "padding": "same", "norm": "batch", "dropout": 0.1},
        "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "schedule": "cosine", "warmup_steps": 100,
                  "ema": 0.99},
        "loss": {"name": "wce", "w0": 25.0, "sigma": 5.0, "class_balance": False},
        "augmentation": {"elastic": True, "rotate": True, "rotate90": True, "flip": True},
        "tile_shape": [256],
        "batch_size": 4,
        "steps": 3000,
        "val_every": 250,
        "precision": "auto",
    },
    "paper": {
        "recipe": "paper",
        "model": {"depth": 4, "base_channels": 64, "padding": "valid", "norm": None, "dropout": 0.5,
                  "upsampling": "transposed"},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.99, "weight_decay": 0.0, "schedule": "constant",
                  "warmup_steps": 0},
        "loss": {"name": "wce", "w0": 10.0, "sigma": 5.0, "class_balance": True},
        "augmentation": {"elastic": True, "elastic_grid": 3, "elastic_std": 10.0, "rotate": True,
                         "rotate90": True, "flip": True},
        "tile_shape": [572],
        "batch_size": 1,
        "steps": 10000,
        "val_every": 500,
        "precision": "auto",
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "isbi2012": {
        "data": {
            "layout": "folders",
            "preset": "isbi2012",
            "target": {"kind": "instances", "style": "membrane", "membrane_value": 0},
        },
    },
    "dsb2018": {
        "data": {
            "layout": "dsb",
            "preset": "dsb2018",
            "target": {"kind": "instances", "style": "touching", "boundary_width": 1},
        },
    },
}


#: What the default recipe changes on a CPU that computes in float32 only (no CUDA, no native bf16):
#: a network of half the width at a higher learning rate (see the module docstring for the measurements).
FLOAT32_CPU_DEFAULT: dict[str, Any] = {"model": {"base_channels": 16}, "optim": {"lr": 3e-3}}


def default_for_this_machine() -> dict[str, Any]:
    """The layer that fits the default recipe to this machine: empty where ``precision="auto"`` trains in
    reduced precision on the default device (a CUDA GPU, a CPU with AVX-512 BF16 or AMX), else
    :data:`FLOAT32_CPU_DEFAULT`."""
    from biounet import runtime

    fast = runtime.resolve_precision("auto", runtime.default_device()) != "fp32"
    return {} if fast else _copy(FLOAT32_CPU_DEFAULT)


def recipe(name: str) -> dict[str, Any]:
    """The configuration layer of recipe ``name`` (a nested dict, see :class:`TrainConfig`).

    The default recipe is fitted to this machine (:func:`default_for_this_machine`), so the saved
    configuration holds the width and learning rate that were used.
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r} (choose from {', '.join(RECIPES)})")
    layer = _copy(RECIPES[name])
    return merge(layer, default_for_this_machine()) if name == "default" else layer


def preset(name: str) -> dict[str, Any]:
    """The configuration layer of data preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown data preset {name!r} (choose from {', '.join(PRESETS)})")
    return _copy(PRESETS[name])


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
