"""Hostile-but-realistic inputs to every command, and what biounet does with each: the table of docs/reliability.md.

Run by hand (about five minutes on 2 cores; a small tmpfs is mounted for the disk-full cases when run as
root)::

    .venv/bin/python scripts/reliability_drill.py --out docs/reliability-drill.md

Every case runs ``python -m biounet ...`` in a fresh subprocess on files made here, with a time limit,
and records the exit status, the number of lines on stderr, whether a Python traceback was printed, and
the last line of stderr.  A case passes when the command exits non-zero (or zero where the input is
fine, e.g. a warning) with one line and no traceback, and the user's files are untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Case = tuple[str, str, list[str]]  # group, what, arguments (``{W}`` is the workspace)


@dataclass
class Outcome:
    group: str
    what: str
    command: str
    status: int
    lines: int
    traceback: bool
    last: str
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.traceback and self.lines <= 1 and self.status not in (-9, -7, 124)


def make_workspace(root: Path) -> None:
    """A tiny model, images and masks, and the broken files the cases use."""
    import tifffile
    import torch

    from biounet.io.checkpoint import save_model
    from biounet.io.images import write_image
    from biounet.model import UNet

    rng = np.random.default_rng(0)
    semantic = {"target": {"kind": "semantic", "class_names": ["background", "foreground"]}}
    save_model(UNet(base_channels=2, depth=2, padding="same"), root / "run", pipeline=semantic)
    save_model(UNet(base_channels=2, depth=2, padding="same"), root / "edited", pipeline=semantic)
    copy = root / "edited" / "model.json"
    copy.write_text(copy.read_text().replace("foreground", "cell"))
    save_model(UNet(spatial_dims=3, base_channels=2, depth=1, padding="same"), root / "run3d", pipeline=semantic)
    torch.save(UNet(base_channels=2, depth=1).state_dict(), root / "weights.pt")
    data = (root / "run" / "model.safetensors").read_bytes()
    (root / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (root / "empty_run").mkdir()
    images, masks = root / "images", root / "masks"
    for name in ("a", "b", "c"):
        image = (rng.random((64, 64)) * 255).astype(np.uint8)
        write_image(images / f"{name}.png", image)
        write_image(masks / f"{name}.png", ((image > 128) * 255).astype(np.uint8))
    write_image(root / "rgb.png", (rng.random((40, 40, 3)) * 255).astype(np.uint8))
    nan = rng.random((64, 64)).astype(np.float32)
    nan[3:5, 3:5] = np.nan
    tifffile.imwrite(root / "nan.tif", nan)
    inf = rng.random((64, 64)).astype(np.float32)
    inf[10, 10] = np.inf
    np.save(root / "inf.npy", inf)
    write_image(root / "nan_train" / "images" / "a.tif", nan)
    write_image(root / "nan_train" / "masks" / "a.png", ((nan > 0.5) * 255).astype(np.uint8))
    write_image(root / "nan_train" / "images" / "b.tif", rng.random((64, 64)).astype(np.float32))
    write_image(root / "nan_train" / "masks" / "b.png", (rng.random((64, 64)) > 0.5).astype(np.uint8) * 255)
    (root / "truncated.png").write_bytes((images / "a.png").read_bytes()[:60])
    (root / "empty.tif").write_bytes(b"")
    (root / "text.png").write_text("this is not an image")
    np.save(root / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (root / "pickle.npy").write_bytes(pickle.dumps([1, 2, 3]))
    np.save(root / "cube.npy", np.zeros((2, 3, 32, 32), np.float32))
    tifffile.imwrite(root / "stack.tif", (rng.random((3, 40, 40)) * 255).astype(np.uint8))
    bad = root / "bad_folder"
    for name in ("good1.png", "good2.png"):
        write_image(bad / name, (rng.random((40, 40)) * 255).astype(np.uint8))
    for name, source in (("broken.png", "truncated.png"), ("empty.tif", "empty.tif"), ("text.npy", "text.png")):
        (bad / name).write_bytes((root / source).read_bytes())
    tifffile.imwrite(bad / "nan.tif", nan)
    (root / "empty_folder").mkdir()
    (root / "a_file").write_text("a file where a folder is expected")
    write_image(root / "same" / "x.png", (rng.random((20, 20)) * 255).astype(np.uint8))
    np.save(root / "same" / "x.npy", rng.random((20, 20)).astype(np.float32))
    labels = np.zeros((32, 32), np.int32)
    labels[4:12, 4:12] = 1
    labels[20:28, 20:28] = 2
    write_image(root / "gt" / "a.tif", labels)
    write_image(root / "pred" / "a.tif", labels)
    write_image(root / "pred_scored" / "a.tif", labels)  # the case that writes --json onto its own folder
    negative = labels.copy()
    negative[0:2, 0:2] = -5
    write_image(root / "gt_negative" / "a.tif", negative)
    write_image(root / "pred_negative" / "a.tif", negative)
    write_image(root / "gt_small" / "a.tif", labels[:16, :16])
    write_image(root / "gt_float" / "a.tif", rng.random((32, 32)).astype(np.float32))
    write_image(root / "gt_other" / "zzz.tif", labels)
    (root / "user_folder" / "precious").mkdir(parents=True)
    (root / "user_folder" / "precious" / "notes.txt").write_text("mine")
    (root / "taken" / "a_probabilities.tif").mkdir(parents=True)
    (root / "taken" / "a_probabilities.tif" / "notes.txt").write_text("mine")
    (root / "model.onnx").mkdir()
    (root / "model.onnx" / "notes.txt").write_text("mine")
    write_image(root / "grey3" / "images" / "a.png", (rng.random((64, 64)) * 255).astype(np.uint8))
    write_image(root / "grey3" / "masks" / "a.png", (rng.integers(0, 3, (64, 64)) * 100).astype(np.uint8))
    write_image(root / "mismatch" / "images" / "a.png", (rng.random((64, 64)) * 255).astype(np.uint8))
    write_image(root / "mismatch" / "masks" / "a.png", np.zeros((60, 64), np.uint8))
    write_image(root / "unpaired" / "images" / "a.png", (rng.random((64, 64)) * 255).astype(np.uint8))
    write_image(root / "unpaired" / "masks" / "z.png", np.zeros((64, 64), np.uint8))


TRAIN = ["train", "--images", "{W}/images", "--masks", "{W}/masks", "--depth", "2", "--base-channels", "4",
         "--tile-size", "60", "--batch-size", "2", "--precision", "fp32", "--no-progress", "--quiet"]


def cases() -> list[Case]:
    predict = ["predict", "{W}/run"]
    return [
        ("predict", "model path that does not exist", ["predict", "{W}/nothing", "{W}/images", "--out", "{W}/o1"]),
        ("predict", "model is a torch.save pickle", ["predict", "{W}/weights.pt", "{W}/images", "--out", "{W}/o1"]),
        ("predict", "model file truncated to half",
         ["predict", "{W}/cut.safetensors", "{W}/images", "--out", "{W}/o1"]),
        ("predict", "run folder without a model", ["predict", "{W}/empty_run", "{W}/images", "--out", "{W}/o1"]),
        ("predict", "model.json edited by hand (a warning, the model is used as saved)",
         ["predict", "{W}/edited", "{W}/images/a.png", "--out", "{W}/o2", "--quiet"]),
        ("predict", "input that does not exist", [*predict, "{W}/nothing.png", "--out", "{W}/o1"]),
        ("predict", "PNG truncated to 60 bytes", [*predict, "{W}/truncated.png", "--out", "{W}/o1"]),
        ("predict", "empty .tif", [*predict, "{W}/empty.tif", "--out", "{W}/o1"]),
        ("predict", "text file named .png", [*predict, "{W}/text.png", "--out", "{W}/o1"]),
        ("predict", ".npy of Python objects", [*predict, "{W}/object.npy", "--out", "{W}/o1"]),
        ("predict", "a pickle named .npy", [*predict, "{W}/pickle.npy", "--out", "{W}/o1"]),
        ("predict", "4D .npy for a 2D model", [*predict, "{W}/cube.npy", "--out", "{W}/o1"]),
        ("predict", "RGB PNG for a one-channel model", [*predict, "{W}/rgb.png", "--out", "{W}/o3", "--quiet"]),
        ("predict", "float TIFF with NaN pixels", [*predict, "{W}/nan.tif", "--out", "{W}/o1"]),
        ("predict", "the same with --nan-policy fill", [*predict, "{W}/nan.tif", "--out", "{W}/o4", "--nan-policy",
                                                        "fill", "--quiet"]),
        ("predict", ".npy with an infinite pixel", [*predict, "{W}/inf.npy", "--out", "{W}/o1"]),
        ("predict", "folder with four bad files among six", [*predict, "{W}/bad_folder", "--out", "{W}/o1"]),
        ("predict", "the same with --skip-bad (good ones predicted, exit 1)",
         [*predict, "{W}/bad_folder", "--out", "{W}/o5", "--skip-bad", "--quiet"]),
        ("predict", "empty folder", [*predict, "{W}/empty_folder", "--out", "{W}/o1"]),
        ("predict", "glob that matches nothing", [*predict, "{W}/*.jpeg", "--out", "{W}/o1"]),
        ("predict", "two inputs with the same name", [*predict, "{W}/same", "--out", "{W}/o1"]),
        ("predict", "--out is a file", [*predict, "{W}/images/a.png", "--out", "{W}/a_file"]),
        ("predict", "an output name taken by a folder of the user",
         [*predict, "{W}/images/a.png", "--out", "{W}/taken"]),
        ("predict", "--tile-size -5", [*predict, "{W}/images", "--out", "{W}/o1", "--tile-size", "-5"]),
        ("predict", "--tile-size abc", [*predict, "{W}/images", "--out", "{W}/o1", "--tile-size", "abc"]),
        ("predict", "--threshold 1.5", [*predict, "{W}/images", "--out", "{W}/o1", "--threshold", "1.5"]),
        ("predict", "instances from a semantic model", [*predict, "{W}/images", "--out", "{W}/o1", "--output",
                                                         "instances"]),
        ("predict", "PNG output of a 3-page stack", [*predict, "{W}/stack.tif", "--out", "{W}/o1", "--format", "png"]),
        ("predict", "logits as PNG", [*predict, "{W}/images", "--out", "{W}/o1", "--format", "png", "--output",
                                      "logits"]),
        ("predict", "2D image for a 3D model", ["predict", "{W}/run3d", "{W}/images/a.png", "--out", "{W}/o1"]),
        ("evaluate", "--json onto the prediction folder",
         ["evaluate", "{W}/pred_scored", "{W}/gt", "--json", "{W}/pred_scored"]),
        ("evaluate", "--csv onto a folder of the user", ["evaluate", "{W}/pred", "{W}/gt", "--csv",
                                                         "{W}/user_folder"]),
        ("evaluate", "ground truth with negative labels", ["evaluate", "{W}/pred", "{W}/gt_negative", "--task",
                                                           "instances"]),
        ("evaluate", "semantic ground truth with a class -5", ["evaluate", "{W}/pred", "{W}/gt_negative", "--task",
                                                               "semantic"]),
        ("evaluate", "prediction with negative labels", ["evaluate", "{W}/pred_negative", "{W}/gt", "--task",
                                                         "instances"]),
        ("evaluate", "prediction and truth of different sizes", ["evaluate", "{W}/pred", "{W}/gt_small"]),
        ("evaluate", "float ground truth that is not a mask", ["evaluate", "{W}/pred", "{W}/gt_float"]),
        ("evaluate", "no file names in common", ["evaluate", "{W}/pred", "{W}/gt_other"]),
        ("evaluate", "--thresholds 2", ["evaluate", "{W}/pred", "{W}/gt", "--thresholds", "2"]),
        ("evaluate", "ground truth folder missing", ["evaluate", "{W}/pred", "{W}/nothing"]),
        ("train", "--images folder missing",
         [*TRAIN[:2], "{W}/nothing", *TRAIN[3:], "--out", "{W}/t1", "--steps", "2"]),
        ("train", "masks of another size", ["train", "--images", "{W}/mismatch/images", "--masks",
                                            "{W}/mismatch/masks", *TRAIN[5:], "--out", "{W}/t1", "--steps", "2"]),
        ("train", "no mask with an image's name",
         ["train", "--images", "{W}/unpaired/images", "--masks", "{W}/unpaired/masks", *TRAIN[5:], "--out", "{W}/t1",
          "--steps", "2"]),
        ("train", "mask values 0/100/200 without --classes", ["train", "--images", "{W}/grey3/images", "--masks",
                                                              "{W}/grey3/masks", *TRAIN[5:], "--out", "{W}/t1",
                                                              "--steps", "2"]),
        ("train", "float image with NaN pixels",
         ["train", "--images", "{W}/nan_train/images", "--masks", "{W}/nan_train/masks", *TRAIN[5:], "--out",
          "{W}/t1", "--steps", "2"]),
        ("train", "--steps 0", [*TRAIN, "--out", "{W}/t1", "--steps", "0"]),
        ("train", "--depth 50", [*TRAIN[:5], "--depth", "50", *TRAIN[7:], "--out", "{W}/t1", "--steps", "2"]),
        ("train", "--tile-size 100000", [*TRAIN[:10], "100000", *TRAIN[11:], "--out", "{W}/t1", "--steps", "2"]),
        ("train", "--batch-size 0", [*TRAIN[:12], "0", *TRAIN[13:], "--out", "{W}/t1", "--steps", "2"]),
        ("train", "--set optim.lr=abc", [*TRAIN, "--out", "{W}/t1", "--steps", "2", "--set", "optim.lr=abc"]),
        ("train", "--set optim.nothing=1", [*TRAIN, "--out", "{W}/t1", "--steps", "2", "--set", "optim.nothing=1"]),
        ("train", "--val-split 1.5", [*TRAIN, "--out", "{W}/t1", "--steps", "2", "--val-split", "1.5"]),
        ("train", "--max-minutes -1", [*TRAIN, "--out", "{W}/t1", "--max-minutes", "-1"]),
        ("train", "--resume where nothing ran", [*TRAIN, "--out", "{W}/t_none", "--resume"]),
        ("train", "--resume with --overwrite", [*TRAIN, "--out", "{W}/t1", "--resume", "--overwrite"]),
        ("train", "--out is a file", [*TRAIN, "--out", "{W}/a_file", "--steps", "2"]),
        ("export", "--tile-size -5", ["export", "{W}/run", "{W}/m.onnx", "--tile-size", "-5"]),
        ("export", "output onto a folder of the user", ["export", "{W}/run", "{W}/model.onnx"]),
        ("export", "unknown output format", ["export", "{W}/run", "{W}/m.xyz"]),
        ("data", "--from a folder that does not exist", ["data", "fetch", "isbi2012", "--from", "{W}/nothing",
                                                         "--to", "{W}/d1"]),
        ("data", "unknown dataset", ["data", "fetch", "imagenet", "--to", "{W}/d1"]),
        ("data", "--from a folder that holds no dataset", ["data", "fetch", "isbi2012", "--from", "{W}/images",
                                                           "--to", "{W}/d1"]),
    ]


def run_case(case: Case, workspace: Path, timeout: float, index: int) -> Outcome:
    group, what, arguments = case
    # every training case its own run folder, so that no case finds the run of another
    args = [a.replace("{W}/t1", f"{{W}}/t{index}").replace("{W}", str(workspace)) for a in arguments]
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "biounet", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=workspace)
        status, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired:
        status, stderr = 124, "(timed out)"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    shown = " ".join(a.replace(str(workspace) + "/", "") for a in args)
    return Outcome(group, what, f"biounet {shown}", status, len(lines), "Traceback (most recent" in stderr,
                   (lines[-1] if lines else "").replace(str(workspace) + "/", ""), time.perf_counter() - started)


@contextlib.contextmanager
def _workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="biounet-drill-") as folder:
        yield Path(folder)


def table(outcomes: list[Outcome]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| command | input | exit | stderr | what it says (last line) |", "|---|---|---|---|---|"]
    for o in outcomes:
        said = "traceback" if o.traceback else f"{o.lines} line{'s' if o.lines != 1 else ''}"
        rows.append(f"| {o.group} | {cell(o.what)} | {o.status} | {said} | {cell(o.last[:240])} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the Markdown table here (default: print it)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args(argv)
    progress: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    with _workspace() as workspace:
        make_workspace(workspace)
        outcomes = []
        for index, case in enumerate(cases(), 1):
            outcome = run_case(case, workspace, args.timeout, index)
            progress(f"[{index}/{len(cases())}] {outcome.group}: {outcome.what}: exit {outcome.status} "
                     f"({outcome.seconds:.1f} s){'' if outcome.clean else '  <-- not clean'}")
            outcomes.append(outcome)
    text = table(outcomes) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0 if all(o.clean for o in outcomes) else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
