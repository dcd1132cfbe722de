"""Fuzzing the image readers with damaged files (hypothesis); the harness is shared with the model loader's.

Small valid files of every format (PNG 8/16-bit, TIFF single- and multi-page, ``.npy``, zarr v2 and v3
folders; the models are in ``test_fuzz_checkpoint.py``) are truncated, bit-flipped and have header fields
edited (image sizes, shapes, dtypes, offsets).  Every case must end in a successful read or a
:class:`~biounet.errors.BiounetError` with a one-line message naming the file: never another exception,
a hang or a large allocation.  The files are read in a worker process with a per-case timeout and an
address-space limit above its baseline, so a hang or a huge allocation fails the test instead of taking
the machine down; a worker that dies or hangs is replaced.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

CASE_TIMEOUT_S = 10.0
MEMORY_CAP_BYTES = 2 << 30  # address space a case may add to the worker's baseline
FUZZ = settings(
    max_examples=int(os.environ.get("BIOUNET_FUZZ_EXAMPLES", "200")),  # raise it to fuzz longer
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="the worker's memory cap needs Linux")


# ----------------------------------------------------------------------------------------------- worker
def _worker_main() -> None:  # runs in the child: python this_file.py --worker
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a library prints goes to stderr, not into the reply channel
    import traceback

    import torch

    torch.set_num_threads(1)
    from biounet.errors import BiounetError
    from biounet.inference.sources import open_for_model
    from biounet.io.checkpoint import load_bundle
    from biounet.io.images import read_image
    from biounet.model.config import UNetConfig

    def lazy(path: str) -> None:
        source, _ = open_for_model(path, UNetConfig(depth=1, base_channels=2), allow_stack=True)
        for corner in (0, 1):  # read the first and the last tile, as the predictor would
            key = tuple(slice(max(0, n - 32), n) if corner else slice(0, 32) for n in source.shape[1:])
            np.asarray(source[(slice(None), *key)])

    ops = {"read_image": read_image, "open_for_model": lazy, "load_bundle": load_bundle}
    with open("/proc/self/status") as status:
        baseline = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (baseline + int(sys.argv[2]), resource.RLIM_INFINITY))
    replies.write("ready\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            ops[request["op"]](request["path"])
            reply = {"outcome": "ok"}
        except BiounetError as error:
            chain, memory = error.__cause__ or error.__context__, False
            while chain is not None:
                memory = memory or isinstance(chain, MemoryError)
                chain = chain.__cause__ or chain.__context__
            reply = {"outcome": "error", "message": str(error), "memory_error": memory}
        except BaseException as error:  # noqa: B036 - everything else is what this test looks for
            reply = {"outcome": "crash", "type": type(error).__name__, "trace": traceback.format_exc()[-3000:]}
        replies.write(json.dumps(reply) + "\n")


class Worker:
    """A child process that reads files on request, restarted after a hang or a crash."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(MEMORY_CAP_BYTES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.log, "ab"), text=True, env=env,
        )
        assert self._readline(120) == "ready", f"the fuzz worker did not start (see {self.log})"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def _readline(self, timeout: float) -> str | None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line.strip() if line else None

    def request(self, op: str, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        self.proc.stdin.write(json.dumps({"op": op, "path": str(path)}) + "\n")
        self.proc.stdin.flush()
        line = self._readline(CASE_TIMEOUT_S)
        if line is None:
            code = self.proc.poll()
            self.stop()
            tail = self.log.read_text(errors="replace")[-1500:]
            return {"outcome": "hang" if code is None else f"died (exit {code})", "stderr": tail}
        return json.loads(line)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("fuzz-log") / "worker.log")
    w.start()
    yield w
    w.stop()


def check(worker: Worker, op: str, path: Path) -> None:
    """``op(path)`` must give a result or a one-line BiounetError naming the file, without a MemoryError."""
    reply = worker.request(op, path)
    if reply["outcome"] == "ok":
        return
    assert reply["outcome"] == "error", f"{op}({path.name}): {reply}"
    message = reply["message"]
    assert "\n" not in message and path.name in message, f"{op}: not a one-line message naming the file: {message!r}"
    assert not reply["memory_error"], f"{op}({path.name}) tried a large allocation: {message}"


