"""Scoring predictions against ground truth: the library behind ``biounet evaluate`` and training validation.

Modules (import them directly; this package imports nothing).  The metric names used everywhere live one
layer down, in :mod:`biounet.metrics.names`, so that the metrics, this package and training share them.

* :mod:`~biounet.evaluation.tasks`: the tasks (``isbi``, ``instances``, ``semantic``), their metrics, and
  how a prediction array is read (probability / labels / binary).
* :mod:`~biounet.evaluation.pairing`: prediction <-> ground-truth files by name.
* :mod:`~biounet.evaluation.inputs`: reading the files into the arrays the metrics take.
* :mod:`~biounet.evaluation.scoring`: every metric of one pair, at every threshold.
* :mod:`~biounet.evaluation.summary`: the mean over images (one threshold for the whole set), table, CSV.
"""
