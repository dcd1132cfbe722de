"""Models on disk: safetensors + JSON, atomic, and never pickle."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from biounet import UNet, load_model, save_model
from biounet.errors import ModelFileError
from biounet.io.checkpoint import load_bundle, read_metadata
from biounet.pipeline import Pipeline, TargetDescription


def small_model(**kwargs) -> UNet:
    return UNet(base_channels=4, depth=2, norm="batch", **kwargs).eval()


def test_round_trip_gives_identical_outputs(tmp_path):
    model = small_model()
    model.train()
    model(torch.randn(2, 1, 92, 92))  # move the batch-norm running statistics away from their initial values
    model.eval()
    path = save_model(model, tmp_path / "run", pipeline={"target": {"kind": "semantic"}})
    assert path == tmp_path / "run" / "model.safetensors"
    assert json.loads((tmp_path / "run" / "model.json").read_text())["config"]["norm"] == "batch"
    bundle = load_bundle(tmp_path / "run")
    x = torch.randn(1, 1, 124, 108)
    with torch.inference_mode():
        assert torch.equal(model(x), bundle.model(x))
    assert bundle.pipeline == Pipeline(target=TargetDescription(kind="semantic"))
    assert not bundle.model.training


def test_file_path_and_3d_model(tmp_path):
    model = UNet(spatial_dims=3, base_channels=2, depth=1, padding="same").eval()
    path = save_model(model, tmp_path / "m3.safetensors")
    assert (tmp_path / "m3.json").is_file()
    loaded = load_model(path)
    x = torch.randn(1, 1, 5, 9, 7)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_pickle_files_are_refused(tmp_path):
    model = small_model()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    for name in ("weights.pt", "plain.pkl"):
        with pytest.raises(ModelFileError, match="pickle"):
            load_model(tmp_path / name)


def test_a_header_length_starting_with_the_pickle_byte_is_still_a_model(tmp_path):
    # The first byte of a safetensors file is the low byte of its header length: 0x80 for one length in
    # 256, like the first byte of a pickle. Such models must load (one trained DSB model did not).
    model = small_model()
    for pad in range(256):
        path = save_model(model, tmp_path / "run", pipeline={"target": {"class_names": ["x" * pad]}})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert read_metadata(path)["pipeline"]["target"]["class_names"] == ["x" * pad]
    x = torch.randn(1, 1, 44, 44)
    with torch.inference_mode():
        assert torch.equal(model(x), load_model(path)(x))


def test_truncated_and_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = save_model(small_model(), tmp_path)
    data = path.read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="cut.safetensors"):
            load_model(tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match="not a biounet model"):
        load_model(tmp_path / "other.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no biounet model"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelFileError, match="no such"):
        load_model(tmp_path / "missing.safetensors")


def test_metadata_is_readable_without_weights(tmp_path):
    path = save_model(small_model(num_classes=3), tmp_path, pipeline={"channels": [1, 2]})
    meta = read_metadata(path)
    assert meta["format"] == "biounet.unet"
    assert meta["config"]["num_classes"] == 3
    assert meta["pipeline"]["channels"] == [1, 2]


def test_save_is_atomic_when_interrupted(tmp_path, monkeypatch):
    import safetensors.torch

    path = save_model(small_model(), tmp_path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        with open(args[1], "wb") as handle:
            handle.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_model(UNet(base_channels=4, depth=2), tmp_path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]


def test_model_json_is_a_copy_and_an_edit_is_reported(tmp_path, caplog):
    """The .safetensors file is the model; an edited model.json changes nothing and says so in one line."""
    import logging

    model = small_model()
    save_model(model, tmp_path, pipeline={"target": {"kind": "semantic", "class_names": ["bg", "cell"]}})
    with caplog.at_level(logging.WARNING, logger="biounet.io"):
        load_bundle(tmp_path)
    assert not caplog.records
    copy = json.loads((tmp_path / "model.json").read_text())
    copy["pipeline"]["target"]["class_names"] = ["edited", "names"]
    (tmp_path / "model.json").write_text(json.dumps(copy))
    with caplog.at_level(logging.WARNING, logger="biounet.io"):
        bundle = load_bundle(tmp_path)
    assert bundle.pipeline.target.class_names == ["bg", "cell"]
    assert len(caplog.records) == 1 and "model.json" in caplog.text and "no effect" in caplog.text


def test_a_model_with_an_invalid_pipeline_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    model = small_model()
    meta = read_metadata(save_model(model, tmp_path))
    meta["pipeline"] = {"target": {"kind": "semantic", "colour": "red"}}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "odd.safetensors"), metadata={k: json.dumps(v) for k, v in meta.items()})
    with pytest.raises(ModelFileError, match=r"odd.safetensors: invalid pipeline description .*colour"):
        load_bundle(tmp_path / "odd.safetensors")


def test_a_full_disk_is_an_os_error_naming_the_model_and_the_old_model_stays(tmp_path, monkeypatch):
    import errno

    import safetensors.torch
    from safetensors import SafetensorError

    model = small_model()
    save_model(model, tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                              'message: "No space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OSError) as caught:
        save_model(model, tmp_path)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "model.safetensors")
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
