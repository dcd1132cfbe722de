"""``biounet train`` flags for section stacks: --preset vnc, --spacing, --z-context (in-process)."""

from __future__ import annotations

import json

import pytest
import tifffile
from PIL import Image

from biounet.cli.main import main
from biounet.cli.train import DESCRIPTION, PRESET_NAMES
from biounet.io.checkpoint import load_bundle
from biounet.training.recipes import PRESETS

TINY = ["--depth", "2", "--base-channels", "4", "--tile-size", "48", "--batch-size", "2", "--precision", "fp32",
        "--threads", "1", "--device", "cpu", "--no-progress", "--seed", "3", "--padding", "same", "--norm", "none"]


def test_preset_choices_are_the_presets_and_help_names_the_flags():
    assert list(PRESET_NAMES) == list(PRESETS)
    for words in ("--spacing Z,Y,X", "--z-context K", "vnc-classes", "--preset vnc"):
        assert words in DESCRIPTION, words


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--spacing", "50,a,4.6", "argument --spacing: takes 2 or 3 positive sizes"),
    ("--spacing", "4.6", "argument --spacing: takes 2 or 3 positive sizes"),
    ("--spacing", "50,0,4.6", "argument --spacing: takes 2 or 3 positive sizes"),
    ("--z-context", "-1", "argument --z-context: must be a whole number >= 0"),
    ("--preset", "vnc3", "argument --preset: invalid choice: 'vnc3'"),
])
def test_bad_values_are_one_line_usage_errors(tmp_path, capsys, flag, value, words):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--out", str(tmp_path / "r"), flag, value])
    lines = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(lines) == 1 and words in lines[0], lines


def test_vnc_run_saves_spacing_and_z_context(shared_data, tmp_path):
    source = shared_data / "drosophila_vnc_sstem" / "stack1"
    stack = tmp_path / "vnc" / "stack1"
    for folder in ("raw", "membranes"):
        (stack / folder).mkdir(parents=True)
    for z in range(4):
        tifffile.imwrite(stack / "raw" / f"{z:02d}.tif", tifffile.imread(source / "raw" / f"{z:02d}.tif")[:64, :64])
        with Image.open(source / "membranes" / f"{z:02d}.png") as image:
            image.crop((0, 0, 64, 64)).save(stack / "membranes" / f"{z:02d}.png")
    run = tmp_path / "run"
    status = main(["train", "--preset", "vnc", "--images", str(tmp_path / "vnc"), "--out", str(run), *TINY,
                   "--steps", "2", "--val-every", "2", "--spacing", "45,4.6,4.6", "--z-context", "1"])
    assert status == 0
    bundle = load_bundle(run)
    assert bundle.pipeline.spacing == [45.0, 4.6, 4.6] and bundle.pipeline.z_context == 1
    assert bundle.config.in_channels == 3
    saved = json.loads((run / "config.json").read_text())["data"]
    assert saved["layout"] == "sections" and saved["z_context"] == 1 and saved["spacing"] == [45.0, 4.6, 4.6]
