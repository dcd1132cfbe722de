"""``biounet export``: a trained model as ONNX or TorchScript, with a JSON description of the tiling."""

from __future__ import annotations

import argparse

from biounet.cli import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX, TorchScript or a bioimage.io package",
        description=(
            "Export a biounet model (a .safetensors file or a run directory from 'biounet train') for a fixed "
            "input tile shape, as ONNX (for ONNX Runtime and other tools) or TorchScript. A JSON file beside "
            "the export describes the tiling (input/output tile shape, halo, the stride multiple that keeps "
            "valid-padded tiles exact) and the pipeline (normalisation, classes), so the whole overlap-tile "
            "inference can be reproduced elsewhere."
            " With --format bioimageio, OUT is a bioimage.io model package (.zip, spec 0.5) for Fiji "
            "(deepImageJ), napari, ilastik and bioimageio.core: TorchScript, ONNX and state-dict weights for every "
            "valid size, biounet's normalisation as the spec's operations, test tensors from a validation image, "
            "a cover and a README; it is written only after bioimageio.core's model test passed on it "
            "(needs pip install \"biounet[bioimageio]\")."
        ),
    )
    parser.add_argument("model", help="model file (.safetensors) or run directory")
    parser.add_argument("out", help="output file: .onnx for ONNX, .pt for TorchScript, .zip for --format bioimageio")
    parser.add_argument(
        "--format", choices=["auto", "bioimageio"], default="auto",
        help="auto: from OUT's suffix (.onnx, .pt, .zip = bioimageio); bioimageio: a bioimage.io model package",
    )
    package = parser.add_argument_group("bioimage.io package (--format bioimageio)")
    package.add_argument("--test-image", metavar="FILE", default=None,
                         help="image for the package's test tensors (default: a validation image of the run)")
    package.add_argument("--test-size", type=int, default=256, metavar="N",
                         help="largest test-tensor size per axis in pixels (default 256)")
    package.add_argument("--name", default=None, help="the model's name in the package")
    package.add_argument("--author", action="append", default=None, metavar="NAME", help="an author (repeatable)")
    package.add_argument("--license", default="MIT", help="SPDX licence id of the package (default MIT)")
    package.add_argument("--no-test", action="store_true",
                         help="skip bioimageio.core's model test (not recommended: the zoo runs it)")
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

    if args.format == "bioimageio" or Path(args.out).suffix == ".zip":
        return _run_bioimageio(args)
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
        raise BiounetError(f"{out}: unknown export format {out.suffix!r} (use .onnx, .pt or .zip for bioimage.io)")
    description_path = out.with_suffix(out.suffix + ".json")
    description = write_export_description(description_path, bundle.model, bundle.pipeline.to_dict(), shape)
    print(f"wrote {out} (input tile {shape}, output {sizes.output_shape(config, shape)}) and {description}")
    return 0


def _run_bioimageio(args: argparse.Namespace) -> int:
    from biounet.errors import BiounetError

    try:
        from biounet.export.bioimageio import PackageInfo, export_bioimageio
    except ImportError as error:  # the extra is missing
        raise BiounetError(f'bioimage.io export needs pip install "biounet[bioimageio]" ({error})') from error
    info = PackageInfo(name=args.name, license=args.license, test_image=args.test_image, test_size=args.test_size)
    if args.author:
        info.authors = list(args.author)
    out = export_bioimageio(args.model, args.out, info, test=not args.no_test)
    tested = "" if args.no_test else "; bioimageio.core's model test passed"
    print(f"wrote {out} (bioimage.io model package, weights torchscript, onnx, pytorch_state_dict{tested})")
    return 0
