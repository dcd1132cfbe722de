"""Named training recipes (how to train) and data presets (what the shared datasets look like).

Recipes:

* ``"default"``: biounet's default: a depth-4 network of 32..512 channels with padding "same", batch norm
  and dropout 0.1; AdamW (lr 1e-3, weight decay 1e-4) with 100 warm-up steps and cosine decay, and an
  exponential moving average of the weights (decay 0.99) for validation and the saved models;
  cross-entropy weighted by the eq.-2 border term at w0 = 25 (sigma = 5 px) without the class-frequency
  term w_c; elastic deformation, free and 90-degree rotations, flips and the intensity changes of
  :class:`~biounet.augmentation.AugmentationConfig`; 256x256 tiles, batch 4; 3,000 steps, validation every
  250. It was chosen by 20-minute runs on the shared ISBI 2012 data and 15-minute runs on the DSB 2018
  nuclei, on 2-core CPUs: padding "same" on 256 px tiles supervises 1.7x more pixels a step than one valid
  572 px tile at about the same speed, and with the weight average trained better and steadier than the
  earlier default that took one such tile a step; w0 = 25 makes the network close the faint membranes
  whose gaps merge cells (w0 = 10 left too little membrane); w_c is left out because it makes the network
  over-predict the thin boundary class of the nuclei (``--set loss.class_balance=true`` restores it). On
  a CPU that computes in float32 only (no CUDA, no AVX-512 BF16 or AMX) the width and learning rate are
  fitted to the machine (:data:`NARROW_CPU_DEFAULT`: 16..256 channels at lr 3e-3), because there a step
  of 4 x 256 px tiles takes 4.1 s at 32 channels and 1.1 s at 16; touching objects (the DSB nuclei) take the
  narrow network on every CPU (:data:`NARROW_ON_ANY_CPU`). Every run measured, with its command
  and machine: ``docs/recipes.md``. These values are the defaults of
  :class:`~biounet.training.config.TrainConfig`; the fit to the machine is applied here, by :func:`recipe`.
* ``"paper"``: Ronneberger et al. 2015 as published: 64..1024 channels, unpadded convolutions, no
  normalisation, dropout 0.5, He initialisation; one 572x572 tile a step, SGD with momentum 0.99; the eq.-2
  weighted cross-entropy with class balance (w0 = 10, sigma = 5 px); elastic deformation on a 3x3 grid
  with 10 px standard deviation (lr 0.01 and 10,000 steps: the paper does not state them).

Presets (layered on top of a recipe):

* ``"isbi2012"``: ISBI 2012 EM membranes: ``image``/``label`` folders of 0/255 PNGs, 0 = membrane; 2
  classes membrane / interior; cells = connected interiors.
* ``"dsb2018"``: 2018 Data Science Bowl nuclei: ``<id>/images/<id>.png`` + one mask per nucleus in
  ``<id>/masks/``; 3 classes background / interior / boundary.
* ``"vnc"``: the ssTEM VNC stack (Gerhard et al. 2013, ``drosophila_vnc_sstem``): layout ``"sections"``
  (:mod:`biounet.data.sections`: ``stack1/raw/NN.tif`` with a folder of binary masks per structure), 2
  classes membrane / interior (glia and extracellular space count as membrane, as in ``membranes/``), the
  neurons (interiors linked across sections) as instances; voxel spacing ``[50, 4.6, 4.6]`` nm (Z, Y, X).
  The last 20 % of the sections validate (sections 12-14 of 15; a 3D model trains on the volume of
  sections 0-11). A 2D model by default, 2.5D with ``--z-context K``, 3D with ``--dims 3``. A 3D network
  also gets the section defects of serial-section EM (:data:`SSTEM_SECTIONS`): per-section elastic jitter of
  2 px, and missing (2 % of sections), slipped (2 %) and shifted (1 %) sections of up to 8 px. The stack's
  own sections are well aligned (phase correlation of neighbouring raw sections: median offset 0.85 / 0.5 px in
  y / x, largest 4.4 px), so these are rare and small: they teach robustness to other stacks and cannot help
  on this one's validation sections, which have no such defects. They act on 3D tiles only.
* ``"vnc-classes"``: the same stack with 4 semantic classes background / membrane / mitochondria /
  synapse, each class from the mask folder of its name (later classes win where masks overlap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biounet.training.config import ConfigError, merge

#: Each recipe as overrides of :class:`~biounet.training.config.TrainConfig`'s defaults, which are the
#: default recipe (fitted to the machine by :func:`default_for_this_machine`).
#: The serial-section defects of the VNC presets (3D tiles only; see :class:`~biounet.augmentation.AugmentationConfig`).
SSTEM_SECTIONS: dict[str, float] = {"section_jitter_std": 2.0, "missing_section_prob": 0.02, "slip_section_prob": 0.02,
                                    "shift_section_prob": 0.01, "misalign_max_shift": 8.0}

RECIPES: dict[str, dict[str, Any]] = {
    "default": {"recipe": "default"},
    "paper": {
        "recipe": "paper",
        "model": {"base_channels": 64, "padding": "valid", "norm": None, "dropout": 0.5},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.99, "weight_decay": 0.0, "schedule": "constant",
                  "warmup_steps": 0, "ema": None},
        "loss": {"w0": 10.0, "sigma": 5.0, "class_balance": True},
        "augmentation": {"elastic": True, "elastic_grid": 3, "elastic_std": 10.0},
        "tile_shape": [572],
        "batch_size": 1,
        "steps": 10000,
        "val_every": 500,
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
    "vnc": {
        "data": {
            "layout": "sections",
            "preset": "vnc",
            "spacing": [50.0, 4.6, 4.6],
            "target": {"kind": "instances", "style": "membrane"},
        },
        "augmentation": SSTEM_SECTIONS,
    },
    "vnc-classes": {
        "data": {
            "layout": "sections",
            "preset": "vnc-classes",
            "spacing": [50.0, 4.6, 4.6],
            "target": {"kind": "semantic", "classes": [0, 1, 2, 3],
                       "class_names": ["background", "membrane", "mitochondria", "synapse"]},
        },
        "augmentation": SSTEM_SECTIONS,
    },
}


#: What the default recipe changes on a CPU that computes in float32 only (no CUDA, no native bf16), and for
#: the targets of :data:`NARROW_ON_ANY_CPU` on every CPU: the narrow network, half the width at a higher
#: learning rate (see the module docstring; the measurements are in docs/recipes.md).
NARROW_CPU_DEFAULT: dict[str, Any] = {"model": {"base_channels": 16}, "optim": {"lr": 3e-3}}
#: Instance styles whose default network is the narrow one on a CPU with bfloat16 too: touching objects (3
#: classes), as the DSB nuclei, where in the minutes a CPU gives the narrow network's 2.5x more steps beat the
#: wider network's capacity (docs/recipes.md). Keyed on the target rather than the data preset, so that the
#: same objects from a folder, a configuration file or napari's Train widget get the same network.
NARROW_ON_ANY_CPU: tuple[str, ...] = ("touching",)


def trains_narrow_on_any_cpu(target: Mapping[str, Any] | None) -> bool:
    """Whether the target layer ``target`` (a ``data.target`` section, possibly partial) is one of
    :data:`NARROW_ON_ANY_CPU`: instances of such a style (a missing style is
    :class:`~biounet.data.targets.TargetConfig`'s default, ``"touching"``)."""
    target = target or {}
    return target.get("kind") == "instances" and target.get("style", "touching") in NARROW_ON_ANY_CPU


def default_for_this_machine(target: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The layer that fits the default recipe to this machine and the target it will learn: empty where
    ``precision="auto"`` trains in reduced precision on the default device (a CUDA GPU, a CPU with AVX-512
    BF16 or AMX), else :data:`NARROW_CPU_DEFAULT`; that too on any CPU for a ``target`` layer that
    :func:`trains_narrow_on_any_cpu`."""
    from biounet import runtime

    device = runtime.default_device()
    fast = runtime.resolve_precision("auto", device) != "fp32"
    narrow = not fast or (device.type == "cpu" and trains_narrow_on_any_cpu(target))
    return _copy(NARROW_CPU_DEFAULT) if narrow else {}


def recipe(name: str, target: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration layer of recipe ``name`` (a nested dict, see :class:`TrainConfig`).

    The default recipe is fitted to this machine and to ``target``, the ``data.target`` layer that the
    other layers (preset, file, flags, widget) will set (:func:`default_for_this_machine`), so the saved
    configuration holds the width and learning rate that were used; layers merged on top still win.
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r} (choose from {', '.join(RECIPES)})")
    layer = _copy(RECIPES[name])
    return merge(layer, default_for_this_machine(target)) if name == "default" else layer


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
