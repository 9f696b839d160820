"""The training loop shared by every method (torchvision references style: main -> train_one_epoch -> evaluate).

One code path for one process and for ``torchrun``: each process takes its share of the same seeded order, the
model is wrapped in DDP with cross-process BatchNorm (so N processes train as one process with N times the batch
would), metrics are all-reduced and only rank 0 writes logs, PNGs and checkpoints. What is trained and how
it is scored comes from a :class:`~pixelwise.engine.task.Task` (a method's; the engine knows none of them).

Reliability: a run holds ``OUTPUT/.lock`` (one run per folder); SIGINT/SIGTERM finish the current step and save
``last.safetensors`` with the position inside the epoch, so ``--resume`` continues bit-exactly (on CPU with the
default ``--workers 0``); a NaN/inf loss stops the run (or, with ``--on-nan skip-batch``, drops the batch) without
overwriting the last good checkpoint; running out of memory is a one-line error with what to lower.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from pixelwise.data.validation import skip_bad_samples
from pixelwise.engine import optim
from pixelwise.engine.checkpoint import load_checkpoint, require_current_geometry, save_checkpoint
from pixelwise.engine.combine import (
    GradientCombiner,
    add_gradients,
    check_combine_options,
    normsgd_freeze_step,
)
from pixelwise.engine.config import RunConfig, save_yaml
from pixelwise.engine.distributed import agree_any, agree_max, amp_note, native_bf16, sync_batchnorm
from pixelwise.engine.errors import (
    TrainingError,
    TrainingInterrupted,
    check_non_finite,
    interrupted_error,
    is_out_of_memory,
)
from pixelwise.engine.loaders import make_loader, set_epoch, setup_runtime, skip_batches
from pixelwise.engine.logging import JsonlLogger
from pixelwise.engine.rng import capture_rng, restore_rng
from pixelwise.engine.runlock import lock_run_folder, release_run_lock
from pixelwise.engine.runtimes import compiled_for_training
from pixelwise.engine.signals import stop_on_signals
from pixelwise.engine.state import TrainState, require_same_config
from pixelwise.engine.task import Task
from pixelwise.metrics import scores_to_json
from pixelwise.models.backbones import freeze_stages

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "train"]


class Trainer:
    """Owns one run: datasets, model, optimiser, loop, evaluation and checkpoints."""

    def __init__(self, config: RunConfig, task: Task) -> None:
        self.config = config
        self.task = task
        self.dist, self.device = setup_runtime(config)
        self.output = Path(config.output)
        with skip_bad_samples() if config.skip_bad else nullcontext() as report:
            self.train_set, self.val_set = task.datasets()
            # Validation streams from disk, so decode it once now: a bad file must stop the run (or be skipped)
            # before training, not after the first epoch's work.
            check = getattr(self.val_set, "check", None)
            if check is not None:
                check(progress=self.dist.is_main)
        self.skipped = list(dict.fromkeys(report or []))  # train and val often share files: report each once
        if self.skipped and self.dist.is_main:
            shown = "".join(f"\n  {line}" for line in self.skipped[:5])
            more = f"\n  ... {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            print(
                f"--skip-bad: left out {len(self.skipped)} bad sample(s) (listed in {self.output / 'skipped.txt'}):"
                f"{shown}{more}",
                file=sys.stderr,
            )
        native = native_bf16(self.device)
        self.amp = native if config.amp is None else config.amp  # default: bfloat16 where it is native
        if (
            self.dist.is_main and not native and config.amp is not False
        ):  # auto turned it off, or it is forced
            # Forced and slow: a warning (stderr); off by default: information, with the run's other output.
            print(
                amp_note(self.device, forced=bool(config.amp)), file=sys.stderr if config.amp else sys.stdout
            )
        self.model, self.base_lr = task.build_model()
        if self.dist.enabled:  # batch statistics over all processes: N processes train as one would
            self.model = sync_batchnorm(self.model, self.device)
        self.frozen = freeze_stages(self.model.backbone, config.freeze)
        self.model.to(self.device)
        if config.channels_last:  # parameters in NHWC; batches follow in to_device
            self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        # Several losses on shared weights (the MultiLossTask hook): a GradientCombiner makes the step.
        self.multi_loss = hasattr(task, "losses")
        check_combine_options(config, self.multi_loss)
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            # A multi-loss step runs one task's forward/backward at a time: the other heads get no gradient.
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids, find_unused_parameters=self.multi_loss
            )
        if (
            config.compile
        ):  # tasks call net(...) and read its attributes: torch.compile's module forwards both
            self.net = compiled_for_training(self.net)
        self.optimizer = optim.build_optimizer(self.model, config, self.base_lr)
        self.combiner: GradientCombiner | None = None  # built in run(), when the schedule's length is known
        self._combiner_state: dict[str, Any] | None = None
        self._task_grads: dict[str, list[torch.Tensor | None]] = {}
        self._task_losses: dict[str, float] = {}  # this step's, per loss
        self._step_losses: dict[str, float] = {}  # the last completed step's
        # The Task.train_sampler hook: a task may choose its batches (e.g. >= 1 fully labelled image in each).
        hook = getattr(task, "train_sampler", None)
        batch_sampler = (
            hook(self.train_set, self.dist.rank, self.dist.world_size, config.seed) if hook else None
        )
        self.train_loader = make_loader(
            self.train_set, config, self.dist, self.device, train=True, batch_sampler=batch_sampler
        )
        self.val_loader = make_loader(self.val_set, config, self.dist, self.device, train=False)
        self._clock_start = time.time()  # run() rebases it on the minutes a resumed checkpoint already used
        self.state = TrainState()
        self.log = JsonlLogger(self.output / "log.jsonl", enabled=self.dist.is_main)
        self.stop_signal: int | None = None  # set by the SIGINT/SIGTERM handler, acted on between steps
        self.nan_in_a_row = 0
        # Resuming mid-epoch: the checkpoint's RNG state, restored only after iter(train_loader) (see resume).
        self._resume_rng: dict[str, torch.Tensor] | None = None

    # ----------------------------------------------------------------- checkpoints
    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.model.config.to_dict(),
            **self.task.metadata(),
            "config": self.config.to_dict(),
            "state": vars(self.state).copy(),
        }

    def save(self, name: str, with_training_state: bool) -> None:
        rng = (
            capture_rng(self.device, self.dist) if with_training_state else {}
        )  # on every rank: the states are gathered
        if not self.dist.is_main:
            return
        extra: dict[str, Any] = {}
        if with_training_state:
            extra = {"optimizer_state": self.optimizer.state_dict(), "rng_state": rng}
            if self.combiner is not None:
                extra["extra_state"] = {"combiner": self.combiner.state_dict()}
        # Inference checkpoints drop training-only branches (e.g. the label-AE regulariser): a model may offer
        # ``inference_model()``; resumable ones keep everything so --resume is exact.
        model = (
            self.model
            if with_training_state
            else getattr(self.model, "inference_model", lambda: self.model)()
        )
        save_checkpoint(self.output / f"{name}.safetensors", model.state_dict(), self.metadata(), **extra)

    def resume(self) -> None:
        path = self.output / "last.safetensors"
        if not path.is_file():
            raise TrainingError(
                f"--resume: {path} does not exist (nothing to resume; drop --resume to start afresh)"
            )
        checkpoint = load_checkpoint(path)
        try:
            require_current_geometry(checkpoint.meta, path)
        except ValueError as err:
            raise TrainingError(str(err)) from err
        if not isinstance(checkpoint.meta.get("state"), dict):
            raise TrainingError(f"{path}: no training state in this checkpoint, so it cannot be resumed")
        require_same_config(checkpoint.meta.get("config", {}), self.config.to_dict(), path)
        try:
            self.model.load_state_dict(checkpoint.model_state)
            if checkpoint.optimizer_state is not None:
                self.optimizer.load_state_dict(checkpoint.optimizer_state)
        except (RuntimeError, ValueError, KeyError) as err:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise TrainingError(
                f"{path}: does not fit this run's model/optimiser ({first_line}); resume with the options the run "
                f"was started with (see {path.with_suffix('.json')})"
            ) from err
        self.state = TrainState.from_dict(checkpoint.meta["state"])
        self._combiner_state = (checkpoint.extra_state or {}).get("combiner")
        if self.state.step_in_epoch:  # (batch size, accumulation and data were checked equal above)
            # The saved RNG state is the one after this epoch's DataLoader iterator drew its seed; train_one_epoch
            # restores it after creating the iterator, so the remaining batches see the same random numbers.
            self._resume_rng = checkpoint.rng_state
        else:
            restore_rng(checkpoint.rng_state, self.device, self.dist)

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        config = self.config
        # Every rank checks (not only rank 0), so a refusal cannot leave the other ranks waiting in a collective.
        if not config.resume and (self.output / "last.safetensors").exists():
            raise TrainingError(
                f"{self.output} already holds a run; pass --resume to continue it or pick another --output"
            )
        lock = lock_run_folder(self.output, self.dist, self.device)
        try:
            with stop_on_signals(self.request_stop):
                return self.run()
        finally:
            if lock is not None:
                release_run_lock(lock)

    def request_stop(self, signum: int) -> None:
        self.stop_signal = signum  # acted on between steps

    def minutes_trained(self) -> float:
        """Minutes spent in ``run`` so far on this rank, resumes included."""
        return (time.time() - self._clock_start) / 60

    def run(self) -> dict[str, Any]:
        config = self.config
        if config.resume:  # first: a refused resume must leave the run's config.yaml as it was
            self.resume()
        if self.dist.is_main:
            save_yaml(config.to_dict(), self.output / "config.yaml")
            if self.skipped:
                (self.output / "skipped.txt").write_text("\n".join(self.skipped) + "\n")
        iters_per_epoch = len(self.train_loader) // config.accumulate
        if iters_per_epoch == 0:
            raise TrainingError(
                f"{len(self.train_set)} training images make no full step of --batch-size {config.batch_size} x "
                f"--accumulate {config.accumulate}; lower them or add images"
            )
        total = optim.total_iterations(config.epochs, iters_per_epoch)
        if config.schedule == "poly-time":
            optim.require_time_limit(config)
        if self.multi_loss:
            self.combiner = self.build_combiner(total, iters_per_epoch)
        # Only at the start: a resumed run's checkpoint holds its recalibrated statistics.
        if config.recalibrate_bn and self.state.iteration == 0:
            from pixelwise.engine.batchnorm import recalibrate_batchnorm

            recalibrate_batchnorm(self.net, self.frozen, self.train_loader, self.device, self.dist.is_main)
        self._clock_start = time.time() - 60 * self.state.minutes_trained  # a resume continues the budget
        invocation_start = time.time()
        scores: dict[str, Any] = {}
        while self.state.epoch < config.epochs:
            self.train_one_epoch(iters_per_epoch, total)
            self.state.epoch += 1
            self.state.step_in_epoch = 0
            # poly-time's budget spans resumes (it is the schedule's T); a plain --time-limit is per invocation,
            # so a job resumed in a new time slot gets the whole slot.
            per_run = (time.time() - invocation_start) / 60
            spent = self.minutes_trained() if config.schedule == "poly-time" else per_run
            out_of_time = config.time_limit is not None and spent >= config.time_limit
            (out_of_time,) = agree_any(
                self.dist, self.device, out_of_time
            )  # ranks' clocks differ: all stop after the same epoch
            last_epoch = self.state.epoch == config.epochs or out_of_time
            if last_epoch or (config.eval_every and self.state.epoch % config.eval_every == 0):
                scores = self.validate()
            self.state.minutes_trained = self.minutes_trained()
            self.save("last", with_training_state=True)
            if out_of_time:
                break
            (stop,) = agree_any(self.dist, self.device, self.stop_signal is not None)
            if stop and self.state.epoch < config.epochs:  # signalled during validation or the save
                raise interrupted_error(self.stop_signal, self.state, self.output)
        if not scores:  # resumed a finished run
            scores = self.validate()
        scores = self.report(scores)
        if self.dist.is_main:
            (self.output / "metrics.json").write_text(json.dumps(scores_to_json(scores), indent=2))
        return scores

    def report(self, selection: dict[str, Any]) -> dict[str, Any]:
        """With a selection split (a task's ``report_set``): score the reported split once, with the last model.

        Nothing was chosen on it; the selection scores (which chose best.safetensors) ride along under
        ``"selection"``. Without one the periodic validation *is* the report and is returned as it is.
        """
        report_set = getattr(self.task, "report_set", None)
        if report_set is None:
            return selection
        loader = make_loader(report_set, self.config, self.dist, self.device, train=False)
        scores, _ = self.task.validate(self.model, loader, self.device, self.dist.is_main)
        self.log.write(kind="report", iteration=self.state.iteration, **scores_to_json(scores))
        if self.dist.is_main:
            print(f"reported split, last model (nothing chosen on it): {self.task.summary(scores)}")
        return {**scores, "epoch": self.state.epoch, "model": "last", "selection": selection}

    def train_one_epoch(self, iters_per_epoch: int, total: int) -> None:
        config = self.config
        self.net.train()
        for module in self.frozen:  # frozen layers keep their BatchNorm statistics
            module.eval()
        set_epoch(self.train_loader, self.state.epoch)
        start = self.state.step_in_epoch  # > 0 only when resuming a checkpoint saved mid-epoch
        skip_batches(self.train_loader, start * config.accumulate, config.batch_size)
        batches = iter(self.train_loader)
        if self._resume_rng is not None:
            restore_rng(self._resume_rng, self.device, self.dist)
            self._resume_rng = None
        bar = tqdm(
            range(start, iters_per_epoch),
            desc=f"epoch {self.state.epoch + 1}/{config.epochs}",
            initial=start,
            total=iters_per_epoch,
            disable=not self.dist.is_main,
            dynamic_ncols=True,
        )
        with bar:
            for _ in bar:
                # --on-nan skip-batch: BatchNorm statistics updated by a non-finite forward are put back too.
                buffers = (
                    [(b, b.clone()) for b in self.model.buffers()] if config.on_nan == "skip-batch" else []
                )
                loss_sum = self.forward_backward(batches)
                # One small all-reduce per step: any rank's non-finite loss or stop request, and the slowest rank's
                # clock, so poly-time's lr is the same in every replica.
                non_finite, stop, minutes = agree_max(
                    self.dist,
                    self.device,
                    not math.isfinite(loss_sum),
                    self.stop_signal is not None,
                    self.minutes_trained(),
                )
                lr = optim.learning_rate(
                    config, self.base_lr, self.state.iteration, total, iters_per_epoch, minutes
                )
                optim.set_learning_rate(self.optimizer, lr)  # the lr only acts in step(), after backward
                if non_finite:
                    self.skip_non_finite(loss_sum, buffers)
                else:
                    if self.combiner is not None:  # measure the steps that will be logged
                        self.combiner.diagnose = self.logged_step(
                            self.state.iteration + 1, self.state.step_in_epoch + 1, iters_per_epoch
                        )
                    self.optimizer_step()
                    self.nan_in_a_row = 0
                self.optimizer.zero_grad(set_to_none=True)
                self.state.iteration += 1
                self.state.step_in_epoch += 1
                bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
                if self.logged_step(self.state.iteration, self.state.step_in_epoch, iters_per_epoch):
                    self.log.write(
                        kind="train",
                        epoch=self.state.epoch,
                        iteration=self.state.iteration,
                        loss=loss_sum,
                        lr=lr,
                        **self.task_diagnostics(),
                    )
                if stop:
                    self.state.minutes_trained = self.minutes_trained()
                    self.save("last", with_training_state=True)
                    raise interrupted_error(self.stop_signal, self.state, self.output)

    def forward_backward(self, batches: Iterator[Any]) -> float:
        """Loss of one optimiser step (``--accumulate`` batches), gradients accumulated; OOM becomes advice."""
        config = self.config
        loss_sum = 0.0
        try:
            for _ in range(config.accumulate):
                images, targets = next(batches)
                if self.combiner is not None:
                    loss_sum += self.task_losses_backward(images, targets) / config.accumulate
                    continue
                loss = self.compute_loss(images, targets)
                (loss / config.accumulate).backward()
                loss_sum += loss.item() / config.accumulate
        except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError too
            if not is_out_of_memory(err):
                raise
            self.optimizer.zero_grad(set_to_none=True)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise TrainingError(
                f"a training step does not fit in {self.device.type} memory (--batch-size {config.batch_size}, "
                f"--crop {' '.join(map(str, config.crop))}: {str(err).strip().splitlines()[0]}); lower --batch-size "
                f"(--accumulate N keeps the effective batch), --crop or --base-size"
            ) from err
        return loss_sum

    # ----------------------------------------------------------------- several losses (engine/combine.py)
    def build_combiner(self, total: int, iters_per_epoch: int) -> GradientCombiner:
        config = self.config
        freeze_at = config.normsgd_freeze
        if freeze_at is None:
            drops = [e * iters_per_epoch for e in config.step_epochs] if config.schedule == "step" else []
            freeze_at = normsgd_freeze_step(config.warmup_iters, min(drops, default=total))
        combiner = GradientCombiner(
            config.combine,
            [p for p in self.model.parameters() if p.requires_grad],
            self.model.backbone.parameters(),
            self.task.loss_names(),
            round_robin=config.round_robin,
            freeze_at=freeze_at,
            masks=getattr(self.task, "gradient_masks", lambda model: None)(self.model),
        )
        if self._combiner_state is not None:
            combiner.load_state_dict(self._combiner_state)
        return combiner

    def logged_step(self, iteration: int, step_in_epoch: int, iters_per_epoch: int) -> bool:
        """Whether step ``iteration`` goes to log.jsonl: every --log-every steps, and the first and each epoch's
        last step, so short runs have curves too."""
        last = step_in_epoch == iters_per_epoch
        return iteration == 1 or last or iteration % self.config.log_every == 0

    def to_device(
        self, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = images.to(self.device, non_blocking=True)
        if self.config.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}

    def task_losses_backward(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
        """One batch of a multi-loss task: each active loss's backward, its gradients set aside for the
        combiner (the graph of one loss is freed before the next is built); returns the summed loss."""
        assert self.combiner is not None
        images, targets = self.to_device(images, targets)
        active = self.combiner.active(self.state.iteration)
        total = 0.0
        for name, term in self.task.losses(self.net, images, targets):
            if name not in active:
                continue
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                loss = term()
            (loss / self.config.accumulate).backward()
            grads = self.combiner.take_gradients(name)
            if name in self._task_grads:  # --accumulate: this loss's gradients over the step's batches
                grads = [add_gradients(a, b) for a, b in zip(self._task_grads[name], grads)]
            self._task_grads[name] = grads
            value = loss.item()
            self._task_losses[name] = self._task_losses.get(name, 0.0) + value / self.config.accumulate
            total += value
        return total

    def optimizer_step(self) -> None:
        if self.combiner is None:
            self.optimizer.step()
            return
        self.combiner.step(self.optimizer, self._task_grads, self.state.iteration)
        self._task_grads = {}
        self._step_losses, self._task_losses = self._task_losses, {}

    def task_diagnostics(self) -> dict[str, float]:
        """Per-loss values (and NormSGD's scales s_m) of the last step, for log.jsonl; {} for one loss."""
        if self.combiner is None:
            return {}
        values = {f"loss_{name}": value for name, value in self._step_losses.items()}
        values |= {f"scale_{name}": value for name, value in self.combiner.last_scales.items()}
        return values | self.combiner.diagnostics

    def skip_non_finite(self, loss_sum: float, buffers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """--on-nan: stop without saving (last.safetensors stays the last good state) or drop this batch."""
        self.optimizer.zero_grad(set_to_none=True)
        self._task_grads, self._task_losses = {}, {}
        self.nan_in_a_row = check_non_finite(
            loss_sum, self.config.on_nan, self.state, self.nan_in_a_row, self.output / "last.safetensors"
        )
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        self.log.write(kind="nan_skip", epoch=self.state.epoch, iteration=self.state.iteration + 1, loss=loss_sum,
                       in_a_row=self.nan_in_a_row, total=self.state.nan_skips)  # fmt: skip
        if self.dist.is_main:
            tqdm.write(
                f"--on-nan skip-batch: non-finite loss at epoch {self.state.epoch + 1}, iteration "
                f"{self.state.iteration + 1}; batch dropped ({self.state.nan_skips} so far)"
            )

    def compute_loss(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        images, targets = self.to_device(images, targets)
        # bfloat16 autocast needs no loss scaling; on CPUs with AVX512-BF16/AMX it is ~1.6x faster (docs/results.md).
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.task.loss(self.net, images, targets)

    def validate(self) -> dict[str, Any]:
        try:
            scores, examples = self.task.validate(self.model, self.val_loader, self.device, self.dist.is_main)
        except RuntimeError as err:
            if not is_out_of_memory(err):
                raise
            raise TrainingError(
                f"validation does not fit in {self.device.type} memory ({str(err).strip().splitlines()[0]}); "
                f"lower --eval-scale or --base-size (the last checkpoint is kept)"
            ) from err
        self.log.write(
            kind="val", iteration=self.state.iteration, **scores_to_json(scores), epoch=self.state.epoch
        )
        scores["epoch"] = self.state.epoch
        if self.dist.is_main:
            self.task.save_examples(examples, self.output / "examples" / f"epoch{self.state.epoch:03d}")
            split = " (selection split)" if getattr(self.task, "report_set", None) is not None else ""
            print(f"epoch {self.state.epoch}{split}: {self.task.summary(scores)}")
        score = scores[self.task.score_key]
        if score > self.state.best_score:
            self.state.best_score = score
            self.save("best", with_training_state=False)
        return scores


def train(config: RunConfig, task: Task) -> dict[str, Any]:
    """Run the training job ``task`` describes, with the loop options of ``config``."""
    return Trainer(config, task).fit()
