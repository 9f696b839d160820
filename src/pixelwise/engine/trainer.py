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

import itertools
import json
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from pixelwise.data.validation import skip_bad_samples
from pixelwise.engine import optim
from pixelwise.engine.checkpoint import load_checkpoint, require_current_geometry, save_checkpoint
from pixelwise.engine.config import RunConfig, save_yaml
from pixelwise.engine.distributed import (
    DistInfo,
    ShardedRandomSampler,
    all_reduce_sum,
    init_distributed,
    native_bf16,
    resolve_device,
    sync_batchnorm,
)
from pixelwise.engine.logging import JsonlLogger
from pixelwise.engine.task import Task
from pixelwise.metrics import scores_to_json
from pixelwise.models.backbones import freeze_stages

NAN_SKIP_LIMIT = 10  # --on-nan skip-batch: this many non-finite batches in a row stop the run anyway
LOCK_NAME = ".lock"  # OUTPUT/.lock: JSON {pid, host, started} of the run using the folder


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, bad resume state, ...)."""


class TrainingInterrupted(TrainingError):
    """SIGINT/SIGTERM stopped the run after ``last.safetensors`` was saved; ``--resume`` continues it."""

    def __init__(self, message: str, signum: int | None) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    iteration: int = 0  # batches trained on: optimiser steps plus batches dropped by --on-nan skip-batch
    best_score: float = -1e9  # the task's score_key (e.g. val mean IoU) of best.safetensors
    step_in_epoch: int = (
        0  # steps of epoch `epoch` already taken (non-zero in a checkpoint saved on a signal)
    )
    nan_skips: int = 0  # batches dropped by --on-nan skip-batch so far
    minutes_trained: float = 0.0  # wall-clock minutes of training + validation, resumes included

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainState:
        values = dict(values)
        if "best_miou" in values:  # checkpoints written before tasks had their own score
            values["best_score"] = values.pop("best_miou")
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise TrainingError(
                f"unknown training state {unknown} in the checkpoint (written by a newer pixelwise?)"
            )
        return cls(**values)


def is_out_of_memory(err: BaseException) -> bool:
    """torch's CUDA/MPS OOM error, or the CPU allocator's failure (a plain RuntimeError)."""
    text = str(err)
    return (
        isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


# ----------------------------------------------------------------------------------------------- run-folder lock
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: it no longer runs
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): trust kill(0)
        return True


def _lock_holder(path: Path) -> dict[str, Any] | None:
    """The lock file's content, or None while it is still empty (its owner is between create and write)."""
    try:
        holder = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _lock_is_stale(path: Path, holder: dict[str, Any] | None) -> bool:
    if holder is None:  # empty or garbled: stale only once it is clearly not a run that is just starting
        try:
            return time.time() - path.stat().st_mtime > 10
        except OSError:
            return True
    if holder.get("host") != socket.gethostname():  # another machine's process cannot be checked from here
        return False
    return not _process_alive(int(holder.get("pid", -1)))


def acquire_run_lock(folder: Path) -> Path:
    """Create ``folder/.lock`` (O_EXCL) naming this process, or raise TrainingError while another run holds it.

    A lock whose process is gone (SIGKILL, crash, power cut) is stale and is taken over. Two processes taking
    over the same stale lock in the same instant are not told apart; everything else is.
    """
    path = folder / LOCK_NAME
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if not _lock_is_stale(path, holder):
                who = (
                    f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"
                    if holder
                    else "starting"
                )
                raise TrainingError(
                    f"{folder} is in use by another pixelwise run ({who}); wait for it to finish or choose "
                    f"another --output. If no such run exists, delete {path}"
                ) from None
            print(f"removing stale lock {path} (its run no longer exists)", file=sys.stderr)
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        return path
    raise TrainingError(f"{path}: could not take the run lock (several runs are starting in {folder}?)")


def release_run_lock(path: Path) -> None:
    holder = _lock_holder(path)
    if holder is not None and holder.get("pid") == os.getpid():  # never remove a lock another run took over
        path.unlink(missing_ok=True)


