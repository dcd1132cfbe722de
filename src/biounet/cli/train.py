"""``biounet train``: train a U-Net on image/mask folders (or the DSB 2018 layout) into a run directory."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Train a U-Net on your annotated images and write everything 'biounet predict' needs into RUN_DIR.

DATA
  --images DIR --masks DIR   one mask per image, paired by file name without suffix: images/a.png goes
                             with masks/a.png or masks/a.tif (mask names may also end in _mask, _label,
                             _labels, _seg or _gt; names ending in a unique number are paired by it).
                             Formats: PNG, TIFF (single or multi-page), .npy, .zarr; 8/16-bit or float;
                             grayscale or multi-channel (channels first or last, found from the mask's
                             shape); 3D: multi-page TIFF stacks with --dims 3 (a 2D model trains on the
                             sections of stacks).
  --dsb DIR                  the 2018 Data Science Bowl layout: DIR/<id>/images/<id>.png and one mask
                             file per object in DIR/<id>/masks/ (DIR = stage1_train or its parent).
  --preset isbi2012|dsb2018  the conventions of a public dataset (isbi2012: --images may be the dataset
                             folder holding train/image and train/label).

MASKS (--target)
  semantic (default)   mask values are classes. Binary masks may be 0/255 or 0/1 (the convention found
                       is reported). Other values must be declared in class order: --classes 0,128,255.
  instances            masks are object ids (0 = background; a binary mask is split into connected
                       components). The network learns 3 classes: background, cell interior and a
                       boundary of --boundary-width pixels inside every cell, so touching cells are
                       separated (the paper's weighted loss puts extra weight on the gaps).
                       --instance-style membrane: masks mark membranes (value --membrane-value, 0 for
                       ISBI 2012) and cells; 2 classes membrane / interior.

VALIDATION
  On whole images with the tiled predictor, every --val-every steps: a separate set (--val-images,
  --val-masks), the last 20 % of the images in name order (--val-split), or named images (--val-names).
  Metrics: membranes: adapted Rand error at the best threshold and pixel error; instances: F1 at IoU 0.5
  at the best seed threshold (0.3..0.9) and smallest seed (8, 16 or 32 px), and foreground IoU;
  semantic: mean IoU and Dice. The best model by that metric is kept, with the threshold (and smallest
  seed) that gave it: biounet predict uses them for instances.

RECIPES AND CONFIGURATION
  --recipe default (padding same, batch norm, AdamW + cosine, a moving average of the weights, 256 px
  tiles, batch 4, cross-entropy with the eq.-2 border weights at w0 = 25 (the paper: 10), elastic
  deformation; 32 channels and lr 1e-3 on a GPU or a CPU with bfloat16, 16 channels and lr 3e-3 on a
  CPU that computes in float32 only) or
  --recipe paper (Ronneberger et al. 2015: 64..1024 channels, SGD momentum 0.99, one 572 px tile a step,
  weighted cross-entropy, elastic deformation). A YAML/TOML/JSON file (--config) with the sections of
  RUN_DIR/config.json overrides the recipe, flags override the file, and --set section.key=value sets
  anything else (e.g. --set augmentation.elastic_std=5 --set optim.warmup_steps=200).

RUN_DIR
  model.safetensors + model.json   best model with its pipeline (normalisation, classes, tile size,
                                   the seed threshold chosen by validation)
  last.safetensors                 model of the last checkpoint
  config.json                      the full configuration (reuse with --config)
  state/                           checkpoint to continue with --resume (exactly, also after a kill)
  history.csv, history.json        loss, learning rate, steps/s and validation metrics
  training_curve.png, report/      training curve, HTML report with validation overlays
  train.log, cache/                log; weight maps of the training images

AFTERWARDS
  biounet predict RUN_DIR IMAGES... --out OUT_DIR     segment new images of any size
  biounet train --out RUN_DIR --resume [--steps N]    continue a stopped or killed run

EXAMPLES
  biounet train --preset isbi2012 --images data/isbi2012_em --out runs/isbi --max-minutes 60
  biounet train --dsb data/dsb2018/stage1_train --out runs/dsb --steps 2000
  biounet train --images imgs --masks masks --classes 0,128,255 --out runs/tissue --recipe paper
"""

