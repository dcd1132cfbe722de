"""The report page: one self-contained HTML document (inline CSS, figures as base64 data URIs)."""

from __future__ import annotations

import base64
import datetime
import json
import math
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from biounet.report import Report

CSS = """
:root { --ink: #1d2330; --muted: #5b6575; --line: #e2e6ee; --accent: #2563eb; --band: #f6f8fb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 32px 28px 64px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 24px; padding-bottom: 12px; }
h1 { font-size: 1.75rem; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 1.2rem; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); font-size: 0.9rem; margin: 0; }
ul.notes { background: var(--band); border-left: 4px solid var(--accent); padding: 10px 16px 10px 34px;
           margin: 16px 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.92rem; margin: 8px 0; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--band); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody tr:hover { background: #fafbfd; }
tr.summary td { font-weight: 700; border-top: 2px solid var(--ink); }
.scroll { overflow-x: auto; }
figure { margin: 16px 0 28px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 0.88rem; margin-top: 6px; }
pre { background: var(--band); border: 1px solid var(--line); border-radius: 4px; padding: 12px 14px;
      overflow-x: auto; font-size: 0.85rem; line-height: 1.45; }
footer { color: var(--muted); font-size: 0.82rem; margin-top: 48px; }
"""

SUMMARY_ROW_NAMES = {"mean", "average", "all", "total", "overall", "median"}


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its section, file name under ``figures/``, PNG bytes, alt text, caption."""

    section: str
    file_name: str
    png: bytes
    alt: str
    caption: str

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def format_value(value: Any) -> str:
    """Numbers with 4 significant digits (integers as is), ``None``/NaN as an en dash, the rest as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")
    if isinstance(value, float):
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def format_seconds(seconds: float) -> str:
    """``0.25 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def _table(rows: list[dict[str, Any]], css_class: str) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    head = "".join(f"<th scope='col'>{escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        first = row.get(columns[0]) if columns else None
        summary = isinstance(first, str) and first.strip().lower() in SUMMARY_ROW_NAMES
        cells = "".join(f"<td>{escape(format_value(row.get(c)))}</td>" for c in columns)
        body.append(f"<tr class='summary'>{cells}</tr>" if summary else f"<tr>{cells}</tr>")
    return (
        f"<div class='scroll'><table class='{css_class}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _figure_html(figure: Figure) -> str:
    return (
        f"<figure><img src='{figure.data_uri()}' alt='{escape(figure.alt, quote=True)}'>"
        f"<figcaption>{escape(figure.caption)} \u2014 also saved as figures/{escape(figure.file_name)}"
        "</figcaption></figure>"
    )


def render_html(report: Report, figures: list[Figure]) -> str:
    """The complete HTML document for ``report`` with ``figures`` embedded."""
    from biounet import __version__

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{escape(report.title)}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>{escape(report.title)}</h1>",
        f"<p class='meta'>biounet {escape(__version__)} \u00b7 generated {escape(now)}</p></header>",
    ]
    if report.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    if report.timings:
        rows = [
            {"stage": name, "time": format_seconds(float(s)), "seconds": float(s)} for name, s in report.timings.items()
        ]
        parts += ["<section><h2>Timings</h2>", _table(rows, "timings"), "</section>"]
    if report.metrics:
        parts += ["<section><h2>Metrics</h2>", _table(report.metrics, "metrics"), "</section>"]
    training = [f for f in figures if f.section == "training"]
    if training:
        parts += ["<section><h2>Training</h2>", *map(_figure_html, training)]
        last = report.history[-1] if report.history else None
        if last:
            parts += ["<p class='meta'>Last logged row:</p>", _table([last], "history")]
        parts.append("</section>")
    panels = [f for f in figures if f.section == "panels"]
    if panels:
        parts += ["<section><h2>Results</h2>", *map(_figure_html, panels), "</section>"]
    errors = [f for f in figures if f.section == "errors"]
    if errors:
        parts += ["<section><h2>Worst validation images</h2>", _error_legend(), *map(_figure_html, errors),
                  "</section>"]
    if report.config:
        text = json.dumps(report.config, indent=2, sort_keys=False, default=_json_default)
        parts += ["<section><h2>Configuration</h2>", f"<pre>{escape(text)}</pre>", "</section>"]
    parts += ["<footer>Self-contained report: every figure is embedded; no network access needed.</footer>"]
    parts += ["</main></body></html>"]
    return "\n".join(parts) + "\n"


def _error_legend() -> str:
    """The colours of the error figures as an HTML list (the figures carry the same legend)."""
    from biounet.report.errors import ERROR_COLOURS, LEGEND

    items = []
    for kind, colour in ERROR_COLOURS.items():
        rgb = ", ".join(str(round(255 * c)) for c in colour)
        items.append(f"<li><span style='color: rgb({rgb})'>\u25a0</span> {escape(LEGEND[kind])}</li>")
    return "<ul class='legend'>" + "".join(items) + "</ul>"


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)
