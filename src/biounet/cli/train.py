"""``biounet train``: train a U-Net on image/mask folders (or the DSB 2018 or section-stack layout) into a run
directory."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from biounet.cli import options
from biounet.data.finite import NAN_POLICIES

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
  --preset NAME              a public dataset's conventions: isbi2012 (--images may hold train/image and
                             train/label), dsb2018, vnc (ssTEM stack: raw/NN.tif + a binary mask folder
                             per structure; membranes, spacing 50,4.6,4.6 nm, sections 12-14 validate),
                             vnc-classes (background, membrane, mitochondria, synapse).
  --spacing Z,Y,X            voxel (or Y,X pixel) size, any unit: 3D pooling, weight map and cells use it.
  --z-context K              2.5D (2D network, section stack): K sections on each side as extra channels.

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
  Metrics: membranes: adapted Rand error at the best threshold and pixel error; instances: the DSB mean
  AP (IoU 0.5..0.95), AP50 and F1 at IoU 0.5 at the best seed threshold (0.3..0.9), smallest seed (8,
  16 or 32 px) and seed height (0, 0.15, 0.3), then the best foreground threshold (0.4..0.7) for them,
  and foreground IoU; semantic: mean IoU and Dice. The best model by the first metric (--set
  select_by=f1 to choose another) is kept, with the settings that gave it: biounet predict uses them
  for instances. The report shows the worst validation images with their missed, false, merged and
  split objects drawn.

RECIPES AND CONFIGURATION
  --recipe default (padding same, batch norm, AdamW + cosine, a moving average of the weights, 256 px
  tiles, batch 4, cross-entropy with the eq.-2 border weights at w0 = 25 (the paper: 10), elastic
  deformation; 32 channels and lr 1e-3 on a GPU or a CPU with bfloat16, 16 channels and lr 3e-3 on a
  CPU that computes in float32 only, and for touching objects (the DSB nuclei) on every CPU) or
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

DATA-PARALLEL TRAINING
  --nproc N runs this command under torchrun with N processes on this machine (the same as
  torchrun --nproc-per-node N -m biounet train ...; on a cluster use torchrun or srun + torchrun). Each
  process trains on --batch-size tiles, a step averages the gradients of all N * --batch-size tiles, and
  process 0 alone validates and writes RUN_DIR. Batch norm becomes SyncBatchNorm on GPUs and group norm
  on CPUs; --resume works as with one process. Threads per process: the cores / N (--threads overrides).

STOPPING
  Ctrl-C or SIGTERM (a cluster scheduler's warning): the current step is finished, a checkpoint and the
  model are saved, the command to --resume is printed, exit 130 / 143. A second Ctrl-C stops at once
  (every file is written atomically). Before the first step the configuration is checked against the
  network's size rules and this machine's memory, so a run that cannot fit stops at once.

EXAMPLES
  biounet train --preset isbi2012 --images data/isbi2012_em --out runs/isbi --max-minutes 60
  biounet train --preset vnc-classes --images data/drosophila_vnc_sstem --z-context 1 --out runs/vnc25d
  biounet train --preset vnc --images data/drosophila_vnc_sstem --dims 3 --tile-size 8,128,128 --out runs/vnc3d
  biounet train --dsb data/dsb2018/stage1_train --out runs/dsb --steps 2000
  biounet train --images imgs --masks masks --classes 0,128,255 --out runs/tissue --recipe paper
"""

#: Keys a resumed run may change (the rest comes from RUN_DIR/config.json).
RESUMABLE_KEYS = {"steps", "epochs", "max_minutes", "device", "num_threads", "val_every", "checkpoint_every",
                  "checkpoint_minutes", "log_every", "val_batch_size"}


@dataclass(frozen=True)
class Flag:
    """One ``biounet train`` option: its argparse spelling and the configuration key it sets.

    ``key`` is the dotted :class:`~biounet.training.config.TrainConfig` key (``None``: the option steers the
    command rather than setting a value); ``convert`` turns the parsed value into the configuration value.
    """

    flag: str
    key: str | None
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    action: str | None = None
    convert: Callable[[Any], Any] | None = None
    required: bool = False

    def add_to(self, group: Any) -> None:
        given = {"type": self.type, "choices": self.choices, "metavar": self.metavar, "action": self.action}
        given = {k: v for k, v in given.items() if v is not None}
        group.add_argument(self.flag, help=self.help, **given, **({"required": True} if self.required else {}))

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


#: The data presets (``biounet.training.recipes.PRESETS``, which imports torch; a test keeps the two equal).
PRESET_NAMES = ("isbi2012", "dsb2018", "vnc", "vnc-classes")


def _classes(text: str) -> list[int]:
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"takes whole numbers separated by commas, not {text!r}") from error


