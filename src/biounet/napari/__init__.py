"""The napari plugin: a reader for biounet's outputs and OME-Zarr, and the Segment and Train widgets.

Installed with ``pip install "biounet[napari]"``; napari finds it through the ``napari.manifest`` entry
point (``napari.yaml`` in this package, an npe2 manifest).  The work is split so that it can be tested
without a window:

- :mod:`.reader`: ``get_reader(path)`` -> a function that returns napari layer data tuples;
- :mod:`.segment_logic`, :mod:`.train_logic`: plain functions (no Qt) that check the user's choices,
  run :func:`biounet.inference.predictor.predict_to` / :func:`biounet.training.trainer.train` and turn
  the results into layer data;
- :mod:`.segment_widget`, :mod:`.train_widget`: the Qt widgets (magicgui containers) that run that
  logic in a worker thread and show progress, messages and the loss curve;
- :mod:`.common`: what both widgets share (layer choices, one-line messages for errors).

Nothing here is imported by the rest of biounet; this package may import any of it except the CLI.
"""