#: Keys a resumed run may change (the rest comes from RUN_DIR/config.json).
RESUMABLE_KEYS = {"steps", "epochs", "max_minutes", "device", "num_threads", "val_every", "checkpoint_every",
                  "checkpoint_minutes", "log_every", "val_batch_size"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a U-Net on image/mask folders into a run directory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--images", metavar="DIR", help="folder of training images")
    data.add_argument("--masks", metavar="DIR", help="folder of masks, one per image (same names)")
    data.add_argument("--dsb", metavar="DIR",
                      help="a DSB 2018 folder (<id>/images, <id>/masks); means --preset dsb2018")
    data.add_argument("--preset", choices=["isbi2012", "dsb2018"], help="conventions of a public dataset")
    data.add_argument("--target", choices=["semantic", "instances"], help="what the masks hold (default semantic)")
    data.add_argument("--instance-style", choices=["touching", "membrane"],
                      help="instances: separate touching objects (3 classes) or membranes/cells (2 classes)")
    data.add_argument("--classes", metavar="V,V,...", help="semantic: the mask value of each class, e.g. 0,128,255")
    data.add_argument("--class-names", metavar="NAME,...", help="one name per class (for reports)")
    data.add_argument("--boundary-width", type=int, metavar="PX", help="instances: boundary width in pixels (1)")
    data.add_argument("--membrane-value", type=int, metavar="V", help="membrane style: mask value of membrane (0)")
    data.add_argument("--dims", type=int, choices=[2, 3], help="2D or 3D network (default 2)")
    data.add_argument("--val-images", metavar="DIR", help="separate validation images (same layout)")
    data.add_argument("--val-masks", metavar="DIR", help="masks of the validation images")
    data.add_argument("--val-split", type=float, metavar="F", help="fraction held out for validation (0.2)")
    data.add_argument("--val-names", metavar="NAME,...", help="names (file stems / DSB ids) of validation images")
    data.add_argument("--foreground-prob", type=float, metavar="P",
                      help="probability of centring a tile on an object/boundary/membrane pixel (0)")
    data.add_argument("--normalization", choices=["percentile", "minmax", "zscore", "none"],
                      help="intensity normalisation (percentile 1-99.8 per image)")

    how = parser.add_argument_group("recipe and configuration")
    how.add_argument("--config", metavar="FILE", help="YAML/TOML/JSON configuration (sections as in config.json)")
    how.add_argument("--recipe", choices=["default", "paper"], help="how to train (default: default)")
    how.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="set any configuration key, e.g. optim.weight_decay=0 (repeatable)")

    model = parser.add_argument_group("network")
    model.add_argument("--depth", type=int, help="poolings (4 in the paper)")
    model.add_argument("--base-channels", type=int, help="channels of the first level (64 in the paper)")
    model.add_argument("--padding", choices=["valid", "same"], help="valid (the paper) or same")
    model.add_argument("--norm", choices=["none", "batch", "instance", "group"], help="normalisation layers")
    model.add_argument("--dropout", type=float, help="dropout at the bottleneck")

    run = parser.add_argument_group("training")
    run.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (created)")
    run.add_argument("--steps", type=int, help="optimiser steps")
    run.add_argument("--epochs", type=float, help="instead of --steps: passes over the training pixels")
    run.add_argument("--max-minutes", type=float, metavar="N",
                     help="wall-clock budget; stops in time with a checkpoint (without --steps/--epochs the only end)")
    run.add_argument("--tile-size", metavar="N[xN]", help="input tile in pixels (raised to a valid size)")
    run.add_argument("--batch-size", type=int, help="tiles per step")
    run.add_argument("--lr", type=float, help="peak learning rate")
    run.add_argument("--optimizer", choices=["sgd", "adamw"], help="optimiser")
    run.add_argument("--schedule", choices=["cosine", "poly", "constant"], help="learning-rate schedule")
    run.add_argument("--loss", choices=["wce", "ce", "dice", "dice_ce"], help="loss (wce: the paper's weighted CE)")
    run.add_argument("--val-every", type=int, metavar="N", help="validate and checkpoint every N steps")
    run.add_argument("--checkpoint-every", type=int, metavar="N", help="also checkpoint every N steps")
    run.add_argument("--seed", type=int, help="random seed (same seed, same run)")
    run.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its last checkpoint")
    run.add_argument("--overwrite", action="store_true", help="start again in a RUN_DIR that holds a run")

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                         help="auto: bf16 on CPUs with AVX-512 BF16/AMX and on GPUs, else fp32")
    runtime.add_argument("--device", help="auto, cpu, cuda, cuda:1, ...")
    runtime.add_argument("--threads", type=int, help="PyTorch CPU threads")
    runtime.add_argument("--no-progress", action="store_true", help="no progress bar")
    runtime.add_argument("--quiet", action="store_true", help="only warnings and errors")
    parser.set_defaults(func=run_command)


