"""What a prediction can write, named once for the predictor and the command line (no torch import here)."""

from __future__ import annotations

#: ``logits``/``probabilities``: ``(K, *S)`` float per class; ``labels``: ``(*S)`` class index;
#: ``instances``: ``(*S)`` int32 object ids (models trained for instances).
OUTPUT_KINDS: tuple[str, ...] = ("logits", "probabilities", "labels", "instances")

#: How probabilities may be stored on disk (uint8 maps [0, 1] to 0..255).
PROBABILITY_DTYPES: tuple[str, ...] = ("float16", "uint8", "float32")
