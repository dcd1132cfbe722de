"""The demo end to end in a real process, on a small budget (the full demo is `make demo`)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys


def test_demo_runs_end_to_end_and_writes_a_report(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "biounet", "demo", "--out", str(out), "--minutes", "0.4", "--size", "600",
         "--train-images", "4", "--quiet"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4  # two training curves and two overlays
    assert "data:image/png;base64," in html
    assert re.search(r"<table class=[\"']metrics[\"']", html)
    results = json.loads((out / "metrics.json").read_text())
    by_style = results["metrics"]
    assert set(by_style) == {"nuclei", "membrane"}
    for row in by_style.values():
        assert all(math.isfinite(v) for v in row.values())
    assert 0.0 <= by_style["nuclei"]["F1 @ IoU 0.5"] <= 1.0
    assert 0.0 <= by_style["membrane"]["adapted Rand error"] <= 1.0
    for style in ("nuclei", "membrane"):
        assert (out / "runs" / style / "model.safetensors").is_file()
    assert "done in" in proc.stderr
