"""The HTML report: files, self-containedness, and that it renders in a real browser (headless Chromium)."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from biounet.data.synthetic import generate
from biounet.report import OverlayPanel, Report, write_report
from biounet.report.html import format_seconds, format_value

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]

CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var rows = document.querySelectorAll("table.metrics tbody tr").length;
  var out = document.createElement("div");
  out.id = "biounet-check";
  out.textContent = "images=" + images.length + " loaded=" + loaded + " rows=" + rows;
  document.body.appendChild(out);
});
</script></body>"""


class _Collector(HTMLParser):
    """Collects <img> attributes, every src/href and the rows of table.metrics."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.metric_rows: list[list[str]] = []
        self._in_metrics = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "img":
            self.images.append(values)
        elif tag == "table":
            self._in_metrics = "metrics" in (values.get("class") or "").split()
        elif tag == "tr" and self._in_metrics:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.metric_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._in_metrics = False


def _report() -> Report:
    image, labels = generate("nuclei", (96, 128), 0)
    probability = (labels > 0).astype(np.float32) * 0.9 + 0.05
    big, big_labels = generate("membrane", (800, 800), 1)  # > 768 px: overview + full-resolution zoom row
    history = [
        {"step": s, "epoch": s / 10, "train_loss": 1.0 / (1 + s), "val_loss": 1.2 / (1 + s) if s % 5 == 0 else None}
        | ({"val_dice": 1 - 1.0 / (2 + s)} if s % 5 == 0 else {})
        | {"lr": 1e-3 * 0.9**s, "seconds": 0.5 * s}
        for s in range(30)
    ]
    return Report(
        title="Test <report> & co",
        history=history,
        panels=[
            OverlayPanel("nuclei tile", image, ground_truth=labels, prediction=probability, instances=labels),
            OverlayPanel("membrane 800", big, ground_truth=big_labels, prediction=(big_labels > 0).astype(np.int32)),
        ],
        metrics=[
            {"image": "a.tif", "dice": 0.91, "ap50": 0.8},
            {"image": "b.tif", "dice": 0.87, "ap50": None},
            {"image": "mean", "dice": 0.89, "ap50": 0.8},
        ],
        timings={"training": 123.4, "inference": 0.8},
        config={"model": {"depth": 4, "padding": "valid"}, "note": "</pre><script>alert(1)</script>"},
        notes=["made by the test suite"],
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(tmp_path_factory.mktemp("report"), _report())


def test_files_are_written(written: Path):
    assert written.name == "report.html" and written.is_file()
    figures = sorted(p.name for p in (written.parent / "figures").iterdir())
    assert figures == ["curves.png", "panel_00_nuclei_tile.png", "panel_01_membrane_800.png"]
    with Image.open(written.parent / "figures" / "panel_01_membrane_800.png") as png:
        width, height = png.size
    assert width > 600 and height > 600  # 3 columns (no instances) and 2 rows: overview + full-resolution zoom
    assert not [p for p in written.parent.rglob("*") if ".part" in p.name]


def test_html_is_self_contained_and_escaped(written: Path):
    text = written.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(text)
    assert not [link for link in parser.links if not link.startswith("data:")]
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.IGNORECASE)
    assert "url(" not in text and "@import" not in text
    assert len(parser.images) == 3 and all(img.get("alt") for img in parser.images)
    embedded = [base64.b64decode(str(img["src"]).split(",", 1)[1]) for img in parser.images]
    assert embedded[0] == (written.parent / "figures" / "curves.png").read_bytes()
    assert "Test &lt;report&gt; &amp; co" in text and "<script>alert" not in text
    assert parser.metric_rows[0] == ["image", "dice", "ap50"]
    assert parser.metric_rows[1:] == [["a.tif", "0.91", "0.8"], ["b.tif", "0.87", "\u2013"], ["mean", "0.89", "0.8"]]
    assert "<tr class='summary'><td>mean</td>" in text


def test_report_without_history_or_panels(tmp_path: Path):
    path = write_report(tmp_path, Report(title="only numbers", metrics=[{"image": "x", "ap": 0.5}]))
    text = path.read_text()
    assert "<img" not in text and "class='metrics'" in text
    assert not (tmp_path / "figures").exists() or not list((tmp_path / "figures").iterdir())


def test_number_formatting():
    assert (
        format_value(0.123456) == "0.1235" and format_value(None) == "\u2013" and format_value(float("nan")) == "\u2013"
    )
    assert format_value(2.5e-5) == "2.500e-05" and format_value(12) == "12"
    assert (
        format_seconds(3.21) == "3.21 s"
        and format_seconds(125) == "2 min 05 s"
        and format_seconds(7322) == "2 h 02 min"
    )


def _chromium() -> str:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'); cannot check rendering")
    return browser


def test_report_renders_in_headless_chromium(written: Path, tmp_path: Path):
    browser = _chromium()
    page = tmp_path / "check.html"
    page.write_text(written.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT), encoding="utf-8")
    result = subprocess.run(
        [
            browser,
            *BROWSER_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"images=(\d+) loaded=(\d+) rows=(\d+)", result.stdout)
    assert found, f"no check output from Chromium (exit {result.returncode}): {result.stderr[-500:]}"
    assert found.groups() == ("3", "3", "3")  # every figure decoded, one table row per metrics row


def test_report_screenshot_is_not_blank(written: Path, tmp_path: Path):
    browser = _chromium()
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            *BROWSER_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1800",
            f"--screenshot={shot}",
            written.as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert shot.is_file(), "Chromium wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1800, 1200)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    assert (pixels < 128).mean() > 0.02  # plenty of dark pixels (images, text)
