"""Training state on disk: exact round trip without pickle, atomic manifest, refusal of altered files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from safetensors import safe_open

from biounet.errors import ModelFileError
from biounet.model import UNet
from biounet.training.state import MANIFEST, TrainingState, has_state, load_state, save_state


def trained_state(optimizer_name: str, step: int) -> tuple[UNet, torch.optim.Optimizer, TrainingState]:
    torch.manual_seed(0)
    model = UNet(depth=1, base_channels=2, padding="same", norm="batch", dropout=0.0)
    optimizer = (torch.optim.AdamW(model.parameters(), lr=1e-2) if optimizer_name == "adamw"
                 else torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9))
    for _ in range(2):
        loss = model(torch.randn(2, 1, 8, 8)).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    python = random.getstate()
    state = TrainingState(
        step=step,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        rng={"torch": torch.get_rng_state(), "python": [python[0], list(python[1]), python[2]]},
        extra={"history": {"rows": [{"step": step, "train_loss": 0.5}]}, "best": None},
    )
    return model, optimizer, state


@pytest.mark.parametrize("optimizer_name", ["adamw", "sgd"])
def test_round_trip_is_exact(tmp_path, optimizer_name):
    model, optimizer, state = trained_state(optimizer_name, step=7)
    save_state(tmp_path, state)
    assert has_state(tmp_path)
    loaded = load_state(tmp_path)
    assert loaded.step == 7 and loaded.extra == state.extra
    for name, tensor in state.model.items():
        assert torch.equal(loaded.model[name], tensor), name
    assert torch.equal(loaded.rng["torch"], state.rng["torch"])
    assert loaded.rng["python"][1] == state.rng["python"][1]
    # the optimiser continues exactly as the original
    twin_model = UNet(depth=1, base_channels=2, padding="same", norm="batch", dropout=0.0)
    twin_model.load_state_dict(loaded.model)
    twin_optimizer = (torch.optim.AdamW(twin_model.parameters(), lr=1e-2) if optimizer_name == "adamw"
                      else torch.optim.SGD(twin_model.parameters(), lr=1e-2, momentum=0.9))
    twin_optimizer.load_state_dict(loaded.optimizer)
    batch = torch.randn(2, 1, 8, 8)
    for net, opt in ((model, optimizer), (twin_model, twin_optimizer)):
        loss = net(batch).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (name, a), b in zip(model.state_dict().items(), twin_model.state_dict().values()):
        assert torch.equal(a, b), name
    # no pickle anywhere: the files are safetensors and JSON
    directory = tmp_path / "state" / json.loads((tmp_path / "state" / MANIFEST).read_text())["directory"]
    assert sorted(p.name for p in directory.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    json.loads((directory / "state.json").read_text())
    for name in ("model.safetensors", "optimizer.safetensors"):
        with safe_open(str(directory / name), framework="pt") as handle:
            assert len(list(handle.keys())) > 0


def test_newer_state_replaces_older_and_half_written_ones_are_ignored(tmp_path):
    _, _, first = trained_state("sgd", step=10)
    save_state(tmp_path, first)
    # a kill while writing step 20: its directory exists but the manifest still names step 10
    stale = tmp_path / "state" / "step-00000020"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    (tmp_path / "state" / ".step-00000030.tmp").mkdir()
    assert load_state(tmp_path).step == 10
    _, _, second = trained_state("sgd", step=20)
    save_state(tmp_path, second)
    assert load_state(tmp_path).step == 20
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [MANIFEST, "step-00000020"]


def test_altered_or_missing_files_are_refused(tmp_path):
    _, _, state = trained_state("adamw", step=3)
    directory = save_state(tmp_path, state)
    data = bytearray((directory / "optimizer.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (directory / "optimizer.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"optimizer\.safetensors: missing or altered"):
        load_state(tmp_path)
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="model.safetensors"):
        load_state(tmp_path)
    with pytest.raises(ModelFileError, match="no readable training state"):
        load_state(tmp_path / "elsewhere")
    assert not has_state(tmp_path / "elsewhere")


def test_numpy_generator_state_is_json(tmp_path):
    _, _, state = trained_state("sgd", step=1)
    generator = np.random.default_rng([1, 2])
    state.rng["numpy"] = generator.bit_generator.state
    save_state(tmp_path, state)
    restored = np.random.default_rng()
    restored.bit_generator.state = load_state(tmp_path).rng["numpy"]
    assert restored.random() == generator.random()


def test_a_full_disk_while_saving_the_state_is_an_os_error_naming_the_file(tmp_path, monkeypatch):
    import errno

    import safetensors.torch
    from safetensors import SafetensorError

    from biounet.training.state import STATE_DIR, TrainingState, save_state

    model = torch.nn.Linear(2, 2)
    state = TrainingState(step=3, model=model.state_dict(), optimizer=torch.optim.SGD(model.parameters(), 0.1)
                          .state_dict(), rng={}, extra={})

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, message: "No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as caught:
        save_state(tmp_path, state)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename.endswith("model.safetensors")
    assert not [p for p in (tmp_path / STATE_DIR).iterdir()]  # the half-written step folder is gone
