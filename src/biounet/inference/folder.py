"""Prediction of many files with one model: batches of small images, reading and writing beside the network.

``biounet predict`` on a folder of hundreds of small images (the DSB layout: 256 x 256 nuclei) spends
its time around the network unless the images are handled together:

- the model is loaded, put into its fast memory format and its batch norm folded once
  (:func:`~biounet.inference.engine.prepared`);
- images that the network takes whole (one tile, no stack axis: :attr:`PendingPrediction.single_pass`)
  and that share a shape go through the network as one batch, up to the memory budget's batch size
  (:func:`~biounet.tiling.batch_size_for`); larger images are tiled one by one as by :func:`predict_to`;
- a reader thread opens and decodes the next images while the network runs, so decoding PNG/TIFF
  overlaps the network's work; outputs are written by the main thread between batches (a writer thread
  was not tried);
- one progress bar over the images (rate, ETA).

Every output equals what :func:`~biounet.inference.predictor.predict_to` writes for the image alone (the
same tiles, normalisation, writers and sidecars): batching only changes which images share a forward pass.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from biounet.errors import BiounetError
from biounet.inference.engine import PreparedNetwork, prepared
from biounet.inference.files import PlannedInput, open_input
from biounet.inference.pending import (
    PendingPrediction,
    PredictionResult,
    PredictOptions,
    default_threads,
    start_prediction,
)
from biounet.io.checkpoint import ModelBundle
from biounet.runtime import resolve_device, resolve_precision, torch_threads

#: Images opened ahead of the network by the reader thread (each held decoded in memory until its turn).
READ_AHEAD = 8


@dataclass
class FolderResult:
    """What :func:`predict_files` did: the result of every predicted input, and the inputs it skipped."""

    results: list[tuple[PlannedInput, PredictionResult]] = field(default_factory=list)
    bad: list[tuple[Path, str]] = field(default_factory=list)


def predict_files(
    bundle: ModelBundle,
    inputs: Sequence[PlannedInput],
    options: PredictOptions,
    *,
    channel_axis: str | None = None,
    skip_bad: bool = False,
    on_written: Callable[[PlannedInput, PredictionResult], None] | None = None,
) -> FolderResult:
    """Predict every input into its planned output files (see the module docstring).

    Args:
        bundle: the model, loaded once.
        inputs: the files and their outputs, from :func:`~biounet.inference.files.plan_outputs`.
        options: as for one image; ``options.progress`` shows one bar over the files (a large image also
            shows its tiles), ``options.batch_size`` caps images per batch as it caps tiles.
        channel_axis: where the channels are in the files (``None``: the training data's convention).
        skip_bad: an input found bad while predicting (NaN pixels under ``nan_policy="refuse"``, a file that
            cannot be decoded) is listed in :attr:`FolderResult.bad` instead of stopping the run.
        on_written: called after each input's outputs and sidecars are written (for "wrote ..." lines).
    """
    result = FolderResult()
    quiet = replace(options, progress=False, on_progress=None)
    with _progress(len(inputs), options.progress) as bar, ThreadPoolExecutor(1, "biounet-read") as reader:
        group: list[tuple[PlannedInput, PendingPrediction]] = []
        with prepared(bundle.model, *_device_and_precision(quiet)) as network, torch_threads(_threads(options)):
            try:
                for planned, opened in _read_ahead(reader, inputs, bundle, channel_axis):
                    pending = _started(planned, opened, bundle, quiet, result, skip_bad)
                    if pending is None:
                        bar.update(1)
                        continue
                    if group and not _joins(group, pending):
                        batch, group = group, []
                        _run_group(batch, network, result, skip_bad, on_written, bar)
                    if pending.single_pass:
                        group.append((planned, pending))
                        continue
                    _run_alone(planned, pending, options, result, skip_bad, on_written, bar)
                batch, group = group, []
                _run_group(batch, network, result, skip_bad, on_written, bar)
            except BaseException:  # e.g. the next file is bad: the images waiting for a batch leave no file either
                _abort_all(group)
                raise
    return result


def _read_ahead(
    reader: ThreadPoolExecutor, inputs: Sequence[PlannedInput], bundle: ModelBundle, channel_axis: str | None
) -> Iterator[tuple[PlannedInput, Future]]:
    """``(input, future of (source, info))`` in input order, with up to :data:`READ_AHEAD` files decoding ahead."""

    def opened(planned: PlannedInput) -> tuple[Any, Any]:
        return open_input(planned.path, bundle, channel_axis)  # PNG/JPEG are decoded here, in this thread

    queue: deque[tuple[PlannedInput, Future]] = deque()
    pending = iter(inputs)
    for planned in pending:
        queue.append((planned, reader.submit(opened, planned)))
        if len(queue) > READ_AHEAD:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def _started(
    planned: PlannedInput,
    opened: Future,
    bundle: ModelBundle,
    options: PredictOptions,
    result: FolderResult,
    skip_bad: bool,
) -> PendingPrediction | None:
    """The input opened and its outputs planned, or ``None`` when it is bad and ``skip_bad`` lists it."""
    try:
        source, info = opened.result()
        pending = start_prediction(
            bundle, source, planned.targets, replace(options, description=planned.path.name), image_info=info
        )
        with pending.guarded():
            pending.run.prepare(bundle.pipeline.normalization)
        return pending
    except BiounetError as error:
        if not skip_bad:
            raise
        result.bad.append((planned.path, str(error)))
        return None


def _joins(group: list[tuple[PlannedInput, PendingPrediction]], pending: PendingPrediction) -> bool:
    """Whether ``pending`` can share the group's next forward pass (same input shape, room in the batch)."""
    first = group[0][1]
    return (
        pending.single_pass
        and pending.run.grid.input_shape == first.run.grid.input_shape
        and len(group) < first.batch_size
    )


def _run_group(
    group: list[tuple[PlannedInput, PendingPrediction]],
    network: PreparedNetwork,
    result: FolderResult,
    skip_bad: bool,
    on_written: Callable[[PlannedInput, PredictionResult], None] | None,
    bar: Any,
) -> None:
    """One forward pass over the whole images of ``group``, then each image's outputs written and closed."""
    jobs, inputs, members = [], [], []
    for planned, pending in group:
        job = next(pending.run.jobs())
        try:
            with pending.guarded():
                inputs.extend(pending.run.tile_inputs([job]))
        except BiounetError as error:  # NaN pixels found while reading (nan_policy="refuse")
            if not skip_bad:
                _abort_all(group)
                raise
            result.bad.append((planned.path, str(error)))
            bar.update(1)
            continue
        jobs.append(job)
        members.append((planned, pending))
    if not members:
        return
    try:
        outputs = members[0][1].run.network(inputs, network)
    except BaseException:
        _abort_all(members)
        raise
    for index, (planned, pending) in enumerate(members):
        try:
            with pending.guarded():
                pending.run.consume([jobs[index]], {name: value[index : index + 1] for name, value in outputs.items()})
                pending.run.finish()
            outcome = pending.finish()
        except BaseException:  # a full disk, say: this image's outputs are gone, and the rest of the batch's
            _abort_all(members[index + 1 :])
            raise
        _written(planned, outcome, result, on_written, bar)


def _run_alone(
    planned: PlannedInput,
    pending: PendingPrediction,
    options: PredictOptions,
    result: FolderResult,
    skip_bad: bool,
    on_written: Callable[[PlannedInput, PredictionResult], None] | None,
    bar: Any,
) -> None:
    """An image too large for one pass: tiled as :func:`predict_to` does, with its own bar of tiles."""
    pending.run.progress = options.progress
    try:
        with pending.guarded():
            pending.run.execute(pending.bundle.pipeline.normalization, pending.batch_size)
    except BiounetError as error:
        if not skip_bad:
            raise
        result.bad.append((planned.path, str(error)))
        bar.update(1)
        return
    _written(planned, pending.finish(), result, on_written, bar)


def _written(
    planned: PlannedInput,
    outcome: PredictionResult,
    result: FolderResult,
    on_written: Callable[[PlannedInput, PredictionResult], None] | None,
    bar: Any,
) -> None:
    result.results.append((planned, outcome))
    if on_written is not None:
        on_written(planned, outcome)
    bar.update(1)


def _abort_all(group: list[tuple[PlannedInput, PendingPrediction]]) -> None:
    for _, pending in group:
        pending.abort()


def _device_and_precision(options: PredictOptions) -> tuple:
    device = resolve_device(options.device)
    return device, resolve_precision(options.precision, device)


def _threads(options: PredictOptions) -> int | None:
    return options.num_threads if options.num_threads is not None else default_threads()


def _progress(total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, unit="image", desc="predict", disable=not show, file=sys.stderr, dynamic_ncols=True,
        smoothing=0.1,
    )


__all__ = ["READ_AHEAD", "FolderResult", "predict_files"]
