"""Fuzzing the model loader (:func:`biounet.io.checkpoint.load_bundle`) with damaged and edited models.

A tiny saved model is truncated, bit-flipped, or has its safetensors header edited (tensor shapes, dtypes
and offsets, the header length, the biounet metadata and each configuration field); loading must give a
model or a one-line :class:`~biounet.errors.ModelFileError`, read in the worker of ``test_fuzz_images.py``
(per-case timeout, memory cap).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_images import (  # noqa: F401 - pytestmark applies here too
    FUZZ,
    Worker,
    apply_bytes,
    big_ints,
    byte_damage,
    check,
    damaged_copy,
    edit_json,
    json_values,
    pytestmark,
    shape_values,
)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("fuzz-log") / "worker.log")
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    from biounet import UNet, save_model

    return save_model(UNet(depth=1, base_channels=2, norm="batch"), tmp_path_factory.mktemp("fuzz-model") / "m")


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + length]), data[8 + length:]


CONFIG_FIELDS = ["spatial_dims", "in_channels", "num_classes", "depth", "base_channels", "padding", "norm",
                 "group_norm_groups", "dropout", "upsampling", "pool_factors", "kernel_sizes", "unknown"]


@st.composite
def safetensors_header_edit(draw, data: bytes):
    """A model with a header field edited: a tensor's shape, dtype or offsets, or the configuration."""
    header, _ = split_safetensors(data)
    names = sorted(k for k in header if k != "__metadata__")
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["tensor", "config", "metadata", "header_length"]))
        if what == "tensor":
            field = draw(st.sampled_from(["shape", "dtype", "data_offsets"]))
            edits.append((what, (draw(st.sampled_from(names)), field),
                          draw(shape_values if field != "dtype" else json_values)))
        elif what == "config":
            key = draw(st.sampled_from(CONFIG_FIELDS))
            edits.append((what, key, draw(shape_values if key.endswith("s") else json_values | st.just(...))))
        elif what == "metadata":
            key = draw(st.sampled_from(["format", "config", "pipeline", "format_version"]))
            edits.append((what, key, draw(st.sampled_from(["{", "[]", "null", "1e999", "9" * 5000, "[" * 5000])
                                          | json_values.map(json.dumps) | st.just(...))))
        else:
            edits.append((what, None, draw(big_ints.filter(lambda v: 0 <= v < 2**64))))

    def edit(raw: bytes) -> bytes:
        document, body = split_safetensors(raw)
        length = None
        for what, key, value in edits:
            try:
                if what == "tensor":
                    edit_json(document, key, value)
                elif what == "config":
                    config = json.loads(document["__metadata__"]["config"])
                    document["__metadata__"]["config"] = json.dumps(edit_json(config, (key,), value))
                elif what == "metadata":
                    edit_json(document, ("__metadata__", key), value)
                else:
                    length = value
            except (KeyError, IndexError, TypeError, ValueError, RecursionError):
                pass
        text = json.dumps(document).encode()
        return struct.pack("<Q", len(text) if length is None else length) + text + body

    return edit


@given(case=st.data())
@FUZZ
def test_damaged_models(worker, model_file, tmp_path_factory, case):
    where = tmp_path_factory.getbasetemp() / "fuzz-models"
    where.mkdir(exist_ok=True)
    data = model_file.read_bytes()
    if case.draw(st.booleans()):
        change = case.draw(byte_damage(len(data)))
    else:
        change = case.draw(safetensors_header_edit(data))
    path = damaged_copy(model_file, where, apply_bytes(change))
    check(worker, "load_bundle", path)


def test_the_valid_model_loads(worker, model_file):
    assert worker.request("load_bundle", model_file) == {"outcome": "ok"}
