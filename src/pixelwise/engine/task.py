"""The engine's one method hook: a ``Task`` says what a run trains and how it is scored.

The training loop (:class:`~pixelwise.engine.trainer.Trainer`) is the same for every paper: it owns devices,
DDP, the optimiser, the schedule, checkpoints, resume and logging. A task supplies the rest: its datasets, its
model, its loss on one batch, and its validation. Supervised segmentation (Long), colorization pretraining
(Larsson) and the methods that follow are tasks; none of them reaches into the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Task(Protocol):
    """What one kind of run optimises; see :mod:`pixelwise.methods` for implementations."""

    #: key of ``validate``'s scores that selects ``best.safetensors`` (higher is better)
    score_key: str

    def datasets(self) -> tuple[Dataset, Dataset]:
        """(train, val) datasets yielding ``(image, target dict)``."""
        ...

    def build_model(self) -> tuple[nn.Module, float]:
        """The model (with a ``backbone`` attribute and a ``config.to_dict()``) and its base learning rate."""
        ...

    def loss(self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar loss of one batch; ``net`` may be the DDP wrapper of the model."""
        ...

    def validate(
        self, model: nn.Module, loader: DataLoader, device: torch.device, progress: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        """(scores, examples) over the validation loader, all-reduced across processes."""
        ...

    def save_examples(self, examples: list[Any], folder: Path) -> None:
        """Write the examples returned by :meth:`validate` as PNGs people can look at."""
        ...

    def summary(self, scores: dict[str, Any]) -> str:
        """One line for the console after each validation."""
        ...

    def metadata(self) -> dict[str, Any]:
        """JSON metadata stored in checkpoints besides the model config (classes, palette, ...)."""
        ...

    # Optional: ``train_sampler(dataset, rank, world_size, seed) -> Sampler[list[int]] | None`` gives this
    # process's training batches (lists of indices) when a task needs to choose them, e.g. "every batch holds a
    # fully labelled image" (Mostajabi §5.5.2). It must shard like ShardedRandomSampler (rank r of W takes its
    # share of one seeded order, every rank the same number of batches) and may offer ``set_epoch(epoch)``;
    # absent or None: the loop's ShardedRandomSampler with --batch-size.


class MultiLossTask(Task, Protocol):
    """A task with several losses on shared weights (multi-proxy pretraining, Larsson §4.5): the loop backprops
    each on its own and a :class:`~pixelwise.engine.combine.GradientCombiner` (``--combine``) makes the step.

    ``loss`` is then unused; the loop calls ``losses`` instead.
    """

    def loss_names(self) -> list[str]:
        """The names of the losses, in a fixed order (round-robin cycles through them in it)."""
        ...

    def losses(
        self, net: nn.Module, images: torch.Tensor, targets: dict[str, torch.Tensor]
    ) -> Iterator[tuple[str, Callable[[], torch.Tensor]]]:
        """(name, thunk) per loss of one batch; a thunk runs that loss's forward when called, so the loop
        evaluates only the active ones (round-robin) and frees each graph before the next is built."""
        ...

    # Optional: ``gradient_masks(model) -> {loss name: {parameter: 0/1 mask}}`` restricts each loss's update to
    # its own weights (split-weights, Larsson §4.4); absent or None: every loss may update every weight.
