"""Where a run is (epoch, step, best score, minutes), and what a --resume may change about it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pixelwise.engine.errors import TrainingError


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
        "output",  # a run folder that was moved or copied resumes where it now is
        "amp",  # numeric precision of the step (its default became "where bfloat16 is native")
        "channels_last",  # memory layout and compilation change speed, not what is computed
        "compile",
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
