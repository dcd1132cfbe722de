"""Exceptions that biounet raises for bad input.

Each carries a one-line message that names the file (where there is one) and the problem; the CLI
prints it as ``biounet: error: <message>`` and exits with status 2, without a traceback.
"""

from __future__ import annotations


class BiounetError(Exception):
    """Base class of all errors that are the user's input, not a bug in biounet."""


class InvalidInputSizeError(BiounetError, ValueError):
    """The network cannot take an input of this spatial size (valid padding); names the nearest valid sizes."""


class ImageReadError(BiounetError, OSError):
    """An image file is missing, unreadable, truncated or of an unsupported format."""


class DataError(BiounetError, ValueError):
    """Training or evaluation data are inconsistent (size mismatch, unexpected label values, ...)."""


class ModelFileError(BiounetError, ValueError):
    """A file is not a biounet model (pickle, truncated safetensors, missing config, ...)."""
