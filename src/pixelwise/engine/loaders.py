"""Devices, process groups and data loaders: one process or torchrun, the same seeded order split by rank."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from pixelwise.engine.config import RunConfig
from pixelwise.engine.distributed import DistInfo, ShardedRandomSampler, init_distributed, resolve_device


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
    dataset: Any,
    config: RunConfig,
    dist_info: DistInfo,
    device: torch.device,
    train: bool,
    batch_sampler: Sampler[list[int]] | None = None,
) -> DataLoader:
    """The training loader (this process's share of the seeded order, or a task's ``batch_sampler``: the
    ``Task.train_sampler`` hook) or the validation loader (one image per batch, each image once over ranks)."""
    sampler: Sampler[int] | list[int] | None = None
    workers = config.workers if config.workers is not None else (0 if device.type == "cpu" else 4)
    if train and batch_sampler is not None:  # the task chose the batches (already sharded by rank)
        return DataLoader(
            dataset,
            batch_sampler=SkippingSampler(batch_sampler),  # type: ignore[arg-type]
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )
    if train:
        sampler = SkippingSampler(
            ShardedRandomSampler(
                len(dataset),
                dist_info.rank,
                dist_info.world_size,
                config.seed,
                config.sampling == "replacement",
            )
        )
    elif dist_info.enabled:  # every image exactly once over all ranks (no padding with repeats)
        sampler = list(range(dist_info.rank, len(dataset), dist_info.world_size))
    return DataLoader(
        dataset,
        batch_size=config.batch_size if train else 1,
        sampler=sampler,
        num_workers=workers,
        drop_last=train,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def _skipping(loader: DataLoader) -> tuple[SkippingSampler | None, bool]:
    """The loader's SkippingSampler and whether it yields whole batches (a task's batch sampler)."""
    if isinstance(loader.batch_sampler, SkippingSampler):
        return loader.batch_sampler, True
    if isinstance(loader.sampler, SkippingSampler):
        return loader.sampler, False
    return None, False


def skip_batches(loader: DataLoader, batches: int, batch_size: int) -> None:
    """Resuming mid-epoch: the next iteration of ``loader`` starts after its first ``batches`` batches."""
    sampler, yields_batches = _skipping(loader)
    if sampler is not None:
        sampler.skip = batches if yields_batches else batches * batch_size


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed the data order per epoch so a resumed run sees exactly the batches an uninterrupted one would."""
    skipping, _ = _skipping(loader)
    sampler = skipping.base if skipping is not None else loader.sampler
    if isinstance(sampler, ShardedRandomSampler) or hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)  # type: ignore[union-attr]
