"""Training step on a 512x512 tile: biounet's recipes vs MONAI UNet, MONAI BasicUNet and smp Unet.

Every model takes one 1x1x512x512 tile (the valid-padded network of biounet's paper recipe the nearest
valid size, 508, and its loss on the 324x324 output it predicts), two classes, and one optimiser step, in float32
eager and in bfloat16 autocast with channels_last (where the CPU supports bfloat16). Peers get the
same speed path, so the comparison is of the networks and recipes, not of a switch.
"""

from __future__ import annotations

import torch
from common import have, import_torchvision_stub, median_seconds

from biounet import UNet
from biounet.model import sizes
from biounet.runtime import cpu_has_bf16


def biounet_models(size: int) -> dict[str, tuple[torch.nn.Module, int, str]]:
    """name -> (model, input size, optimiser) for biounet's recipes."""
    from biounet.training.config import TrainConfig
    from biounet.training.recipes import recipe

    out = {}
    for name in ("default", "paper"):
        config = TrainConfig.from_dict(recipe(name), where=f"recipe {name}")
        model_config = config.model
        tile = sizes.nearest_valid_sizes(model_config, size)[0] or sizes.min_input_shape(model_config)[0]
        out[f"biounet {name} recipe"] = (UNet(model_config), tile, config.optim.name)
    return out


def peer_models() -> dict[str, tuple[torch.nn.Module, int, str]]:
    out: dict[str, tuple[torch.nn.Module, int, str]] = {}
    if have("monai"):
        from monai.networks.nets import BasicUNet
        from monai.networks.nets import UNet as MonaiUNet

        out["MONAI UNet (64..1024)"] = (
            MonaiUNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(64, 128, 256, 512, 1024),
                      strides=(2, 2, 2, 2), num_res_units=0), 0, "adam")
        out["MONAI BasicUNet"] = (BasicUNet(spatial_dims=2, in_channels=1, out_channels=2), 0, "adam")
    if have("segmentation_models_pytorch"):
        import_torchvision_stub()
        import segmentation_models_pytorch as smp

        out["smp Unet resnet34"] = (smp.Unet("resnet34", encoder_weights=None, in_channels=1, classes=2), 0, "adam")
    return out


def time_step(model: torch.nn.Module, size: int, optimizer_name: str, bf16: bool, repeats: int) -> float:
    model = model.to(memory_format=torch.channels_last if bf16 else torch.contiguous_format).train()
    x = torch.randn(1, 1, size, size).to(memory_format=torch.channels_last if bf16 else torch.contiguous_format)
    with torch.no_grad():
        out_shape = model(x).shape[2:]
    target = torch.randint(0, 2, (1, *out_shape))
    if optimizer_name == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.99)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), target).backward()
        optimizer.step()

    return median_seconds(step, repeats=repeats, warmup=1)


def run(quick: bool = False) -> dict:
    torch.manual_seed(0)
    size = 128 if quick else 512
    repeats = 1 if quick else 5
    models = {**biounet_models(size), **peer_models()}
    paths = [False] + ([True] if cpu_has_bf16() else [])
    rows = []
    reference = None
    for name, (model, tile, optimizer) in models.items():
        tile = tile or size
        row: dict = {"model": name, "params (M)": sum(p.numel() for p in model.parameters()) / 1e6,
                     "input": f"{tile}x{tile}"}
        for bf16 in paths:
            seconds = time_step(model, tile, optimizer, bf16, repeats)
            row["s/step bf16+CL" if bf16 else "s/step fp32"] = seconds
        best = min(v for k, v in row.items() if k.startswith("s/step"))
        if reference is None:
            reference = best
        row["best s/step"] = best
        row["peer / biounet default (best paths)"] = best / reference
        rows.append(row)
    return {"rows": rows, "notes": [
        "biounet's paper recipe (valid padding) takes 508 px (the nearest valid size to 512) and predicts 324 px; "
        "its default recipe (padding same) and the peers take and predict 512 px. Ratios > 1: the model is slower "
        "than biounet's default recipe."]}
