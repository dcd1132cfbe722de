"""``make bench`` works: every section of ``benchmarks/run.py --quick`` runs, beside the peers, in a real process.

The quick mode's sizes are too small for its numbers to mean anything (the full run is by hand, see
benchmarks/RESULTS.md); this checks that every row is produced and that the report is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SECTIONS = ("inference", "training", "ddp", "dask", "speed", "compute", "augment", "weightmap", "metrics", "accuracy",
            "specialists")
PEER_ROWS = {  # section -> (column, text of a peer's row)
    "inference": ("method", "MONAI sliding window"),
    "training": ("model", "smp Unet resnet34"),
    "speed": ("method", "MONAI sliding_window_inference"),
    "augment": ("operation", "MONAI Rand2DElastic"),
    "accuracy": ("method", "MONAI UNet, typical recipe"),
}


@pytest.mark.slow
def test_quick_benchmark_runs_every_section_beside_the_peers(tmp_path, shared_data):
    out = tmp_path / "quick"
    env = {**os.environ, "BIOUNET_SHARED_DATA": str(shared_data)}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=1200, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["quick"] is True and report["machine"]["cores"]
    assert list(report["sections"]) == list(SECTIONS)
    for name, section in report["sections"].items():
        assert "error" not in section, f"{name}: {section.get('error', '')[-1500:]}"
        assert section["rows"], f"{name}: no rows"
    for name, (column, peer) in PEER_ROWS.items():
        methods = [str(row.get(column, "")) for row in report["sections"][name]["rows"]]
        assert any(m.startswith(peer) for m in methods), f"{name}: no {peer!r} row in {methods}"
        assert any(m.startswith("biounet") for m in methods), f"{name}: no biounet row in {methods}"
    # StarDist and Cellpose are not installed by `make test`: their rows say so, or carry their scores
    specialists = {row["method"].split()[0]: row for row in report["sections"]["specialists"]["rows"]}
    assert set(specialists) == {"biounet", "StarDist", "Cellpose"}, specialists
    assert "mean AP 0.5:0.95" in specialists["biounet"]
    for peer in ("StarDist", "Cellpose"):
        row = specialists[peer]
        assert "mean AP 0.5:0.95" in row or row["status"].startswith("not installed"), row
    speed = report["sections"]["speed"]["tables"]  # the folder beside a MONAI loop, the step split into parts
    assert [row["method"] for rows in speed.values() for row in rows if "method" in row] == [
        "biounet predict_files (batched)", "MONAI loop",
        "floor: forward + softmax of each image, in memory (no reading, writing or checks)"]
    assert any("% of peak" in row for rows in speed.values() for row in rows)
    markdown = out.with_suffix(".md").read_text()
    assert markdown.count("\n## ") == len(SECTIONS) and "FAILED" not in markdown