# --------------------------------------------------------------------------------------------- mutations
@st.composite
def byte_damage(draw, size: int):
    """A function that truncates, flips bits in or overwrites bytes of a file of ``size`` bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite_head", "overwrite"]))
    if kind == "truncate":
        cut = draw(st.integers(0, size - 1))
        note(f"truncated to {cut} bytes")
        return lambda data: data[:cut]
    if kind == "flip":
        flips = draw(st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 7)), min_size=1, max_size=4))
        note(f"bits flipped (offset, bit): {flips}")

        def flip(data: bytes) -> bytes:
            out = bytearray(data)
            for offset, bit in flips:
                out[offset] ^= 1 << bit
            return bytes(out)

        return flip
    end = min(size, 64) if kind == "overwrite_head" else size
    offset = draw(st.integers(0, end - 1))
    patch = draw(st.sampled_from([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x80\x00"])
                 | st.binary(min_size=1, max_size=8))
    note(f"bytes {offset}.. overwritten with {patch!r}")
    return lambda data: data[:offset] + patch + data[offset + len(patch):]


HUGE = [0, 1, 2, 7, 255, 65535, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 10**6, 10**9]
big_ints = st.sampled_from(HUGE) | st.integers(-(2**63), 2**64)
json_values = st.recursive(
    st.none() | st.booleans() | big_ints | st.floats() | st.sampled_from(
        ["", "<u2", "|u1", ">f8", "|O", "<U4", "V8", "<M8[s]", "float32", "uint8", "int64", "complex128", "bool",
         "F32", "I64", "BOOL", "F8_E4M3", "U8", "string", "C", "F", "zstd", "gzip", "bytes"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["id", "name", "level"]), inner,
                                                                max_size=3),
    max_leaves=6,
)
shape_values = st.lists(big_ints | st.integers(-2, 40), min_size=0, max_size=5) | json_values


def edit_json(document, path: tuple, value):
    """``document`` with the field at ``path`` (keys / indices) set to ``value`` (``...``: deleted)."""
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value
    return document


# ------------------------------------------------------------------------------------------ valid files
@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    import tifffile
    import zarr
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz-originals")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(root / "grey8.png")
    Image.fromarray(rng.integers(0, 65536, (12, 10), dtype=np.uint16)).save(root / "grey16.png")
    Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(root / "rgb.png")
    tifffile.imwrite(root / "single.tif", rng.integers(0, 65536, (16, 12), dtype=np.uint16))
    tifffile.imwrite(root / "multi.tif", rng.integers(0, 256, (3, 10, 8), dtype=np.uint8), compression="zlib",
                    photometric="minisblack")
    tifffile.imwrite(root / "pages.tif", rng.random((2, 8, 6), dtype=np.float32), metadata=None)
    np.save(root / "image.npy", rng.random((12, 10), dtype=np.float32))
    for version in (2, 3):
        z = zarr.open_array(str(root / f"v{version}.zarr"), mode="w", shape=(16, 12), chunks=(8, 8), dtype="uint16",
                            zarr_format=version)
        z[...] = rng.integers(0, 65536, (16, 12), dtype=np.uint16)
    return {p.name: p for p in root.iterdir()}


def damaged_copy(original: Path, where: Path, change) -> Path:
    """A copy of ``original`` (a file or a folder) in ``where`` with ``change`` applied."""
    target = where / original.name
    if target.is_dir():
        shutil.rmtree(target)
    if original.is_dir():
        shutil.copytree(original, target)
    else:
        shutil.copyfile(original, target)
    change(target)
    return target


def apply_bytes(function):
    def change(path: Path) -> None:
        path.write_bytes(function(path.read_bytes()))

    return change


# ---------------------------------------------------------------------------------------------- images
IMAGE_FILES = ["grey8.png", "grey16.png", "rgb.png", "single.tif", "multi.tif", "pages.tif", "image.npy"]


@st.composite
def file_damage(draw, originals: dict[str, Path]):
    name = draw(st.sampled_from(IMAGE_FILES))
    return name, apply_bytes(draw(byte_damage(originals[name].stat().st_size)))


@st.composite
def png_header_edit(draw):
    """A new IHDR (width, height, bit depth, colour type, interlace) with a correct CRC."""
    fields = draw(st.tuples(big_ints.filter(lambda v: 0 <= v < 2**32), big_ints.filter(lambda v: 0 <= v < 2**32),
                            st.sampled_from([1, 2, 4, 8, 16, 3, 0, 255]), st.sampled_from([0, 2, 3, 4, 6, 5]),
                            st.sampled_from([0, 1, 2])))

    def edit(data: bytes) -> bytes:
        body = b"IHDR" + struct.pack(">IIBBBBB", fields[0], fields[1], fields[2], fields[3], 0, 0, fields[4])
        return data[:12] + body + struct.pack(">I", zlib.crc32(body)) + data[33:]

    return edit


@st.composite
def tiff_tag_edit(draw, data: bytes):
    """A TIFF with the value of one tag of its first IFD replaced (sizes, offsets, byte counts, types)."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    entry = ifd + 2 + 12 * draw(st.integers(0, count - 1))
    field = draw(st.sampled_from(["value", "count", "type"]))
    new = draw(big_ints.filter(lambda v: 0 <= v < 2**32))

    def edit(raw: bytes) -> bytes:
        if field == "type":
            return raw[:entry + 2] + struct.pack(order + "H", new % 20) + raw[entry + 4:]
        at = entry + (4 if field == "count" else 8)
        return raw[:at] + struct.pack(order + "I", new) + raw[at + 4:]

    return edit