def setup_runtime(config: RunConfig) -> tuple[DistInfo, torch.device]:
    """Device, process group, threads and seed."""
    dist_info = init_distributed(resolve_device(config.device))
    device = resolve_device(config.device, dist_info.local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed + dist_info.rank)
    return dist_info, device


class SkippingSampler(Sampler[int]):
    """The training sampler, plus a one-shot skip of its first ``skip`` indices (resuming mid-epoch).

    Skipping indices rather than batches means the samples already trained on are never loaded, so they cannot
    draw from the augmentation RNG that was restored from the checkpoint.
    """

    def __init__(self, base: Sampler[int]) -> None:
        self.base = base
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return itertools.islice(iter(self.base), skip, None)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]


def make_loader(
    dataset: Any, config: RunConfig, dist_info: DistInfo, device: torch.device, train: bool
) -> DataLoader:
    sampler: Sampler[int] | list[int] | None = None
    if train:
        sampler = SkippingSampler(
            ShardedRandomSampler(len(dataset), dist_info.rank, dist_info.world_size, config.seed)
        )
    elif dist_info.enabled:  # every image exactly once over all ranks (no padding with repeats)
        sampler = list(range(dist_info.rank, len(dataset), dist_info.world_size))
    workers = config.workers if config.workers is not None else (0 if device.type == "cpu" else 4)
    return DataLoader(
        dataset,
        batch_size=config.batch_size if train else 1,
        sampler=sampler,
        num_workers=workers,
        drop_last=train,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed the data order per epoch so a resumed run sees exactly the batches an uninterrupted one would."""
    sampler = getattr(loader.sampler, "base", loader.sampler)
    if isinstance(sampler, ShardedRandomSampler):
        sampler.set_epoch(epoch)


# What a resume may change: how long to train and how this process runs, never what is trained or how.
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "time_limit",
        "resume",
        "device",
        "threads",
        "workers",
        "log_every",
        "num_examples",
        "eval_every",
    }
)


def require_same_config(saved: dict[str, Any], given: dict[str, Any], path: Path) -> None:
    """Refuse a --resume whose flags differ from the run's (a new --lr would jump the schedule mid-run)."""
    changed = sorted(k for k in given if k in saved and saved[k] != given[k] and k not in RESUMABLE_CHANGES)
    if changed:
        shown = ", ".join(f"--{k.replace('_', '-')} {saved[k]!r} -> {given[k]!r}" for k in changed)
        raise TrainingError(
            f"--resume: {shown} differ from the run in {path.parent}; resume with its options (only "
            f"{', '.join('--' + k.replace('_', '-') for k in sorted(RESUMABLE_CHANGES - {'resume'}))} may "
            "change) or start a new --output"
        )


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
        if config.amp and self.dist.is_main and not native_bf16(self.device):
            print(
                f"note: --amp on a {self.device.type} without native bfloat16 (no AVX512-BF16/AMX, or capped by "
                "ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA): autocast is emulated and much slower; use --no-amp",
                file=sys.stderr,
            )
        self.model, self.base_lr = task.build_model()
        if self.dist.enabled:  # batch statistics over all processes: N processes train as one would
            self.model = sync_batchnorm(self.model, self.device)
        self.frozen = freeze_stages(self.model.backbone, config.freeze)
        self.model.to(self.device)
        self.net: nn.Module = self.model
        if self.dist.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = optim.build_optimizer(self.model, config, self.base_lr)
        self.train_loader = make_loader(self.train_set, config, self.dist, self.device, train=True)
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
        rng = self.rng_state() if with_training_state else {}  # on every rank: the states are gathered
        if not self.dist.is_main:
            return
        extra = {}
        if with_training_state:
            extra = {"optimizer_state": self.optimizer.state_dict(), "rng_state": rng}
        # Inference checkpoints drop training-only branches (e.g. the label-AE regulariser): a model may offer
        # ``inference_model()``; resumable ones keep everything so --resume is exact.
        model = (
            self.model
            if with_training_state
            else getattr(self.model, "inference_model", lambda: self.model)()
        )
        save_checkpoint(self.output / f"{name}.safetensors", model.state_dict(), self.metadata(), **extra)

    def rng_state(self) -> dict[str, torch.Tensor]:
        """This process's RNG states; under torchrun every rank's, as ``torch.rank1`` etc. (a collective)."""
        state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        if self.dist.enabled:  # each rank draws its own augmentations: a resume must give each its own stream
            ranks: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(ranks, {k: v.cpu() for k, v in state.items()})
            state |= {f"{k}.rank{r}": v for r, states in enumerate(ranks) for k, v in states.items()}
        return state

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        rank = self.dist.rank
        mine = {k: state.get(f"{k}.rank{rank}", state.get(k)) for k in ("torch", "cuda")}
        if mine["torch"] is not None:
            torch.set_rng_state(mine["torch"])
        if mine["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda"], self.device)

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
        if self.state.step_in_epoch:  # (batch size, accumulation and data were checked equal above)
            # The saved RNG state is the one after this epoch's DataLoader iterator drew its seed; train_one_epoch
            # restores it after creating the iterator, so the remaining batches see the same random numbers.
            self._resume_rng = checkpoint.rng_state
        else:
            self.set_rng_state(checkpoint.rng_state)

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict[str, Any]:
        config = self.config
        # Every rank checks (not only rank 0), so a refusal cannot leave the other ranks waiting in a collective.
        if not config.resume and (self.output / "last.safetensors").exists():
            raise TrainingError(
                f"{self.output} already holds a run; pass --resume to continue it or pick another --output"
            )
        lock = self.lock_output()
        try:
            with self.stop_on_signals():
                return self.run()
        finally:
            if lock is not None:
                release_run_lock(lock)

    def lock_output(self) -> Path | None:
        """Rank 0 takes OUTPUT/.lock; every rank learns whether it did, so no rank waits alone in a collective."""
        lock, error = None, None
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            try:
                lock = acquire_run_lock(self.output)
            except TrainingError as err:
                error = err
        if self.dist.enabled:
            failed = all_reduce_sum(torch.tensor([float(error is not None)], device=self.device))
            if failed.item() and error is None and not self.dist.is_main:
                raise TrainingError(f"{self.output}: rank 0 could not lock the run folder (see its message)")
        if error is not None:
            raise error
        return lock

    @contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to stop after the current step and save; a second one acts as usual."""
        previous: dict[int, Any] = {}

        def request_stop(signum: int, frame: Any) -> None:
            # Only set a flag: printing here could re-enter stderr while tqdm writes to it.
            self.stop_signal = signum
            signal.signal(signum, previous[signum])  # a second Ctrl-C raises KeyboardInterrupt at once

        try:
            for signum in (signal.SIGINT, signal.SIGTERM):
                if (
                    signal.getsignal(signum) is signal.SIG_IGN
                ):  # e.g. SIGINT of a shell's background job: keep
                    continue
                handler = signal.signal(signum, request_stop)
                previous[signum] = handler if handler is not None else signal.SIG_DFL
        except ValueError:  # not the main thread: signals cannot be caught here, the defaults stay
            pass
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def minutes_trained(self) -> float:
        """Minutes spent in ``run`` so far on this rank, resumes included."""
        return (time.time() - self._clock_start) / 60

    def agree(self, *flags: bool) -> list[bool]:
        """Flags true on any rank are true on every rank (one small all-reduce), so all ranks act alike."""
        return [bool(v) for v in self.agree_max(*flags)]

    def agree_max(self, *values: float) -> list[float]:
        """Each value's maximum over ranks, on every rank, in one small all-reduce (a flag's maximum is "any")."""
        if not self.dist.enabled:
            return [float(v) for v in values]
        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def interrupted(self) -> TrainingInterrupted:
        name = signal.Signals(self.stop_signal).name if self.stop_signal else "a signal to another process"
        state = self.state
        at = (
            f"epoch {state.epoch + 1}, step {state.step_in_epoch}"
            if state.step_in_epoch
            else "an epoch's end"
        )
        return TrainingInterrupted(
            f"stopped by {name} at {at} (iteration {state.iteration}); saved "
            f"{self.output / 'last.safetensors'}: continue with the same command plus --resume",
            self.stop_signal,
        )

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
            (out_of_time,) = self.agree(out_of_time)  # ranks' clocks differ: all stop after the same epoch
            last_epoch = self.state.epoch == config.epochs or out_of_time
            if last_epoch or (config.eval_every and self.state.epoch % config.eval_every == 0):
                scores = self.validate()
            self.state.minutes_trained = self.minutes_trained()
            self.save("last", with_training_state=True)
            if out_of_time:
                break
            (stop,) = self.agree(self.stop_signal is not None)
            if stop and self.state.epoch < config.epochs:  # signalled during validation or the save
                raise self.interrupted()
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
        if isinstance(self.train_loader.sampler, SkippingSampler):
            self.train_loader.sampler.skip = start * config.accumulate * config.batch_size
        batches = iter(self.train_loader)
        if self._resume_rng is not None:
            self.set_rng_state(self._resume_rng)
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
                non_finite, stop, minutes = self.agree_max(
                    not math.isfinite(loss_sum), self.stop_signal is not None, self.minutes_trained()
                )
                lr = optim.learning_rate(
                    config, self.base_lr, self.state.iteration, total, iters_per_epoch, minutes
                )
                optim.set_learning_rate(self.optimizer, lr)  # the lr only acts in step(), after backward
                if non_finite:
                    self.skip_non_finite(loss_sum, buffers)
                else:
                    self.optimizer.step()
                    self.nan_in_a_row = 0
                self.optimizer.zero_grad(set_to_none=True)
                self.state.iteration += 1
                self.state.step_in_epoch += 1
                bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
                if self.state.iteration % config.log_every == 0:
                    self.log.write(
                        kind="train",
                        epoch=self.state.epoch,
                        iteration=self.state.iteration,
                        loss=loss_sum,
                        lr=lr,
                    )
                if stop:
                    self.state.minutes_trained = self.minutes_trained()
                    self.save("last", with_training_state=True)
                    raise self.interrupted()

    def forward_backward(self, batches: Iterator[Any]) -> float:
        """Loss of one optimiser step (``--accumulate`` batches), gradients accumulated; OOM becomes advice."""
        config = self.config
        loss_sum = 0.0
        try:
            for _ in range(config.accumulate):
                images, targets = next(batches)
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

    def skip_non_finite(self, loss_sum: float, buffers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """--on-nan: stop without saving (last.safetensors stays the last good state) or drop this batch."""
        self.optimizer.zero_grad(set_to_none=True)
        where = f"epoch {self.state.epoch + 1}, iteration {self.state.iteration + 1}"
        last = self.output / "last.safetensors"
        kept = (
            f"{last} is kept as the last good checkpoint"
            if last.is_file()
            else "no checkpoint was written yet"
        )
        if self.config.on_nan == "stop":
            raise TrainingError(
                f"non-finite loss ({loss_sum}) at {where}; stopped, {kept}. Lower --lr, check the data, or pass "
                f"--on-nan skip-batch to drop such batches"
            )
        self.nan_in_a_row += 1
        self.state.nan_skips += 1
        if self.nan_in_a_row >= NAN_SKIP_LIMIT:
            raise TrainingError(
                f"non-finite loss for {self.nan_in_a_row} batches in a row (up to {where}); stopped, {kept}. "
                f"Lower --lr or check the data"
            )
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        self.log.write(
            kind="nan_skip",
            epoch=self.state.epoch,
            iteration=self.state.iteration + 1,
            loss=loss_sum,
            in_a_row=self.nan_in_a_row,
            total=self.state.nan_skips,
        )
        if self.dist.is_main:
            tqdm.write(
                f"--on-nan skip-batch: non-finite loss at {where}; batch dropped ({self.state.nan_skips} so far)"
            )

    def compute_loss(self, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        targets = {k: v.to(self.device, non_blocking=True) for k, v in targets.items()}
        # bfloat16 autocast needs no loss scaling; on CPUs with AVX512-BF16/AMX it is ~1.6x faster (docs/results.md).
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.amp):
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
