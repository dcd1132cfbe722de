"""``biounet export``: a trained model as ONNX or TorchScript, with a JSON description of the tiling."""

from __future__ import annotations

import argparse

from biounet.cli import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX or TorchScript",
        description=(
            "Export a biounet model (a .safetensors file or a run directory from 'biounet train') for a fixed "
            "input tile shape, as ONNX (for ONNX Runtime and other tools) or TorchScript. A JSON file beside "
            "the export describes the tiling (input/output tile shape, halo, the stride multiple that keeps "
            "valid-padded tiles exact) and the pipeline (normalisation, classes), so the whole overlap-tile "
            "inference can be reproduced elsewhere."
        ),
    )
    parser.add_argument("model", help="model file (.safetensors) or run directory")
    parser.add_argument("out", help="output file: .onnx for ONNX, .pt for TorchScript")
    parser.add_argument(
        "--tile-size", type=options.tile_size, default=None, metavar="N",
        help="input tile in pixels, N or Y,X (Z,Y,X for 3D); rounded up to a size the network takes; "
             "default: about 256 pixels per axis",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from biounet.errors import BiounetError
    from biounet.export import export_onnx, export_torchscript, write_export_description
    from biounet.io.checkpoint import load_bundle
    from biounet.model import sizes

    bundle = load_bundle(args.model)
    config = bundle.model.config
    requested = options.tile_shape(args.tile_size or 256, config.spatial_dims)
    shape = sizes.valid_input_shape(config, list(requested))
    out = Path(args.out)
    if out.suffix == ".onnx":
        export_onnx(bundle.model, out, input_shape=shape)
    elif out.suffix in (".pt", ".ts", ".torchscript"):
        export_torchscript(bundle.model, out, input_shape=shape)
    else:
        raise BiounetError(f"{out}: unknown export format {out.suffix!r} (use .onnx or .pt)")
    description_path = out.with_suffix(out.suffix + ".json")
    description = write_export_description(description_path, bundle.model, bundle.pipeline.to_dict(), shape)
    print(f"wrote {out} (input tile {shape}, output {sizes.output_shape(config, shape)}) and {description}")
    return 0
