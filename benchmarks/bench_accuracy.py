"""Accuracy at a fixed CPU budget: biounet's default recipe vs MONAI UNet with a typical MONAI recipe.

Both get the same wall-clock minutes on the same split of the shared data, one after the other:

* ISBI 2012 EM: train on slices 0-17, validate on 18-21; scored by the adapted Rand error of the
  cells (connected components of ``P(interior) > t`` grown into the membrane, ground-truth membrane
  ignored) at the best threshold ``t`` in 0.1..0.9, and by the pixel error.
* DSB 2018 nuclei: the 250 shared images in the order biounet reads them (natural name order), the
  last 20 % for validation, the split of ``biounet train --dsb ... --val-split 0.2``; scored by F1 at
  IoU 0.5 of the instances and the foreground IoU.

biounet: ``biounet train`` (default recipe, the paper's weight map and elastic deformation) in a child
process, then ``biounet.predict`` on the whole validation images, without and with 8-fold test-time
augmentation.  MONAI: ``monai.networks.nets.UNet`` (32..512 channels, 2 residual units, batch norm) with
the recipe of MONAI's tutorials: DiceCE loss, Adam (lr 1e-3), random 256 px crops with
``Rand2DElasticd``, flips and 90-degree rotations, batch 4, ``sliding_window_inference`` (Gaussian,
overlap 0.25); nuclei as connected components of the foreground (MONAI has no touching-cell
separation).  Both use bfloat16 autocast + channels_last where the CPU supports it, so the comparison
is of recipes, not of a speed switch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED_DATA, have

ISBI_VAL = ["18", "19", "20", "21"]


def isbi_samples(names: list[str]):
    from biounet.data.readers import read_folder_pairs
    from biounet.data.targets import TargetConfig

    root = SHARED_DATA / "isbi2012_em" / "train"
    target = TargetConfig(kind="instances", style="membrane", membrane_value=0)
    return read_folder_pairs(root / "image", root / "label", target, names=names).samples, target


def dsb_split(quick: bool) -> tuple[list[str], list[str]]:
    from biounet.data.dsb import find_dsb
    from biounet.training.data import validation_count

    ids = [entry[0] for entry in find_dsb(SHARED_DATA / "dsb2018_nuclei_fluo256" / "stage1_train")]
    cut = len(ids) - validation_count(len(ids), 0.2)
    train, val = ids[:cut], ids[cut:]
    return (train[:8], val[:3]) if quick else (train, val)


def dsb_samples(names: list[str]):
    from biounet.data.dsb import read_dsb
    from biounet.data.targets import TargetConfig

    target = TargetConfig(kind="instances", style="touching", boundary_width=1)
    root = SHARED_DATA / "dsb2018_nuclei_fluo256" / "stage1_train"
    return read_dsb(root, target, names=names).samples, target


# ------------------------------------------------------------------------------------------------ biounet


def train_biounet(task: str, minutes: float, run_dir: Path, quick: bool) -> None:
    args = [sys.executable, "-m", "biounet", "train", "--out", str(run_dir), "--max-minutes", str(minutes),
            "--no-progress", "--overwrite"]
    if task == "isbi":
        args += ["--preset", "isbi2012", "--images", str(SHARED_DATA / "isbi2012_em"),
                 "--val-names", ",".join(ISBI_VAL[:1] if quick else ISBI_VAL), "--val-every", "100"]  # as the README
    else:
        train, val = dsb_split(quick)
        args += ["--dsb", str(SHARED_DATA / "dsb2018_nuclei_fluo256" / "stage1_train"),
                 "--val-names", ",".join(val)]
    if quick:
        args += ["--val-every", "5", "--tile-size", "188"]
    subprocess.run(args, check=True, capture_output=True, text=True)


def biounet_probabilities(run_dir: Path, samples, tta: int) -> list[np.ndarray]:
    from biounet.inference.predictor import predict
    from biounet.io.checkpoint import load_bundle

    bundle = load_bundle(run_dir)
    return [np.asarray(predict(bundle, s.image, tta=tta, output="probabilities", channel_axis="first",
                               pipeline={"normalization": {"method": "none"}}, progress=False))
            for s in samples]


# ------------------------------------------------------------------------------------------------ MONAI


def train_monai(samples, num_classes: int, minutes: float, seed: int = 0):
    """The typical MONAI recipe on in-memory samples for ``minutes`` of wall-clock time."""
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import Compose, Rand2DElasticd, RandFlipd, RandRotate90d, RandSpatialCropd, SpatialPadd

    from biounet.runtime import cpu_has_bf16

    torch.manual_seed(seed)
    bf16 = cpu_has_bf16()
    model = UNet(spatial_dims=2, in_channels=1, out_channels=num_classes, channels=(32, 64, 128, 256, 512),
                 strides=(2, 2, 2, 2), num_res_units=2, norm="batch")
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    transforms = Compose([
        SpatialPadd(keys=["image", "label"], spatial_size=(256, 256), mode="reflect"),
        RandSpatialCropd(keys=["image", "label"], roi_size=(256, 256), random_size=False),
        Rand2DElasticd(keys=["image", "label"], spacing=(30, 30), magnitude_range=(1, 3), prob=0.5,
                       rotate_range=(np.pi,), padding_mode="reflection", mode=("bilinear", "nearest")),
        RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
        RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=1),
        RandRotate90d(keys=["image", "label"], prob=0.5, max_k=3),
    ])
    transforms.set_random_state(seed)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    deadline = time.perf_counter() + minutes * 60
    steps = 0
    model.train()
    while time.perf_counter() < deadline:
        batch = [transforms({"image": s.image, "label": s.target.classes[None].astype(np.float32)})
                 for s in (samples[i] for i in rng.integers(0, len(samples), 4))]
        images = torch.stack([torch.as_tensor(np.asarray(b["image"])) for b in batch]).float()
        labels = torch.stack([torch.as_tensor(np.asarray(b["label"])) for b in batch]).float()
        if bf16:
            images = images.to(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = loss_fn(logits.float(), labels)
        loss.backward()
        optimizer.step()
        steps += 1
    return model.eval(), steps


def monai_probabilities(model, samples) -> list[np.ndarray]:
    import torch
    from monai.inferers import sliding_window_inference

    from biounet.runtime import cpu_has_bf16

    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_bf16()):
        for s in samples:
            logits = sliding_window_inference(torch.as_tensor(s.image[None]), (256, 256), 4, model,
                                              overlap=0.25, mode="gaussian", padding_mode="reflect")
            out.append(torch.softmax(logits.float(), dim=1)[0].numpy())
    return out


# ------------------------------------------------------------------------------------------------ scoring


def score_membranes(samples, probabilities) -> dict[str, float]:
    from biounet.training.validation import membrane_metrics

    metrics, _, _ = membrane_metrics(samples, probabilities)
    return {"Rand error": metrics["adapted_rand_error"], "pixel error": metrics["pixel_error"],
            "threshold": metrics["threshold"]}


def score_nuclei(samples, probabilities, target, connected_components: bool) -> dict[str, float]:
    from scipy import ndimage as ndi

    from biounet.metrics import match_instances
    from biounet.training.validation import instance_metrics

    if not connected_components:
        metrics, _, _ = instance_metrics(samples, probabilities, target)
        return {"F1 @ IoU 0.5": metrics["f1"], "foreground IoU": metrics["foreground_iou"]}
    f1, iou = [], []
    for s, p in zip(samples, probabilities):
        foreground = p[1] > 0.5
        labels, _ = ndi.label(foreground)
        f1.append(match_instances(s.target.instances, labels, iou_threshold=0.5).f1)
        truth = s.target.instances > 0
        iou.append(np.logical_and(truth, foreground).sum() / max(np.logical_or(truth, foreground).sum(), 1))
    return {"F1 @ IoU 0.5": float(np.mean(f1)), "foreground IoU": float(np.mean(iou))}


def run(quick: bool = False) -> dict:
    minutes = {"isbi": 0.15 if quick else 20.0, "dsb": 0.15 if quick else 15.0}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in ("isbi", "dsb"):
            if task == "isbi":
                val_samples, target = isbi_samples(ISBI_VAL[:1] if quick else ISBI_VAL)
                train_samples, _ = isbi_samples([str(n) for n in range(2 if quick else 18)])
            else:
                train_names, val_names = dsb_split(quick)
                val_samples, target = dsb_samples(val_names)
                train_samples, _ = dsb_samples(train_names)
            run_dir = Path(tmp) / task
            started = time.perf_counter()
            train_biounet(task, minutes[task], run_dir, quick)
            history = json.loads((run_dir / "history.json").read_text())
            steps = max((row.get("step", 0) for row in history.get("rows", [])), default=0)
            for tta in (1, 8):
                probabilities = biounet_probabilities(run_dir, val_samples, tta)
                scores = (score_membranes(val_samples, probabilities) if task == "isbi"
                          else score_nuclei(val_samples, probabilities, target, connected_components=False))
                rows.append({"task": task, "method": f"biounet default recipe, TTA {tta}", "minutes": minutes[task],
                             "steps": steps, **scores})
            rows[-1]["wall s (train+eval)"] = time.perf_counter() - started
            if not have("monai"):
                continue
            started = time.perf_counter()
            num_classes = 2
            monai_train = train_samples
            if task == "dsb":  # MONAI's typical target: foreground vs background
                for s in monai_train + val_samples:
                    s.target.classes = (s.target.instances > 0).astype(np.uint8)
            model, steps = train_monai(monai_train, num_classes, minutes[task])
            probabilities = monai_probabilities(model, val_samples)
            scores = (score_membranes(val_samples, probabilities) if task == "isbi"
                      else score_nuclei(val_samples, probabilities, target, connected_components=True))
            rows.append({"task": task, "method": "MONAI UNet, typical recipe", "minutes": minutes[task],
                         "steps": steps, **scores, "wall s (train+eval)": time.perf_counter() - started})
    return {"rows": rows, "notes": [
        "Lower is better for Rand and pixel error, higher for F1 and IoU. Same wall-clock minutes of training "
        "each, one after the other on this machine."]}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=float))