#: Every option of ``biounet train``, by help group, in the order ``--help`` shows them.
FLAGS: dict[str, tuple[Flag, ...]] = {
    "data": (
        Flag("--images", "data.images", "folder of training images", metavar="DIR"),
        Flag("--masks", "data.masks", "folder of masks, one per image (same names)", metavar="DIR"),
        Flag("--dsb", None, "a DSB 2018 folder (<id>/images, <id>/masks); means --preset dsb2018", metavar="DIR"),
        Flag("--preset", None, "conventions of a public dataset", choices=list(PRESET_NAMES)),
        Flag("--spacing", "data.spacing", "voxel size Z,Y,X (or pixel size Y,X), any one unit, e.g. 50,4.6,4.6",
             type=options.spacing, metavar="Z,Y,X"),
        Flag("--z-context", "data.z_context", "2.5D: K sections on each side as extra channels (2D model, stack)",
             type=options.non_negative_int, metavar="K"),
        Flag("--target", "data.target.kind", "what the masks hold (default semantic)",
             choices=["semantic", "instances"]),
        Flag("--instance-style", "data.target.style",
             "instances: separate touching objects (3 classes) or membranes/cells (2 classes)",
             choices=["touching", "membrane"]),
        Flag("--classes", "data.target.classes", "semantic: the mask value of each class, e.g. 0,128,255",
             type=_classes, metavar="V,V,..."),
        Flag("--class-names", "data.target.class_names", "one name per class (for reports)", type=_names,
             metavar="NAME,..."),
        Flag("--boundary-width", "data.target.boundary_width", "instances: boundary width in pixels (1)", type=int,
             metavar="PX"),
        Flag("--distance", "data.target.distance", "touching objects: also learn each object pixel's distance to its "
             "border (one more output channel); instances take their seeds and watershed landscape from it",
             action="store_true"),
        Flag("--membrane-value", "data.target.membrane_value", "membrane style: mask value of membrane (0)",
             type=int, metavar="V"),
        Flag("--dims", "model.spatial_dims", "2D or 3D network (default 2)", type=int, choices=[2, 3]),
        Flag("--val-images", "data.val_images", "separate validation images (same layout)", metavar="DIR"),
        Flag("--val-masks", "data.val_masks", "masks of the validation images", metavar="DIR"),
        Flag("--val-split", "data.val_split", "fraction held out for validation (0.2)", type=float, metavar="F"),
        Flag("--val-names", "data.val_names", "names (file stems / DSB ids) of validation images", type=_names,
             metavar="NAME,..."),
        Flag("--foreground-prob", "data.foreground_prob",
             "probability of centring a tile on an object/boundary/membrane pixel (0)", type=float, metavar="P"),
        Flag("--normalization", "data.normalization.method", "intensity normalisation (percentile 1-99.8 per image)",
             choices=["percentile", "minmax", "zscore", "none"]),
        Flag("--nan-policy", "data.nan_policy",
             "images with NaN/infinite pixels: refuse (default) or fill them with the image's median",
             choices=list(NAN_POLICIES)),
    ),
    "recipe and configuration": (
        Flag("--config", None, "YAML/TOML/JSON configuration (sections as in config.json)", metavar="FILE"),
        Flag("--recipe", None, "how to train (default: default)", choices=["default", "paper"]),
        Flag("--set", None, "set any configuration key, e.g. optim.weight_decay=0 (repeatable)", action="append",
             metavar="KEY=VALUE"),
    ),
    "network": (
        Flag("--depth", "model.depth", "poolings (4 in the paper)", type=int),
        Flag("--base-channels", "model.base_channels", "channels of the first level (64 in the paper)", type=int),
        Flag("--padding", "model.padding", "valid (the paper) or same", choices=["valid", "same"]),
        Flag("--norm", "model.norm", "normalisation layers", choices=["none", "batch", "instance", "group"],
             convert=lambda norm: None if norm == "none" else norm),
        Flag("--dropout", "model.dropout", "dropout at the bottleneck", type=float),
    ),
    "training": (
        Flag("--out", None, "run directory (created)", metavar="RUN_DIR", required=True),
        Flag("--steps", "steps", "optimiser steps", type=int),
        Flag("--epochs", "epochs", "instead of --steps: passes over the training pixels", type=float),
        Flag("--max-minutes", "max_minutes",
             "wall-clock budget; stops in time with a checkpoint (without --steps/--epochs the only end)",
             type=float, metavar="N"),
        Flag("--tile-size", "tile_shape", "input tile in pixels, N or N,N (raised to a valid size)",
             type=options.tile_size, metavar="N[,N]", convert=lambda n: [n] if isinstance(n, int) else list(n)),
        Flag("--batch-size", "batch_size", "tiles per step", type=int),
        Flag("--lr", "optim.lr", "peak learning rate", type=float),
        Flag("--optimizer", "optim.name", "optimiser", choices=["sgd", "adamw"]),
        Flag("--schedule", "optim.schedule", "learning-rate schedule", choices=["cosine", "poly", "constant"]),
        Flag("--loss", "loss.name", "loss (wce: the paper's weighted CE)", choices=["wce", "ce", "dice", "dice_ce"]),
        Flag("--val-every", "val_every", "validate and checkpoint every N steps", type=int, metavar="N"),
        Flag("--checkpoint-every", "checkpoint_every", "also checkpoint every N steps", type=int, metavar="N"),
        Flag("--seed", "seed", "random seed (same seed, same run)", type=int),
        Flag("--resume", None, "continue the run in RUN_DIR from its last checkpoint", action="store_true"),
        Flag("--overwrite", None, "start again in a RUN_DIR that holds a run", action="store_true"),
    ),
    "runtime": (
        Flag("--precision", "precision", "auto: bf16 on CPUs with AVX-512 BF16/AMX and on GPUs, else fp32",
             choices=["auto", "fp32", "bf16", "fp16"]),
        Flag("--device", "device", "auto, cpu, cuda, cuda:1, ..."),
        Flag("--threads", "num_threads", "PyTorch CPU threads (of each process)", type=int),
        Flag("--nproc", None, "train data-parallel with N processes on this machine (starts torchrun)", type=int,
             metavar="N"),
        Flag("--no-progress", None, "no progress bar", action="store_true"),
        Flag("--quiet", None, "only warnings and errors", action="store_true"),
    ),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a U-Net on image/mask folders into a run directory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for title, flags in FLAGS.items():
        group = parser.add_argument_group(title)
        for flag in flags:
            flag.add_to(group)
    parser.set_defaults(func=run_command, set=[])


def cli_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration layer given by the flags (only those given), then the ``--set`` assignments."""
    layer: dict[str, Any] = {}

    def put(path: str, value: Any) -> None:
        node = layer
        *parents, key = path.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value

    if args.dsb:
        put("data.images", args.dsb)
        put("data.layout", "dsb")
    for flag in (flag for flags in FLAGS.values() for flag in flags if flag.key):
        value = getattr(args, flag.dest)
        if value is not None and value is not False:  # a switch not given sets nothing (the file or preset may)
            put(flag.key, flag.convert(value) if flag.convert else value)
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
    chosen = merge(merge(preset(preset_name) if preset_name else {}, file_layer), flags)
    layers = merge(recipe(recipe_name, chosen.get("data", {}).get("target")), chosen)
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
    """Train (biounet's messages go to stderr through :func:`biounet.cli.main.main`)."""
    from biounet.training.interrupts import Interrupted, exit_status

    if args.nproc is not None and "WORLD_SIZE" not in os.environ:  # not yet inside torchrun: start it
        from biounet.training.config import ConfigError
        from biounet.training.launch import run_torchrun, torchrun_command

        if args.nproc < 1:
            raise ConfigError(f"--nproc must be >= 1, not {args.nproc}")
        return run_torchrun(torchrun_command(args.nproc, forwarded_args(args)))
    try:
        return _run(args)
    except Interrupted as stop:  # before the first step, or a second signal while saving
        if os.environ.get("RANK", "0") != "0":  # one process of a data-parallel run speaks
            return exit_status(stop.signum)
        saved = "its last checkpoint is kept" if (Path(args.out) / "state").is_dir() else "nothing was saved"
        print(f"biounet: stopped by {stop}; {saved}. Continue with: biounet train --out "
              f"{shlex.quote(args.out)} --resume", file=sys.stderr)
        return exit_status(stop.signum)


def _run(args: argparse.Namespace) -> int:
    from biounet.training.config import ConfigError
    from biounet.training.interrupts import exit_status
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
        if args.overwrite and os.environ.get("RANK", "0") == "0":
            clear_run_dir(run_dir)
    result = train(config, run_dir, resume=args.resume, progress=not args.no_progress, source_config=source)
    if result.stopped_by in ("SIGINT", "SIGTERM"):  # the trainer said how to continue
        return exit_status(getattr(signal, result.stopped_by))
    if os.environ.get("RANK", "0") != "0":
        return 0
    best = result.best
    summary = f"; best {best['metric']} {best['value']:.4f} at step {best['step']}" if best else ""
    print(f"trained {result.steps} steps ({result.stopped_by}){summary}; model: {run_dir / 'model.safetensors'}")
    print(f"segment images with: biounet predict {run_dir} IMAGES... --out OUT_DIR")
    return 0


def forwarded_args(args: argparse.Namespace) -> list[str]:
    """The arguments of this ``biounet train`` without ``--nproc``: what each torchrun worker is given."""
    argv: list[str] = []
    for flag in (flag for flags in FLAGS.values() for flag in flags if flag.flag != "--nproc"):
        value = getattr(args, flag.dest)
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag.flag)
        elif flag.flag == "--set":
            argv += [part for item in value for part in ("--set", item)]
        elif isinstance(value, (list, tuple)):
            argv += [flag.flag, ",".join(map(str, value))]
        else:
            argv += [flag.flag, str(value)]
    return argv


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
