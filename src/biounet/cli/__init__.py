"""Command-line interface: ``biounet COMMAND ...`` (see :mod:`biounet.cli.main`)."""
