"""Random training tiles: choose a centre, cut an augmented tile, stack a batch; a background producer.

A tile is the network's input ``(C, *input_shape)`` with the target (and weight map, and distance target) of
its output ``(*output_shape)``: for a valid-padded U-Net the output is the centre of the input, smaller by the
halo on every side (:func:`biounet.model.sizes.output_shape`), so the target is cropped to it; pixels
beyond the image border are mirrored (the paper's overlap-tile strategy). Cutting and augmenting is
:class:`biounet.augmentation.Augmenter`'s job.

Every batch is drawn from its own generator ``numpy.random.default_rng([seed, step])``, so batch ``k``
is the same whether it was produced ahead in a background thread or after a resumed run restarted at
step ``k``: the sampling needs no saved state to resume exactly.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from biounet.augmentation import Augmenter
from biounet.data.readers import Sample
from biounet.errors import DataError
from biounet.model import UNetConfig, sizes

#: At most this many candidate centres are kept per image for foreground oversampling.
MAX_FOCUS_PIXELS = 2_000_000


class Tile(NamedTuple):
    """One training tile: image ``(C, *input_shape)`` float32, labels ``(*output_shape)`` int64, and the weights
    and distance target ``(*output_shape)`` float32 where the sampler passes them (else ``None``)."""

    image: np.ndarray
    label: np.ndarray
    weight: np.ndarray | None = None
    distance: np.ndarray | None = None


@dataclass
class Batch:
    """A training batch.

    Attributes:
        images: ``(B, C, *input_shape)`` float32.
        labels: ``(B, *output_shape)`` int64 class indices.
        weights: ``(B, *output_shape)`` float32 pixel weights, or ``None``.
        distances: ``(B, *output_shape)`` float32 target of the distance output (0..1,
            :func:`biounet.data.targets.distance_target`), or ``None`` without one.
    """

    images: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None
    distances: np.ndarray | None = None

    @classmethod
    def stack(cls, tiles: Sequence[Tile]) -> Batch:
        """The batch of ``tiles`` (weights and distances stacked when the tiles have them)."""
        weights = None if tiles[0].weight is None else np.stack([t.weight for t in tiles])
        distances = None if tiles[0].distance is None else np.stack([t.distance for t in tiles])
        return cls(np.stack([t.image for t in tiles]), np.stack([t.label for t in tiles]), weights, distances)


def step_rng(seed: int, step: int) -> np.random.Generator:
    """The generator of training step ``step``: independent of every other step, reproducible from (seed, step)."""
    return np.random.default_rng([int(seed), int(step)])


def tile_shapes(config: UNetConfig, input_shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(input_shape, output_shape)`` of a training tile; raises InvalidInputSizeError (nearest sizes) if invalid."""
    shape = tuple(int(n) for n in input_shape)
    return shape, sizes.output_shape(config, shape)


