"""Scoring predictions against ground truth: the library behind ``biounet evaluate`` and training validation.

Modules (import them directly; this package imports nothing, so :mod:`biounet.evaluation.names` stays a
leaf that :mod:`biounet.metrics` and training can read):

* :mod:`~biounet.evaluation.names`: the canonical metric names and the table's short headers.
* :mod:`~biounet.evaluation.tasks`: the tasks (``isbi``, ``instances``, ``semantic``), their metrics, and
  how a prediction array is read (probability / labels / binary).
* :mod:`~biounet.evaluation.pairing`: prediction <-> ground-truth files by name.
* :mod:`~biounet.evaluation.inputs`: reading the files into the arrays the metrics take.
* :mod:`~biounet.evaluation.scoring`: every metric of one pair, at every threshold.
* :mod:`~biounet.evaluation.summary`: the mean over images (one threshold for the whole set), table, CSV.
"""