@st.composite
def npy_header_edit(draw):
    """A .npy header with other shape / dtype / order (the header length kept or not)."""
    descr = draw(st.sampled_from(["<f4", "<f8", "|u1", "<u2", "|O", "<U4", "|V8", "<M8[s]", "|b1", ">i8", "<c16"]))
    shape = draw(st.lists(big_ints | st.integers(-3, 20), max_size=4))
    fortran = draw(st.booleans())
    keep_length = draw(st.booleans())

    def edit(data: bytes) -> bytes:
        (length,) = struct.unpack("<H", data[8:10])
        text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': ({', '.join(map(str, shape))},), }}"
        if keep_length:
            text = text[:length - 1].ljust(length - 1) + "\n"
        header = text.encode("latin1")
        return data[:8] + struct.pack("<H", len(header)) + header + data[10 + length:]

    return edit


@given(case=st.data())
@FUZZ
def test_damaged_image_files(worker, originals, tmp_path_factory, case):
    where = tmp_path_factory.getbasetemp() / "fuzz-images"
    where.mkdir(exist_ok=True)
    name, change = case.draw(file_damage(originals))
    path = damaged_copy(originals[name], where, change)
    check(worker, "read_image", path)
    check(worker, "open_for_model", path)


@given(case=st.data())
@FUZZ
def test_edited_image_headers(worker, originals, tmp_path_factory, case):
    where = tmp_path_factory.getbasetemp() / "fuzz-headers"
    where.mkdir(exist_ok=True)
    name = case.draw(st.sampled_from(["grey8.png", "grey16.png", "single.tif", "multi.tif", "pages.tif", "image.npy"]))
    data = originals[name].read_bytes()
    if name.endswith(".png"):
        edit = case.draw(png_header_edit())
    elif name.endswith(".tif"):
        edit = case.draw(tiff_tag_edit(data))
    else:
        edit = case.draw(npy_header_edit())
    path = damaged_copy(originals[name], where, apply_bytes(edit))
    check(worker, "read_image", path)
    check(worker, "open_for_model", path)


# ------------------------------------------------------------------------------------------------ zarr
ZARR_FIELDS = {
    2: [("shape",), ("chunks",), ("dtype",), ("fill_value",), ("order",), ("compressor",), ("compressor", "id"),
        ("filters",), ("dimension_separator",), ("zarr_format",)],
    3: [("shape",), ("data_type",), ("chunk_grid", "configuration", "chunk_shape"), ("chunk_grid", "name"),
        ("fill_value",), ("codecs",), ("codecs", 0, "name"), ("codecs", 1), ("codecs", 1, "configuration"),
        ("chunk_key_encoding", "configuration", "separator"), ("zarr_format",), ("node_type",)],
}


@st.composite
def zarr_damage(draw, originals: dict[str, Path]):
    version = draw(st.sampled_from([2, 3]))
    folder = originals[f"v{version}.zarr"]
    metadata = ".zarray" if version == 2 else "zarr.json"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != ".zattrs")
    target = draw(st.sampled_from(files))
    edits = []
    if target == metadata and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            field = draw(st.sampled_from(ZARR_FIELDS[version]))
            sized = field[-1] in ("shape", "chunks", "chunk_shape")
            value = draw(shape_values if sized else json_values | st.just(...))
            edits.append((field, value))

        def change(path: Path) -> None:
            document = json.loads((path / metadata).read_text())
            for field, value in edits:
                try:
                    document = edit_json(document, field, value)
                except (KeyError, IndexError, TypeError):
                    pass  # an earlier edit removed the parent
            (path / metadata).write_text(json.dumps(document))

        return f"v{version}.zarr", change
    damage = draw(byte_damage((folder / target).stat().st_size))

    def change_file(path: Path) -> None:
        apply_bytes(damage)(path / target)

    return f"v{version}.zarr", change_file


@given(case=st.data())
@FUZZ
def test_damaged_zarr_arrays(worker, originals, tmp_path_factory, case):
    where = tmp_path_factory.getbasetemp() / "fuzz-zarr"
    where.mkdir(exist_ok=True)
    name, change = case.draw(zarr_damage(originals))
    path = damaged_copy(originals[name], where, change)
    check(worker, "read_image", path)
    check(worker, "open_for_model", path)


def test_the_valid_originals_read(worker, originals):
    for path in originals.values():
        assert worker.request("read_image", path) == {"outcome": "ok"}, path
        assert worker.request("open_for_model", path)["outcome"] in ("ok", "error"), path


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker_main()
