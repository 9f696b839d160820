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
    dataset: Any, config: RunConfig, dist_info: DistInfo, device: torch.device, train: bool
) -> DataLoader:
    sampler: Sampler[int] | list[int] | None = None
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