class TileSampler:
    """Cuts random (augmented) training tiles from in-memory samples.

    Args:
        samples: images ``(C, *S)`` with class targets ``(*S)`` (and optional weight and distance maps ``(*S)``).
        model_config: the network; fixes the output tile for ``input_shape``.
        input_shape: spatial shape of the input tile, valid for the network.
        augmenter: cuts and augments; ``augment=False`` gives plain mirrored crops.
        foreground_prob: probability of centring a tile on a pixel of ``focus_classes`` (else uniform).
        focus_classes: class indices that foreground oversampling aims at (objects, boundaries, membranes).
        use_weights: pass the samples' weight maps along (all samples must have one).
        use_distances: pass the samples' distance targets along (all samples must have one), cut like the
            weight maps.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        model_config: UNetConfig,
        input_shape: Sequence[int],
        augmenter: Augmenter,
        *,
        foreground_prob: float = 0.0,
        focus_classes: Sequence[int] = (),
        use_weights: bool = False,
        use_distances: bool = False,
        augment: bool = True,
    ) -> None:
        if not samples:
            raise DataError("no training images")
        if not 0.0 <= foreground_prob <= 1.0:
            raise ValueError(f"foreground_prob must be in [0, 1], not {foreground_prob}")
        self.samples = list(samples)
        self.input_shape, self.output_shape = tile_shapes(model_config, input_shape)
        self.augmenter = augmenter
        self.foreground_prob = foreground_prob
        self.use_weights = use_weights
        self.use_distances = use_distances
        self.augment = augment
        for sample in self.samples:
            if sample.image.ndim != model_config.spatial_dims + 1:
                raise DataError(f"{sample.image_path}: a {sample.image.ndim - 1}D image for a "
                                f"{model_config.spatial_dims}D network")
            if use_weights and sample.weight is None:
                raise ValueError(f"sample {sample.name} has no weight map")
            if use_distances and sample.distance is None:
                raise ValueError(f"sample {sample.name} has no distance map")
        pixels = np.array([math.prod(s.spatial_shape) for s in self.samples], dtype=np.float64)
        self.image_probabilities = pixels / pixels.sum()
        self.focus = [self._focus_pixels(s, focus_classes) for s in self.samples] if foreground_prob > 0 else None

    @staticmethod
    def _focus_pixels(sample: Sample, classes: Sequence[int]) -> np.ndarray:
        flat = np.flatnonzero(np.isin(sample.target.classes, list(classes)))
        if flat.size > MAX_FOCUS_PIXELS:
            flat = flat[:: math.ceil(flat.size / MAX_FOCUS_PIXELS)]
        return flat

    def center(self, index: int, rng: np.random.Generator) -> tuple[int, ...]:
        """A tile centre in image ``index``: on a focus pixel with probability ``foreground_prob``, else uniform."""
        shape = self.samples[index].spatial_shape
        if self.focus is not None and self.focus[index].size and rng.random() < self.foreground_prob:
            flat = self.focus[index][rng.integers(self.focus[index].size)]
            return tuple(int(v) for v in np.unravel_index(flat, shape))
        return tuple(int(rng.integers(n)) for n in shape)

    def tile(self, rng: np.random.Generator) -> Tile:
        """One tile: image ``(C, *input_shape)``, labels ``(*output_shape)`` int64, weights and distances or None
        (one mapping for all: :meth:`biounet.augmentation.Augmenter.sample_maps`)."""
        index = int(rng.choice(len(self.samples), p=self.image_probabilities))
        sample = self.samples[index]
        image, label, (weight, distance) = self.augmenter.sample_maps(
            sample.image,
            sample.target.classes,
            (sample.weight if self.use_weights else None, sample.distance if self.use_distances else None),
            self.center(index, rng),
            self.input_shape,
            self.output_shape,
            rng,
            augment=self.augment,
        )
        return Tile(image, label, weight, distance)

    def batch(self, size: int, rng: np.random.Generator) -> Batch:
        """``size`` tiles stacked into a :class:`Batch`."""
        return Batch.stack([self.tile(rng) for _ in range(size)])


class BatchProducer:
    """Produces the batches of steps ``start, start + 1, ...`` in a background thread, ``depth`` ahead.

    Iterating yields ``(step, Batch)``; batch ``k`` is drawn from :func:`step_rng` ``(seed, k)``, so
    the stream is the same as producing it in the foreground. An error in the thread is raised by the
    iterator. Call :meth:`close` (or use as a context manager) to stop the thread.
    """

    def __init__(self, sampler: TileSampler, batch_size: int, seed: int, start: int = 0, depth: int = 2) -> None:
        self.sampler = sampler
        self.batch_size = batch_size
        self.seed = seed
        self.next_step = start
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start,), name="biounet-batches", daemon=True)
        self._thread.start()

    def _run(self, step: int) -> None:
        while not self._stop.is_set():
            try:
                item = (step, self.sampler.batch(self.batch_size, step_rng(self.seed, step)))
            except BaseException as error:  # handed to the consumer
                item = (step, error)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item[1], BaseException):
                return
            step += 1

    def __iter__(self) -> Iterator[tuple[int, Batch]]:
        return self

    def __next__(self) -> tuple[int, Batch]:
        step, item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        self.next_step = step + 1
        return step, item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> BatchProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
