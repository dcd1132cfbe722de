"""The tile loop of overlap-tile inference: read, normalise, run the network, stitch strips, write.

:class:`TiledRun` is the engine behind :func:`biounet.inference.predictor.predict_to`: tiles are read
with mirroring beyond the border, normalised with statistics taken once per image, run through the
network in batches (with test-time augmentation), and the kept centre of every tile goes into a strip
buffer one tile-row high; full strips are converted and handed to the writers, so memory is bounded by
a tile batch plus one strip.  Instances, a global watershed, are made at the end from the kept interior
probability (:mod:`biounet.inference.instances`; the cells of membrane models: :mod:`biounet.inference.cells`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from biounet.data.finite import TileGuard
from biounet.data.normalization import NormalizationConfig, apply_normalization, image_statistics
from biounet.inference.instances import InstanceTarget, run_labels
from biounet.inference.sources import ChannelFirstView
from biounet.inference.tta import averaged_outputs
from biounet.inference.writers import Writer, encode_probabilities
from biounet.model.folding import fold_batch_norm, has_batch_norm
from biounet.model.unet import UNet
from biounet.runtime import autocast, memory_format
from biounet.tiling import TileGrid, read_mirrored


class TiledRun:
    """The tile loop: read + normalise a batch, run the network (with TTA), fill strips, flush strips."""

    def __init__(
        self,
        model: UNet,
        source: ChannelFirstView,
        grid: TileGrid,
        stack: tuple[int, ...],
        writers: dict[str, Writer],
        progress: bool,
        description: str | None,
        device: torch.device,
        precision: str,
        transforms: list,
        target: InstanceTarget | None,
        guard: TileGuard | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        distance_channel: int | None = None,
    ) -> None:
        self.model, self.source, self.grid, self.stack = model, source, grid, stack
        self.writers, self.device, self.precision = writers, device, precision
        self.progress, self.description = progress, description
        self.transforms, self.target, self.guard = transforms, target, guard
        self.on_progress = on_progress
        self.distance_channel = distance_channel  # the output channel after the classes that is a distance map
        self.strip: Strip | None = None
        self.stats: Any = None
        self.timings = {"statistics_s": 0.0, "read_s": 0.0, "network_s": 0.0, "write_s": 0.0, "instances_s": 0.0}
        self.need_logits = "logits" in writers
        self.need_probabilities = bool({"probabilities", "labels", "instances"} & set(writers))
        self.interior: np.ndarray | None = None
        self.foreground: np.ndarray | None = None
        self.distance: np.ndarray | None = None
        if "instances" in writers:
            shape = (*stack, *grid.image_shape)
            self.interior = np.zeros(shape, np.float32)
            self.foreground = np.zeros(shape, bool)
            if target is not None and target.distance_channel is not None:
                self.distance = np.zeros(shape, np.float32)

    def execute(self, normalization: NormalizationConfig, batch_size: int) -> None:
        """The whole run: statistics, every batch of tiles through the network, the strips, the instances."""
        from tqdm.auto import tqdm

        self.prepare(normalization)
        total = len(self.grid) * math.prod(self.stack)
        bar = tqdm(
            total=total,
            unit="tile",
            desc=self.description,
            disable=not self.progress,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )
        done = 0
        with prepared(self.model, self.device, self.precision) as network, bar:
            for jobs in batched(self.jobs(), batch_size):
                self.consume(jobs, self.network(self.tile_inputs(jobs), network))
                bar.update(len(jobs))
                done += len(jobs)
                if self.on_progress is not None:
                    self.on_progress(done, total)
        self.finish()

    def prepare(self, normalization: NormalizationConfig) -> None:
        """Normalisation statistics of the whole image, taken once (:mod:`biounet.data.normalization`)."""
        if self.stats is not None:
            return
        t = time.perf_counter()
        statistics = getattr(self.source, "statistics", None)  # a 2.5D view: the stack's, per section
        self.stats = statistics(normalization) if statistics else image_statistics(self.source, normalization)
        self.source.release()
        self.timings["statistics_s"] += time.perf_counter() - t

    def consume(self, jobs: list, outputs: Mapping[str, np.ndarray]) -> None:
        """Place the network outputs of ``jobs`` (in order) into strips, handing full strips to the writers."""
        for i, (stack_index, tile) in enumerate(jobs):
            key = (stack_index, tile.grid_index[0])
            if self.strip is None or self.strip.key != key:
                self._flush(self.strip)
                self.strip = Strip.for_tile(
                    key, stack_index, tile, self.grid, self.model.config.num_classes, list(outputs)
                )
            self.strip.place(tile, {name: value[i] for name, value in outputs.items()})

    def finish(self) -> None:
        """Flush the last strip and make the instances."""
        self._flush(self.strip)
        self.strip = None
        self._instances()

    def _checked(self, tile: np.ndarray) -> np.ndarray:
        """The tile as read, its NaN/infinite pixels refused or filled (:mod:`biounet.data.finite`)."""
        return self.guard(tile) if self.guard is not None else tile

    def jobs(self) -> Iterator[tuple[tuple[int, ...], Any]]:
        """Every (stack index, tile) of the run, in raster order."""
        for stack_index in np.ndindex(*self.stack):
            for tile in self.grid:
                yield tuple(int(i) for i in stack_index), tile

    def tile_inputs(self, jobs: list) -> list[np.ndarray]:
        """The normalised network input ``(C, *tile)`` of each job, read with mirroring beyond the border."""
        t = time.perf_counter()
        tiles = [
            apply_normalization(
                self._checked(
                    read_mirrored(self.source, tile.input_start, self.grid.input_shape, leading=(slice(None), *s))
                ),
                self.stats,
            )
            for s, tile in jobs
        ]
        self.timings["read_s"] += time.perf_counter() - t
        return tiles

    def network(self, tiles: list[np.ndarray], network: PreparedNetwork) -> dict[str, np.ndarray]:
        """Logits and/or probabilities ``(B, K, *tile)`` of a batch of tiles (TTA averaged), as float32."""
        t = time.perf_counter()
        fmt = network.memory_format
        batch = torch.from_numpy(np.stack(tiles)).to(self.device).contiguous(memory_format=fmt)

        def forward(x: torch.Tensor) -> torch.Tensor:
            return network.module(x.contiguous(memory_format=fmt))

        with torch.inference_mode(), autocast(self.precision, self.device):
            outputs = averaged_outputs(
                forward, batch, self.transforms, logits=self.need_logits, probabilities=self.need_probabilities,
                distance_channel=self.distance_channel,
            )
        result = {name: value.float().cpu().numpy() for name, value in outputs.items()}
        self.timings["network_s"] += time.perf_counter() - t
        return result

    def _flush(self, strip: Strip | None) -> None:
        if strip is None:
            return
        t = time.perf_counter()
        rows = slice(strip.start, strip.stop)
        classes_key = (slice(None), *strip.stack_index, rows)
        plain_key = (*strip.stack_index, rows)
        probs = strip.buffers.get("probabilities")
        for kind, writer in self.writers.items():
            if kind == "logits":
                writer.write(classes_key, strip.buffers["logits"])
            elif kind == "probabilities":
                writer.write(classes_key, encode_probabilities(probs, writer.dtype))
            elif kind == "labels":
                writer.write(plain_key, np.argmax(probs[: self.distance_channel], axis=0).astype(writer.dtype))
            elif kind == "instances":
                self.interior[plain_key] = probs[self.target.interior_class]
                self.foreground[plain_key] = self.target.foreground(probs)
                if self.distance is not None:
                    self.distance[plain_key] = probs[self.target.distance_channel]
        self.source.release()
        self.timings["write_s"] += time.perf_counter() - t

    def _instances(self) -> None:
        if self.interior is None:
            return
        t = time.perf_counter()
        writer = self.writers["instances"]
        labelled = run_labels(self.interior, self.foreground, self.target, len(self.stack), distance=self.distance)
        for key, labels in labelled:
            writer.write(key, labels)
        self.timings["instances_s"] += time.perf_counter() - t


@dataclass
class Strip:
    """One row of tiles (along the first spatial axis) of one stack slice: ``(K, rows, *S[1:])`` buffers."""

    key: tuple[Any, ...]
    stack_index: tuple[int, ...]
    start: int
    stop: int
    buffers: dict[str, np.ndarray]

    @classmethod
    def for_tile(
        cls, key: tuple, stack_index: tuple[int, ...], tile: Any, grid: TileGrid, classes: int, names: list[str]
    ) -> Strip:
        start, stop = tile.output_start[0], tile.output_stop[0]
        shape = (classes, stop - start, *grid.image_shape[1:])
        return cls(key, stack_index, start, stop, {name: np.zeros(shape, np.float32) for name in names})

    def place(self, tile: Any, outputs: Mapping[str, np.ndarray]) -> None:
        region = tile.region()
        rows = slice(region[0].start - self.start, region[0].stop - self.start)
        for name, value in outputs.items():
            self.buffers[name][(slice(None), rows, *region[1:])] = value[(slice(None), *tile.crop())]


@dataclass(frozen=True)
class PreparedNetwork:
    """The network as inference runs it: ``module`` (the model, or its copy with batch norm folded into the
    convolutions, :mod:`biounet.model.folding`) in eval mode on the device, in ``memory_format``."""

    module: torch.nn.Module
    memory_format: torch.memory_format


#: The folded network of each live model, with the fingerprint it was made from (weakly keyed: the cache
#: goes with the model, and a deep copy of a model does not copy it).
_FOLDED: weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple[Any, ...], PreparedNetwork]] = (
    weakref.WeakKeyDictionary()
)
#: The network of each model inside a ``prepared`` context, so that nested uses share it.
_ACTIVE: weakref.WeakKeyDictionary[torch.nn.Module, PreparedNetwork] = weakref.WeakKeyDictionary()


def _fingerprint(model: torch.nn.Module, device: torch.device, fmt: torch.memory_format) -> tuple[Any, ...]:
    """What the folded network depends on: every parameter's and buffer's storage and version counter (an
    optimiser step or ``load_state_dict`` bumps the version, replacing a tensor changes the storage), the
    device and the memory format."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    return (str(device), fmt, tuple((t.data_ptr(), t._version) for t in tensors))


