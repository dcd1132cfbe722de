"""The ``biounet`` entry point: user errors and operating-system errors are one line, never a traceback."""

from __future__ import annotations

import errno

import pytest

from biounet.cli import main as cli_main


@pytest.mark.parametrize(
    ("error", "status", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"), 1,
         "biounet: error: runs/x/model.safetensors: No space left on device"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "out/a.tif"), 1,
         "biounet: error: out/a.tif: Not a directory"),
        (FileNotFoundError(errno.ENOENT, "No such file", "in.png"), 2,
         "biounet: error: in.png: no such file or directory"),
    ],
)
def test_os_errors_are_one_line(monkeypatch, capsys, error, status, line):
    def fail(args):
        raise error

    import biounet.cli.info

    monkeypatch.setattr(biounet.cli.info, "run", fail)  # the parser is built anew by main() and takes this one
    assert cli_main.main(["info"]) == status
    assert capsys.readouterr().err.strip().splitlines() == [line]


def test_usage_errors_are_one_line_naming_the_option(capsys):
    with pytest.raises(SystemExit) as caught:
        cli_main.main(["predict", "model", "image.png", "--out", "out", "--tile-size", "-5"])
    assert caught.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["biounet predict: error: argument --tile-size: tile size must be positive, not '-5' "
                     "(see 'biounet predict --help')"]