def cli_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer given by the flags (only those given)."""
    layer: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        if value is None:
            return
        node = layer
        *parents, key = path.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value

    if args.dsb:
        put("data.images", args.dsb)
        put("data.layout", "dsb")
    put("data.images", args.images)
    put("data.masks", args.masks)
    put("data.target.kind", args.target)
    put("data.target.style", args.instance_style)
    put("data.target.classes", _ints(args.classes, "--classes"))
    put("data.target.class_names", _names(args.class_names))
    put("data.target.boundary_width", args.boundary_width)
    put("data.target.membrane_value", args.membrane_value)
    put("data.val_images", args.val_images)
    put("data.val_masks", args.val_masks)
    put("data.val_split", args.val_split)
    put("data.val_names", _names(args.val_names))
    put("data.foreground_prob", args.foreground_prob)
    put("data.normalization.method", args.normalization)
    put("model.spatial_dims", args.dims)
    put("model.depth", args.depth)
    put("model.base_channels", args.base_channels)
    put("model.padding", args.padding)
    if args.norm is not None:
        layer.setdefault("model", {})["norm"] = None if args.norm == "none" else args.norm
    put("model.dropout", args.dropout)
    put("steps", args.steps)
    put("epochs", args.epochs)
    put("max_minutes", args.max_minutes)
    put("tile_shape", _tile(args.tile_size))
    put("batch_size", args.batch_size)
    put("optim.lr", args.lr)
    put("optim.name", args.optimizer)
    put("optim.schedule", args.schedule)
    put("loss.name", args.loss)
    put("val_every", args.val_every)
    put("checkpoint_every", args.checkpoint_every)
    put("seed", args.seed)
    put("precision", args.precision)
    put("device", args.device)
    put("num_threads", args.threads)
    if args.epochs is not None and args.steps is None:
        layer["steps"] = None
    for item in args.set:
        key, value = _assignment(item)
        put(key, value)
    return layer


def build_config(args: argparse.Namespace) -> tuple[Any, Path | None]:
    """The :class:`TrainConfig` of a fresh run (recipe -> preset -> file -> flags) and the file it came from."""
    from biounet.training.config import TrainConfig, merge, read_config_file
    from biounet.training.recipes import preset, recipe

    file_layer = read_config_file(args.config) if args.config else {}
    flags = cli_layer(args)
    if "max_minutes" in flags and not {"steps", "epochs"} & (set(flags) | set(file_layer)):
        flags["steps"] = None  # a time budget alone is the only end (the recipe's 3,000 steps would end it first)
    recipe_name = args.recipe or file_layer.get("recipe") or "default"
    preset_name = args.preset or ("dsb2018" if args.dsb else None) or file_layer.get("data", {}).get("preset")
    layers = recipe(recipe_name)
    if preset_name:
        layers = merge(layers, preset(preset_name))
    layers = merge(merge(layers, file_layer), flags)
    layers["recipe"] = recipe_name
    source = Path(args.config) if args.config else None
    return TrainConfig.from_dict(layers, where=args.config or "configuration"), source


def resume_config(args: argparse.Namespace, run_dir: Path) -> Any:
    """The saved configuration of ``run_dir`` with the flags a resumed run may change."""
    from biounet.training.config import TrainConfig, merge, read_config_file

    saved = read_config_file(run_dir / "config.json")
    flags = cli_layer(args)
    ignored = sorted(key for key in flags if key not in RESUMABLE_KEYS)
    if ignored:
        logging.getLogger("biounet.train").warning(
            f"--resume continues with {run_dir / 'config.json'}; ignoring the settings for: {', '.join(ignored)}"
        )
    allowed = {key: value for key, value in flags.items() if key in RESUMABLE_KEYS}
    return TrainConfig.from_dict(merge(saved, allowed), where=str(run_dir / "config.json"))


def run_command(args: argparse.Namespace) -> int:
    """Train with biounet's messages on stderr (restored afterwards: the command may run in-process)."""
    from biounet.runtime import console_logging

    with console_logging(args.quiet):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from biounet.training.config import ConfigError
    from biounet.training.trainer import clear_run_dir, train

    run_dir = Path(args.out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    exclusive = [flag for flag, value in (("--val-images", args.val_images), ("--val-split", args.val_split),
                                          ("--val-names", args.val_names)) if value is not None]
    if len(exclusive) > 1:
        raise ConfigError(f"give only one of {', '.join(exclusive)}")
    if args.resume and (run_dir / "config.json").is_file():
        config, source = resume_config(args, run_dir), None
    elif args.resume:
        raise ConfigError(f"{run_dir}: nothing to resume (no config.json); start the run without --resume")
    else:
        config, source = build_config(args)
        if args.overwrite:
            clear_run_dir(run_dir)
    result = train(config, run_dir, resume=args.resume, progress=not args.no_progress, source_config=source)
    best = result.best
    summary = f"; best {best['metric']} {best['value']:.4f} at step {best['step']}" if best else ""
    print(f"trained {result.steps} steps ({result.stopped_by}){summary}; model: {run_dir / 'model.safetensors'}")
    print(f"segment images with: biounet predict {run_dir} IMAGES... --out OUT_DIR")
    return 0


def _ints(text: str | None, flag: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as error:
        from biounet.training.config import ConfigError

        raise ConfigError(f"{flag} takes whole numbers separated by commas, not {text!r}") from error


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def _tile(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(v) for v in text.lower().replace(",", "x").split("x") if v]
    except ValueError as error:
        from biounet.training.config import ConfigError

        raise ConfigError(f"--tile-size takes N or NxN (pixels), not {text!r}") from error


def _assignment(item: str) -> tuple[str, Any]:
    import yaml

    from biounet.training.config import ConfigError

    if "=" not in item:
        raise ConfigError(f"--set takes KEY=VALUE (e.g. optim.lr=0.01), not {item!r}")
    key, text = item.split("=", 1)
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip(), value