def _folded(model: torch.nn.Module, device: torch.device, fmt: torch.memory_format) -> PreparedNetwork:
    """The model's copy with batch norm folded (the model in eval mode), from the cache while it is current."""
    key = _fingerprint(model, device, fmt)
    cached = _FOLDED.get(model)
    if cached is None or cached[0] != key:
        cached = (key, PreparedNetwork(fold_batch_norm(model).to(memory_format=fmt), fmt))
        _FOLDED[model] = cached
    return cached[1]


@contextlib.contextmanager
def prepared(model: UNet, device: torch.device, precision: str) -> Iterator[PreparedNetwork]:
    """The network inference runs, in eval mode, on ``device``, in the fast memory format; the model's mode and
    memory format are restored afterwards (it stays on ``device``).

    With batch norm it is the model's copy with the norms folded (:mod:`biounet.model.folding`), kept while the
    model lives and its weights do not change, so predicting many images one call at a time (a Python loop over
    ``biounet.predict``, napari) copies and folds once, not per call (docs/speed.md); training the model,
    loading other weights or moving it makes a new copy on the next call, at the price of a second copy of
    the weights in memory.  Without batch norm it is the model itself (nothing to fold; a bioimage.io
    package's ONNX session cannot even be copied).  Nested uses (a large image inside a folder's run) share
    the outer one's network.
    """
    active = _ACTIVE.get(model)
    if active is not None:
        yield active
        return
    was_training = model.training
    model.eval()
    model.to(device=device)
    fmt = memory_format(precision, device, model.config.spatial_dims)
    in_place = not has_batch_norm(model)
    try:
        if in_place:
            model.to(memory_format=fmt)
            network = PreparedNetwork(model, fmt)
        else:
            network = _folded(model, device, fmt)
        _ACTIVE[model] = network
        yield network
    finally:
        _ACTIVE.pop(model, None)
        model.train(was_training)
        if in_place and fmt != torch.contiguous_format:
            model.to(memory_format=torch.contiguous_format)


def batched(items: Iterable[Any], n: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, n)):
        yield batch


