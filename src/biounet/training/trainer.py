"""The training loop: data, model, optimiser, validation, checkpoints, resume, history and report.

:func:`train` runs a :class:`~biounet.training.config.TrainConfig` into a run directory (what it holds:
:mod:`biounet.training.rundir`).

Exact resume: the tiles of step ``k`` come from ``numpy.random.default_rng([seed, k])``, and the
state holds the model, the optimiser, the torch/python RNG states, the step and the history, so a
run killed at any moment and resumed ends with the same weights as an unbroken run (in fp32 with a
fixed number of threads; reduced precision and thread scheduling may differ in the last bits).

The run touches process-wide state only inside :meth:`Trainer.run`: PyTorch's thread count
(``num_threads``), the global random generators (seeded with ``seed``) and the ``biounet`` logger (the
``train.log`` handler) are restored when it returns, so a run inside a notebook or napari leaves its host
as it was. The parts of a run are built by :mod:`biounet.training.setup` (data: :mod:`.data`, weight
maps: :mod:`.weights`, weight average: :mod:`.averaging`); the schedule and the clock are in
:mod:`.schedule`, the progress bar in :mod:`.progress`, the report in :mod:`.report`.

Data-parallel runs (``torchrun``, ``--nproc N``): every rank runs this loop on its share of the global batch,
the ranks agree on clock and stop every step, rank 0 alone validates and writes (:mod:`.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biounet import runtime
from biounet.data.dataset import BatchProducer
from biounet.pipeline import Pipeline
from biounet.training import distributed
from biounet.training.config import ConfigError, TrainConfig
from biounet.training.description import describe_run
from biounet.training.distributed import DistributedContext
from biounet.training.history import History
from biounet.training.interrupts import StopRequests
from biounet.training.progress import TrainingBar
from biounet.training.report import write_training_report
from biounet.training.resume import capture_state, restore_state
from biounet.training.rundir import clear_run_dir, file_log, prepare_run_dir
from biounet.training.schedule import RunClock, lr_factor, progress_fraction
from biounet.training.setup import RunSetup, build_run, plan_line, prepare_config
from biounet.training.state import TrainingState, has_state, load_state, save_state
from biounet.training.step import TrainingDivergedError, backward_step, forward_loss, non_finite_weight
from biounet.training.summary import TrainingSummary
from biounet.training.validation import SETTING_KEYS, ValidationResult, main_metric, validate

log = logging.getLogger("biounet.train")

#: Redraw the training curve at least this often (seconds) at checkpoints between validations.
PLOT_SECONDS = 300.0


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    steps: int
    stopped_by: str
    best: dict[str, Any] | None
    history: History


class Trainer:
    """One training run into ``run_dir`` (see the module docstring); :meth:`run` does everything.

    Args:
        config: the full configuration.
        run_dir: output folder.
        resume: continue from ``run_dir/state`` (the configuration's data paths are used again).
        progress: show a tqdm progress bar on stderr.
        source_config: the configuration file the run came from (copied beside config.json).
        context: which process of a data-parallel run this is (default: from torchrun's environment).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 source_config: str | Path | None = None, context: DistributedContext | None = None) -> None:
        self.context = context or DistributedContext.from_env()
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress and self.context.is_main
        self.source_config = Path(source_config) if source_config else None
        #: data, network, optimiser ...: built by :func:`~biounet.training.setup.build_run` when the run starts
        self.setup: RunSetup | None = None
        # where the run stands: saved in every checkpoint, restored by --resume
        self.step = 0
        self.checkpointed_step = -1  # -1: no checkpoint yet
        self.best: dict[str, Any] | None = None  # step, value, metric, metrics of the best validation
        self.history = History()
        self.loss_sum, self.loss_count = 0.0, 0  # training loss since the last history row
        self.last_validation: ValidationResult | None = None
        self.clock = RunClock.for_config(config)
        #: SIGINT / SIGTERM while the run runs (:mod:`biounet.training.interrupts`)
        self.stops = StopRequests()

    # ------------------------------------------------------------------------------------- parts

    @property
    def parts(self) -> RunSetup:
        """The built run (:class:`~biounet.training.setup.RunSetup`); only while or after :meth:`run` runs."""
        if self.setup is None:
            raise RuntimeError("the run is not set up yet: call run()")
        return self.setup

    @property
    def model(self) -> torch.nn.Module:
        """The network being trained."""
        return self.parts.model

    @property
    def average(self) -> torch.optim.swa_utils.AveragedModel | None:
        """The moving average of the weights (``optim.ema``), ``None`` when the run keeps none."""
        return self.parts.average

    @property
    def kept_model(self) -> torch.nn.Module:
        """The network that is validated and saved: the weight average if the run keeps one."""
        return self.average.module if self.average is not None else self.model

    def pipeline(self) -> Pipeline:
        """What inference needs besides the weights (:mod:`biounet.training.description`)."""
        parts = self.parts
        return describe_run(self.config, parts.train_data, parts.input_shape, steps=self.step,
                            precision=parts.precision, best=self.best)

    # ------------------------------------------------------------------------------------- start

    def _prepare_run_dir(self) -> None:
        prepare_run_dir(self.config, self.run_dir, resume=self.resume, source_config=self.source_config)

    def _start(self) -> None:
        """Build the run, then continue a saved one (``resume``) or start at step 0."""
        self.setup = build_run(self.config, self.run_dir, self.context)
        validated = bool(self.setup.val_samples)
        name, higher = main_metric(self.config.data.target, self.config.select_by) if validated else ("loss", False)
        self.history = History(main_metric=name if validated else None, higher_is_better=higher)
        if self.resume and has_state(self.run_dir):
            self._restore()
        elif self.resume:
            log.info(f"{self.run_dir}: no checkpoint yet; starting from step 0")
        log.info(plan_line(self.config, self.parts))
        if self.setup.total_steps is None and self.config.max_minutes is None:
            raise ConfigError("give steps, epochs or max_minutes: the run needs an end")

    def _restore(self) -> None:
        state = load_state(self.run_dir)
        restore_state(self.parts, state, self.run_dir)
        extra = state.extra
        self.step = self.checkpointed_step = state.step
        self.clock.elapsed_before = float(extra.get("elapsed_s", 0.0))
        self.history = History.from_dict(extra.get("history", {}))
        self.best = extra.get("best")
        self.loss_sum = float(extra.get("loss_sum", 0.0))
        self.loss_count = int(extra.get("loss_count", 0))
        log.info(f"resumed from step {self.step} ({self.run_dir / 'state'})")

    # ---------------------------------------------------------------------------- checkpoints

    def _check_finite_weights(self) -> None:
        name = non_finite_weight(self.model)
        if name:
            hint = self._diverged_hint()
            raise TrainingDivergedError(f"weights became NaN/infinite at step {self.step} ({name}); stopped. {hint}")

    def _diverged_hint(self) -> str:
        kept = (f"The last good checkpoint (step {self.checkpointed_step}) is kept in {self.run_dir}"
                if self.checkpointed_step >= 0 else "No checkpoint was written yet")
        fp32 = " or use --precision fp32" if self.parts.precision != "fp32" else ""
        return f"{kept}; lower the learning rate (optim.lr = {self.config.optim.lr:g}){fp32}"

    def checkpoint(self, elapsed: float, *, plot: bool = False) -> None:
        """Save last.safetensors, the full state and the history (and the best model when there is no validation).

        ``elapsed`` is the run's seconds so far. The training-curve PNG is redrawn when ``plot`` is set
        (validations, the end) or every few minutes.
        """
        from biounet.io.checkpoint import save_model

        self._check_finite_weights()
        pipeline = self.pipeline()
        save_model(self.kept_model, self.run_dir / "last.safetensors", pipeline=pipeline)
        if not self.parts.val_samples:
            save_model(self.kept_model, self.run_dir, pipeline=pipeline)
        save_state(self.run_dir, self._state(elapsed))
        plot = plot or time.perf_counter() - self.clock.plotted_at > PLOT_SECONDS
        self.history.write(self.run_dir, plot=plot)
        if plot:
            self.clock.plotted_at = time.perf_counter()
        self.checkpointed_step = self.step

    def _state(self, elapsed: float) -> TrainingState:
        """Everything an exact resume needs (see :mod:`biounet.training.resume`)."""
        position = {"elapsed_s": elapsed, "history": self.history.to_dict(), "best": self.best,
                    "loss_sum": self.loss_sum, "loss_count": self.loss_count, "scaler": None,
                    "config": self.config.to_dict()}
        return capture_state(self.parts, step=self.step, seed=self.config.seed, extra=position)

    def _validate(self) -> ValidationResult:
        """Validate the kept model; save it as the best model when it improved."""
        from biounet.io.checkpoint import save_model

        self._check_finite_weights()
        parts, config = self.parts, self.config
        try:
            result = validate(self.kept_model, parts.val_samples, config.data.target, precision=parts.precision,
                              batch_size=config.val_batch_size, num_threads=config.num_threads,
                              select_by=config.select_by, spacing=config.data.spacing)
        finally:  # the predictor restores the contiguous format; training may use channels_last
            self.kept_model.to(memory_format=parts.memory_format)
        self.last_validation = result
        row = {k if k in SETTING_KEYS else f"val_{k}": v for k, v in result.metrics.items()}
        self.history.add("val", self.step, **row, validation_s=round(result.seconds, 2))
        shown = ", ".join(f"{k} {v:g}" if k in SETTING_KEYS else f"{k} {v:.4f}" for k, v in result.metrics.items())
        improved = result.better_than(self.best["value"] if self.best else None)
        if improved:
            self.best = {"step": self.step, "value": result.value, "metric": result.main, "metrics": result.metrics}
            save_model(self.kept_model, self.run_dir, pipeline=self.pipeline())
        best = " - best so far" if improved else ""
        log.info(f"step {self.step}: validation {shown} ({result.seconds:.1f} s){best}")
        return result

    # ------------------------------------------------------------------------------------- loop

    def _train_step(self, batch: Any) -> float:
        """One optimiser step on ``batch``; returns the global batch's loss."""
        loss = forward_loss(self.parts, batch)
        value = self.parts.criterion.value
        if not math.isfinite(value):
            hint = self._diverged_hint()
            raise TrainingDivergedError(f"the loss became {value} at step {self.step + 1}; stopped. {hint}")
        backward_step(self.parts, loss, self.config.optim.grad_clip)
        return value

    def run(self) -> TrainResult:
        """Train until the steps are done or the time budget is spent; returns what was produced.

        Threads, global random generators, the ``biounet`` logger and the SIGINT/SIGTERM handlers are restored
        on return. The first SIGINT or SIGTERM ends the run after the current step with a checkpoint
        (``stopped_by`` is then ``"SIGINT"`` or ``"SIGTERM"``); see :mod:`biounet.training.interrupts`.
        """
        context, device = self.context, runtime.resolve_device(self.config.device)
        prepare_config(self.config, context, device)  # before config.json is written
        logs = file_log(self.run_dir) if context.is_main else contextlib.nullcontext()  # one rank writes
        with runtime.torch_threads(distributed.threads_per_rank(context, self.config.num_threads)), logs, \
                runtime.preserved_rng_state(), distributed.process_group(context, device), \
                distributed.quiet_unless_main(context), self.stops.installed():
            if context.is_main:
                self._prepare_run_dir()
            self._start()
            stopped_by = self._loop()
            return self._finish(stopped_by)

    def _loop(self) -> str:
        """Steps until an end is reached; returns it (``"steps"``, ``"time"``, ``"SIGINT"`` or ``"SIGTERM"``)."""
        clock, parts = self.clock, self.parts
        clock.start()
        parts.model.train()
        bar = TrainingBar(parts.total_steps, clock.budget_s, self.step, clock.elapsed_before, self.progress)
        producer = BatchProducer(parts.sampler, self.config.batch_size, self.config.seed, start=self.step)
        self.stops.deferred = True  # from here a signal ends the run after the step, with a checkpoint
        try:
            while parts.total_steps is None or self.step < parts.total_steps:
                # stop early enough for one more step, the final validation and checkpoint
                reserve = 2.0 * clock.step_s + (self.last_validation.seconds if self.last_validation else 0.0)
                elapsed = clock.elapsed()  # the ranks take rank 0's clock
                out_of_time = clock.out_of_time(elapsed, reserve)
                elapsed, stop = distributed.agree(self.context, parts.device, elapsed, out_of_time, self.stops.signum)
                if stop:
                    return stop
                lr = self._set_learning_rate(elapsed)
                distributed.seed_step(self.context, self.config.seed, self.step)
                started = time.perf_counter()
                _, batch = next(producer)
                self.loss_sum += self._train_step(batch)
                clock.step_s = time.perf_counter() - started
                self.step += 1
                self.loss_count += 1
                clock.interval_steps += 1
                bar.update(self.step, clock.elapsed())
                if self.step % self.config.log_every == 0:
                    self._log_interval(lr, bar)
                self._validate_and_checkpoint()
        except TrainingDivergedError:
            bar.close()
            if self.context.is_main:
                self.history.write(self.run_dir)
            raise
        finally:
            producer.close()
            bar.close()
        return "steps"

    def _set_learning_rate(self, elapsed: float) -> float:
        """Set and return the learning rate of the next step (warm-up, then decay over steps or time)."""
        total = self.parts.total_steps
        progress = progress_fraction(self.step, total, elapsed, self.clock.budget_s)
        lr = self.config.optim.lr * lr_factor(self.config, self.step, progress, total)
        for group in self.parts.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _log_interval(self, lr: float, bar: TrainingBar) -> None:
        """A history row with the mean loss, the learning rate and the rate since the last one."""
        rate, elapsed = self.clock.rate(), self.clock.elapsed()
        mean = self.loss_sum / max(self.loss_count, 1)
        self.history.add("train", self.step, train_loss=mean, lr=lr, steps_per_s=round(rate, 4),
                         elapsed_s=round(elapsed, 1))
        self.loss_sum, self.loss_count = 0.0, 0
        postfix = {"loss": f"{mean:.4f}", "lr": f"{lr:.2e}"}
        left = self.clock.left(elapsed)
        if left is not None:
            postfix["left"] = _minutes(left)
        bar.interval(self.step, elapsed, rate, postfix)

    def _validate_and_checkpoint(self) -> None:
        """Validate every ``val_every`` steps; checkpoint then, every ``checkpoint_every`` steps and minutes."""
        config, clock = self.config, self.clock
        if not self.context.is_main:  # rank 0 validates and writes
            return
        validate_now = bool(self.parts.val_samples) and self.step % config.val_every == 0
        if validate_now:
            self._validate()
            clock.restart_interval()
        due = (
            validate_now
            or (config.checkpoint_every and self.step % config.checkpoint_every == 0)
            or time.perf_counter() - clock.last_checkpoint >= config.checkpoint_minutes * 60.0
        )
        if due:
            self.checkpoint(clock.elapsed(), plot=validate_now)
            clock.last_checkpoint = time.perf_counter()
            clock.restart_interval()

    def _finish(self, stopped_by: str) -> TrainResult:
        """The final validation and checkpoint (unless the last step had them), the log line and the report."""
        if not self.context.is_main:
            return TrainResult(self.run_dir, self.step, stopped_by, self.best, self.history)
        if stopped_by in ("SIGINT", "SIGTERM"):
            return self._stopped(stopped_by)
        validated = any(row["kind"] == "val" and row["step"] == self.step for row in self.history.rows)
        if self.parts.val_samples and not validated:
            self._validate()
        if self.checkpointed_step != self.step or not validated:
            self.checkpoint(self.clock.elapsed(), plot=True)
        total = self.clock.elapsed()
        log.info(f"finished at step {self.step} ({stopped_by}) after {_minutes(total)} min"
                 + (f"; best {self.best['metric']} {self.best['value']:.4f} at step {self.best['step']}"
                    if self.best else ""))
        try:
            write_training_report(self.summary(total))
        except Exception as error:  # a report must never lose a finished training
            log.warning(f"the report could not be written: {error}")
        return TrainResult(self.run_dir, self.step, stopped_by, self.best, self.history)

    def _stopped(self, signal_name: str) -> TrainResult:
        """Stopped by a signal: a checkpoint, the last model (and the best when there is none yet), one line."""
        from biounet.io.checkpoint import save_model

        if self.checkpointed_step != self.step:
            self.checkpoint(self.clock.elapsed(), plot=True)
        if self.best is None and self.parts.val_samples:  # a run always leaves a model to predict with
            save_model(self.kept_model, self.run_dir, pipeline=self.pipeline())
        nproc = f" --nproc {self.context.world_size}" if self.context.enabled else ""
        log.warning(f"stopped by {signal_name} at step {self.step}; checkpoint and model saved in {self.run_dir}. "
                    f"Continue with: biounet train --out {shlex.quote(str(self.run_dir))} --resume{nproc}")
        return TrainResult(self.run_dir, self.step, signal_name, self.best, self.history)

    def summary(self, seconds: float) -> TrainingSummary:
        """What the report shows of this run (``seconds``: its wall-clock time)."""
        parts = self.parts
        return TrainingSummary(
            run_dir=self.run_dir, config=self.config.to_dict(), target=self.config.data.target, steps=self.step,
            seconds=seconds, history=list(self.history.rows), best=self.best, val_samples=parts.val_samples,
            last_validation=self.last_validation, data_notes=list(parts.train_data.notes),
            train_images=len(parts.train_data.samples), input_shape=parts.input_shape,
            output_shape=parts.output_shape, device=parts.device.type, precision=parts.precision,
        )


def train(config: TrainConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          source_config: str | Path | None = None, context: DistributedContext | None = None) -> TrainResult:
    """Run a training (see :class:`Trainer` and the module docstring)."""
    return Trainer(config, run_dir, resume=resume, progress=progress, source_config=source_config,
                   context=context).run()


def _minutes(seconds: float) -> str:
    return "{}:{:02d}".format(*divmod(max(0, int(seconds)), 60))


__all__ = ["TrainResult", "Trainer", "TrainingDivergedError", "clear_run_dir", "train"]
