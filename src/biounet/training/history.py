"""The training history: rows of numbers per logged step, written as CSV, JSON and a training-curve PNG."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biounet.io.atomic import write_bytes_atomic, write_json_atomic, write_text_atomic

#: Columns shown first in history.csv, in this order; any others follow alphabetically.
LEADING_COLUMNS = ("step", "kind", "train_loss", "lr", "steps_per_s", "elapsed_s")


@dataclass
class History:
    """Rows ``{"step": int, "kind": "train" | "val", ...numbers}``, in the order they were added.

    ``main_metric`` names the validation column that chooses the best checkpoint, and
    ``higher_is_better`` its direction.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    main_metric: str | None = None
    higher_is_better: bool = True

    def add(self, kind: str, step: int, **values: Any) -> dict[str, Any]:
        row = {"step": int(step), "kind": kind, **values}
        self.rows.append(row)
        return row

    def column(self, name: str, kind: str | None = None) -> tuple[list[int], list[float]]:
        """Steps and values of one column (rows of ``kind`` only, if given) where it has a value."""
        steps, values = [], []
        for row in self.rows:
            if (kind is None or row["kind"] == kind) and isinstance(row.get(name), (int, float)):
                steps.append(row["step"])
                values.append(float(row[name]))
        return steps, values

    def to_dict(self) -> dict[str, Any]:
        return {"main_metric": self.main_metric, "higher_is_better": self.higher_is_better, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(list(data.get("rows", [])), data.get("main_metric"), bool(data.get("higher_is_better", True)))

    def csv_text(self) -> str:
        columns = [c for c in LEADING_COLUMNS if any(c in row for row in self.rows)]
        columns += sorted({key for row in self.rows for key in row} - set(columns))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({key: _cell(row.get(key)) for key in columns})
        return buffer.getvalue()

    def write(self, run_dir: str | os.PathLike, *, plot: bool = True) -> None:
        """Write ``history.csv``, ``history.json`` and (if ``plot``) ``training_curve.png`` into ``run_dir``."""
        run_dir = Path(run_dir)
        write_text_atomic(run_dir / "history.csv", self.csv_text())
        write_json_atomic(run_dir / "history.json", self.to_dict())
        if plot:
            self.plot(run_dir / "training_curve.png")

    def plot(self, path: str | os.PathLike) -> Path:
        """The training curves (loss, validation metrics, learning rate) as a PNG (:mod:`biounet.report`)."""
        from biounet.report.figures import curves_png

        rows = [{k: v for k, v in row.items() if k != "kind"} for row in self.rows] or [{"step": 0}]
        return write_bytes_atomic(path, curves_png(rows))


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value
