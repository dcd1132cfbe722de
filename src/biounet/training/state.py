"""Saving and restoring the whole training state, without pickle, so a killed run resumes exactly.

Layout inside the run directory::

    state/step-00000500/model.safetensors      model parameters and buffers
    state/step-00000500/ema.safetensors        the weight average, when the run keeps one (optim.ema)
    state/step-00000500/optimizer.safetensors  optimiser tensors (momentum, Adam moments, ...) and torch RNG states
    state/step-00000500/state.json             step, optimiser hyper-parameters, python/numpy RNG states,
                                               history, best metric, elapsed time, ...
    state/latest.json                          manifest: which step directory is whole, with file sizes
                                               and SHA-256 sums

A step directory is written under a temporary name and renamed when complete; the manifest is
written (atomically) last. A run killed at any moment therefore leaves either the previous manifest
or the new one, each naming a complete directory, and :func:`load_state` checks sizes and sums
before using it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biounet.errors import ModelFileError
from biounet.io.atomic import write_json_atomic
from biounet.io.checkpoint import save_safetensors
from biounet.io.hashing import sha256_file

STATE_DIR = "state"
MANIFEST = "latest.json"
FORMAT = "biounet.train_state"


@dataclass
class TrainingState:
    """What :func:`save_state` writes and :func:`load_state` returns.

    Attributes:
        step: optimiser steps done.
        model: ``model.state_dict()`` tensors.
        optimizer: ``optimizer.state_dict()`` (tensors and plain values).
        rng: ``{"torch": ByteTensor, "cuda": [ByteTensor, ...], "python": list, "numpy": dict}``.
        extra: anything JSON-ready (history, best metric, elapsed seconds, scaler state, ...).
        ema: the weight average's ``state_dict()`` when the run keeps one (``optim.ema``), else ``None``.
    """

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    ema: dict[str, torch.Tensor] | None = None


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (safetensors) and a JSON-ready rest."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        plain = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                plain[name] = value
        per_param[str(index)] = plain
    return tensors, {"param_groups": state["param_groups"], "state": per_param}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for key, tensor in tensors.items():
        if not key.startswith("state."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}


def save_state(run_dir: str | os.PathLike, state: TrainingState) -> Path:
    """Write ``state`` under ``run_dir/state`` as described in the module docstring; return its directory.

    Other step directories are removed once the manifest names the new one.
    """
    root = Path(run_dir) / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state.step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        model = {k: v.detach().to("cpu").contiguous() for k, v in state.model.items()}
        save_safetensors(model, tmp / "model.safetensors", {"format": FORMAT}, name=root / name / "model.safetensors")
        _kill_drill(state.step, "files")
        if state.ema is not None:
            ema = {k: v.detach().to("cpu").contiguous() for k, v in state.ema.items()}
            save_safetensors(ema, tmp / "ema.safetensors", {"format": FORMAT}, name=root / name / "ema.safetensors")
        opt_tensors, opt_plain = flatten_optimizer(state.optimizer)
        rng_tensors = {"rng.torch": state.rng["torch"]} if "torch" in state.rng else {}
        for i, cuda_state in enumerate(state.rng.get("cuda", [])):
            rng_tensors[f"rng.cuda.{i}"] = cuda_state
        save_safetensors({**opt_tensors, **rng_tensors}, tmp / "optimizer.safetensors", {"format": FORMAT},
                         name=root / name / "optimizer.safetensors")
        document = {
            "format": FORMAT,
            "step": state.step,
            "optimizer": opt_plain,
            "rng": {k: v for k, v in state.rng.items() if k not in ("torch", "cuda")},
            "cuda_rng_count": len(state.rng.get("cuda", [])),
            "extra": state.extra,
        }
        (tmp / "state.json").write_text(json.dumps(document), encoding="utf-8")
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        final = root / name
        if final.exists():  # a stale directory of a run killed before its manifest: not referenced
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _kill_drill(state.step, "renamed")
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(final.iterdir())}
    write_json_atomic(root / MANIFEST, {"format": FORMAT, "step": state.step, "directory": name, "files": files})
    _prune(root, keep=name)
    return final


def _kill_drill(step: int, moment: str) -> None:
    """Test hook: ``BIOUNET_TEST_KILL_IN_SAVE_STATE=STEP:MOMENT`` kills the process with SIGKILL while it saves
    step ``STEP``, at ``files`` (the step directory half-written) or ``renamed`` (whole, the manifest not yet)."""
    if os.environ.get("BIOUNET_TEST_KILL_IN_SAVE_STATE") == f"{step}:{moment}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def has_state(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` holds a saved training state (a manifest)."""
    return (Path(run_dir) / STATE_DIR / MANIFEST).is_file()


def load_state(run_dir: str | os.PathLike) -> TrainingState:
    """Read the state named by the manifest; ModelFileError if it is missing, incomplete or altered."""
    from safetensors.torch import load_file

    root = Path(run_dir) / STATE_DIR
    manifest_path = root / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{manifest_path}: no readable training state ({error})") from error
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{manifest_path}: not a biounet training-state manifest")
    directory = root / manifest["directory"]
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
            raise ModelFileError(f"{path}: missing or altered since it was saved; cannot resume from it")
    document = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    model = load_file(str(directory / "model.safetensors"))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    rng = dict(document["rng"])
    if "rng.torch" in tensors:
        rng["torch"] = tensors["rng.torch"]
    rng["cuda"] = [tensors[f"rng.cuda.{i}"] for i in range(document.get("cuda_rng_count", 0))]
    ema = load_file(str(directory / "ema.safetensors")) if "ema.safetensors" in manifest["files"] else None
    return TrainingState(
        step=int(document["step"]),
        model=model,
        optimizer=unflatten_optimizer(tensors, document["optimizer"]),
        rng=rng,
        extra=document.get("extra", {}),
        ema=ema,
    )


def _prune(root: Path, keep: str) -> None:
    """Remove every step directory but ``keep``, and temporary directories of killed writes."""
    for path in root.iterdir():
        if path.is_dir() and path.name != keep and (path.name.startswith("step-") or path.name.startswith(".step-")):
            shutil.rmtree(path, ignore_errors=True)
