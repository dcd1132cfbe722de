"""``make bench``: biounet beside its peers, measured in the same run on this machine.

Each section is a module ``bench_<name>.py`` with ``run(quick: bool) -> dict``; a section's ``rows``
(a list of dicts) become one markdown table, and its ``tables`` (title -> rows) more tables below it.
The whole result is written as JSON and markdown (``--out PREFIX`` -> ``PREFIX.json`` and ``PREFIX.md``)
with the date, machine and commit.  ``--quick``
runs every section on tiny sizes, so CI can check that the script works (tests/benchmarks); its numbers
mean nothing.  ``--only SECTION...`` measures some sections again and keeps the others of an existing
``PREFIX.json``; every section records the date, machine and commit of the run that measured it, and
ratios are only ever taken within one section, i.e. within one run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

SECTIONS = {
    "inference": "Inference: biounet predict vs MONAI sliding_window_inference (same network weights)",
    "training": "Training step on a 512x512 tile",
    "ddp": "Data-parallel training: 2 processes (torchrun) vs 1, steps per second",
    "dask": "Distributed prediction: a 16384x16384 zarr image, Dask workers vs one process (tiny model)",
    "speed": "Speed of the default recipe's model: images, a folder, the training step (bf16 where the CPU has it)",
    "compute": "Effective GFLOP/s as a fraction of this machine's peak (fastest dense product, same run)",
    "augment": "Augmentation: elastic deformation, images per second",
    "weightmap": "Weight map (eq. 2): one pass vs one distance transform per cell",
    "metrics": "Evaluation: 30 ISBI-sized slices, 9-threshold sweep",
    "accuracy": "Accuracy at a fixed CPU budget",
    "specialists": "Nuclei specialists: StarDist and Cellpose 3 beside biounet, trained from scratch on the same DSB "
                   "split for the same minutes",
}


def machine() -> dict[str, str]:
    import torch

    from biounet.runtime import cpu_has_bf16

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "bf16": str(cpu_has_bf16()),
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=HERE).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no rows_\n"
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 10_000:
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that every row runs")
    parser.add_argument("--out", default=str(HERE / "RESULTS"), help="output prefix (.md and .json are added)")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)

    started = time.time()
    out = Path(args.out)
    run_info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "commit": commit(),
    }
    report = {**run_info, "quick": args.quick, "sections": {}}
    kept = _kept_sections(out.with_suffix(".json"), args) if args.only else {}
    failures = 0
    for name, title in SECTIONS.items():
        if args.only and name not in args.only:
            continue
        print(f"== {title} ...", file=sys.stderr, flush=True)
        section_start = time.time()
        try:
            result = importlib.import_module(f"bench_{name}").run(quick=args.quick)
        except Exception:  # a failing section is reported and fails the run, after the others ran
            failures += 1
            result = {"error": traceback.format_exc()}
            print(result["error"], file=sys.stderr)
        result["seconds"] = time.time() - section_start
        result["measured"] = run_info
        report["sections"][name] = result
    report["sections"] = {name: report["sections"].get(name) or kept[name]
                          for name in SECTIONS if name in report["sections"] or name in kept}

    md = [f"# biounet benchmarks{' (quick: sizes too small to mean anything)' if args.quick else ''}", ""]
    machine_text = ", ".join(f"{k} {v}" for k, v in report["machine"].items())
    md.append(f"{report['date']}, commit {report['commit']}; {machine_text}")
    if kept:
        md.append("")
        md.append(f"Measured again in this run: {', '.join(args.only)}; the other sections are kept from earlier "
                  "runs, each with its own date, machine and commit.")
    md.append("")
    md.append("Within each section all numbers come from one run on one machine; ratios are biounet / peer (speed: "
              ">1 means biounet is faster). The machine is shared: numbers are medians of repeated runs.")
    for name, result in report["sections"].items():
        md += ["", f"## {SECTIONS[name]}", ""]
        if "error" in result:
            md.append("FAILED:\n```\n" + result["error"][-2000:] + "\n```")
            continue
        if name in kept:
            measured = result["measured"]
            text = ", ".join(f"{k} {v}" for k, v in measured["machine"].items())
            md.append(f"_Measured {measured['date']}, commit {measured['commit']}; {text}._  ")
        for note in result.get("notes", []):
            md.append(f"{note}  ")
        md.append(markdown_table(result.get("rows", [])))
        for title, rows in result.get("tables", {}).items():  # a section may add smaller tables below its own
            md += [f"**{title}**", "", markdown_table(rows)]
    text = "\n".join(md) + "\n"
    from biounet.io.atomic import write_text_atomic

    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix(".md"), text)
    write_text_atomic(out.with_suffix(".json"), json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    print(f"({time.time() - started:.0f} s; written to {out.with_suffix('.md')} and .json)", file=sys.stderr)
    return 1 if failures else 0


def _kept_sections(path: Path, args: argparse.Namespace) -> dict[str, dict]:
    """The sections of an earlier report at ``path`` that this run does not measure again (quick or full alike)."""
    if not path.is_file():
        return {}
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        sys.exit(f"{path}: cannot read the earlier report to keep its other sections ({error})")
    if bool(earlier.get("quick")) != args.quick:
        sys.exit(f"{path}: was written {'with' if earlier.get('quick') else 'without'} --quick; "
                 "choose another --out to mix them")
    fallback = {key: earlier.get(key) for key in ("date", "machine", "commit")}
    return {name: {**section, "measured": section.get("measured", fallback)}
            for name, section in earlier.get("sections", {}).items() if name not in args.only}


if __name__ == "__main__":
    sys.exit(main())
