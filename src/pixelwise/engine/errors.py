"""Why a run stopped: the training loop's exceptions, and how to recognise running out of memory."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import torch

NAN_SKIP_LIMIT = 10  # --on-nan skip-batch: this many non-finite batches in a row stop the run anyway


class TrainingError(RuntimeError):
    """Training cannot continue (non-finite loss, bad resume state, ...)."""


class TrainingInterrupted(TrainingError):
    """SIGINT/SIGTERM stopped the run after ``last.safetensors`` was saved; ``--resume`` continues it."""

    def __init__(self, message: str, signum: int | None) -> None:
        super().__init__(message)
        self.signum = signum


def is_out_of_memory(err: BaseException) -> bool:
    """torch's CUDA/MPS OOM error, or the CPU allocator's failure (a plain RuntimeError)."""
    text = str(err)
    return (
        isinstance(err, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text
    )


def interrupted_error(signum: int | None, state: Any, output: Path) -> TrainingInterrupted:
    """What a run stopped by a signal says: where it stopped, what was saved, how to continue."""
    name = signal.Signals(signum).name if signum else "a signal to another process"
    at = f"epoch {state.epoch + 1}, step {state.step_in_epoch}" if state.step_in_epoch else "an epoch's end"
    return TrainingInterrupted(
        f"stopped by {name} at {at} (iteration {state.iteration}); saved "
        f"{output / 'last.safetensors'}: continue with the same command plus --resume",
        signum,
    )


def check_non_finite(loss_sum: float, on_nan: str, state: Any, in_a_row: int, last: Path) -> int:
    """--on-nan for one non-finite batch: raise (stop; ``last`` stays the last good checkpoint) or count the
    batch as dropped; returns the new number of non-finite batches in a row."""
    where = f"epoch {state.epoch + 1}, iteration {state.iteration + 1}"
    kept = (
        f"{last} is kept as the last good checkpoint" if last.is_file() else "no checkpoint was written yet"
    )
    if on_nan == "stop":
        raise TrainingError(
            f"non-finite loss ({loss_sum}) at {where}; stopped, {kept}. Lower --lr, check the data, or pass "
            f"--on-nan skip-batch to drop such batches"
        )
    in_a_row += 1
    state.nan_skips += 1
    if in_a_row >= NAN_SKIP_LIMIT:
        raise TrainingError(
            f"non-finite loss for {in_a_row} batches in a row (up to {where}); stopped, {kept}. "
            f"Lower --lr or check the data"
        )
    return in_a_row
