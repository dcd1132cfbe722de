"""Atomic writes: a kill leaves no half-written file, and nothing the user made is ever replaced."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from biounet.io.atomic import OUTPUT_MARKER, OutputInTheWayError, atomic_path, write_json_atomic, write_text_atomic


def test_a_folder_in_the_way_is_refused_and_left_untouched(tmp_path):
    folder = tmp_path / "scores.json"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "precious.tif").write_bytes(b"data")
    with pytest.raises(OutputInTheWayError, match="scores.json: a folder is in the way"):
        write_json_atomic(folder, {"a": 1})
    assert (folder / "inner" / "precious.tif").read_bytes() == b"data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]  # no temporary left behind


def test_a_folder_output_replaces_only_a_folder_biounet_wrote(tmp_path):
    import zarr

    final = tmp_path / "out.zarr"
    for value in (1, 2):
        with atomic_path(final) as tmp:
            tmp.unlink()  # a placeholder file; zarr makes a folder there, as biounet's zarr writer does
            zarr.open_array(str(tmp), mode="w", shape=(4,), dtype="u1")[:] = value
        assert (final / OUTPUT_MARKER).is_file() and zarr.open_array(str(final), mode="r")[0] == value
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr"]
    user = tmp_path / "user.zarr"
    zarr.open_array(str(user), mode="w", shape=(4,), dtype="u1")[:] = 7  # made by the user, no marker
    with pytest.raises(OutputInTheWayError):
        with atomic_path(user) as tmp:
            pytest.fail("the work must not start")  # pragma: no cover
    assert zarr.open_array(str(user), mode="r")[0] == 7


def test_a_file_replaces_the_previous_file_and_errors_keep_it(tmp_path):
    final = tmp_path / "a.txt"
    write_text_atomic(final, "one")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert final.read_text() == "one"
    write_text_atomic(final, "two")
    assert final.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    final = tmp_path / "probs.npy"
    code = (
        "import os, sys, numpy as np\n"
        "from biounet.io.atomic import atomic_path\n"
        f"with atomic_path({str(final)!r}) as tmp:\n"
        "    np.save(tmp, np.zeros(10)); print(tmp, flush=True); os._exit(9)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    leftover = tmp_path / os.path.basename(killed.stdout.strip())
    assert killed.returncode == 9 and leftover.is_file() and not final.exists()
    (tmp_path / ".probs.npy.notours.part.npy").write_bytes(b"x")  # no process id: not recognised, kept
    with atomic_path(final) as tmp:
        np.save(tmp, np.ones(3))
    assert not leftover.exists() and (tmp_path / ".probs.npy.notours.part.npy").exists()
    assert np.load(final).tolist() == [1.0, 1.0, 1.0]
