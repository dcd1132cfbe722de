"""``biounet info``: this machine's speed paths, and a model's sizes."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show the machine's speed paths and, given a model, its architecture and valid sizes",
        description=(
            "Without arguments: versions, threads, whether this CPU runs bfloat16 natively (the fast CPU path), "
            "and CUDA devices. With a model file or run directory: its configuration, parameter count, context "
            "(halo) per side, the smallest input and the valid input sizes near a given size."
        ),
    )
    parser.add_argument("model", nargs="?", help="model file (.safetensors) or run directory")
    parser.add_argument("--size", type=int, default=512, help="show the valid input sizes nearest this size")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from biounet import __version__
    from biounet.runtime import cpu_has_bf16, default_device, resolve_precision

    device = default_device()
    print(f"biounet {__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"device: {device}; CPU bfloat16: {'yes' if cpu_has_bf16() else 'no'}; "
          f"precision 'auto' -> {resolve_precision('auto', device)}")
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            print(f"cuda:{index}: {torch.cuda.get_device_name(index)}")
    if args.model:
        from biounet.io.checkpoint import load_bundle
        from biounet.model import sizes

        bundle = load_bundle(args.model)
        config = bundle.model.config
        params = sum(p.numel() for p in bundle.model.parameters())
        print(f"model: {bundle.path}")
        print(f"config: {config.to_dict()}")
        print(f"parameters: {params:,}")
        print(f"halo (context per side): {sizes.halo(config)}; pooling stride: {sizes.total_pool_factor(config)}")
        print(f"smallest input: {sizes.min_input_shape(config)}")
        for axis in range(config.spatial_dims):
            below, above = sizes.nearest_valid_sizes(config, args.size, axis)
            print(f"axis {axis}: valid sizes nearest {args.size}: {below}, {above}")
        print(f"pipeline: {json.dumps(bundle.pipeline.to_dict())}")
    return 0
