"""Batches that each hold at least one fully labelled image (Mostajabi §5.5.2), sharded like the loop's sampler.

With 40 labelled images among 2,000 depth-only ones, a plain shuffle would give most batches no label at all,
so the seg loss would vanish for long stretches. Each epoch, this sampler fills slot 0 of every batch from a
seeded cycle over the labelled images and the other slots from a seeded permutation of the rest (the
depth-only images, and the labelled ones the first slots did not reach), so every image is seen at least once
per epoch and every batch has a labelled image. The epoch's batches are padded (with further draws of both
streams) to a multiple of the world size and rank r takes batches r, r + W, ...: every process steps the same
number of times and each of its batches has a labelled image, on one process or under torchrun. The order
depends only on (seed, epoch).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LabelledBatchSampler(Sampler[list[int]]):
    """This process's batches of ``batch_size`` indices; ``labelled[i]`` says image i has segmentation labels."""

    def __init__(
        self, labelled: Sequence[bool], batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0
    ) -> None:
        self.labelled = [i for i, flag in enumerate(labelled) if flag]
        self.others = [i for i, flag in enumerate(labelled) if not flag]
        if not self.labelled:
            raise ValueError("no image has segmentation labels: every batch needs at least one")
        if batch_size < 2 and self.others:
            raise ValueError(
                "--batch-size 1 leaves no room beside the labelled image of each batch for the depth-only ones"
            )
        self.size = len(labelled)
        self.batch_size, self.rank, self.world_size, self.seed = batch_size, rank, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> int:
        """Batches per epoch over all processes: the fewest that fit every image, rounded up to W."""
        labelled, others = len(self.labelled), len(self.others)
        count = max(1, math.ceil(self.size / self.batch_size))
        # Slot 0 of each batch takes a labelled image; the labelled ones it misses join the other slots.
        while count * (self.batch_size - 1) < others + max(0, labelled - count):
            count += 1
        return math.ceil(count / self.world_size) * self.world_size

    def __len__(self) -> int:
        return self.global_batches() // self.world_size

    def _cycle(self, indices: list[int], generator: torch.Generator) -> Iterator[int]:
        """Seeded permutations of ``indices``, one after another, forever."""
        while True:
            for position in torch.randperm(len(indices), generator=generator).tolist():
                yield indices[position]

    def epoch_batches(self) -> list[list[int]]:
        """Every process's batches of this epoch, in order (rank r takes r, r + W, ...)."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        count = self.global_batches()
        order = torch.randperm(len(self.labelled), generator=generator).tolist()
        firsts = [self.labelled[order[b % len(order)]] for b in range(count)]
        rest_pool = self.others + [self.labelled[p] for p in order[count:]]  # labelled ones slot 0 missed
        rest = torch.randperm(len(rest_pool), generator=generator).tolist()
        stream = itertools.chain(
            (rest_pool[p] for p in rest), self._cycle(self.labelled + self.others, generator)
        )
        return [[first, *itertools.islice(stream, self.batch_size - 1)] for first in firsts]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_batches()[self.rank :: self.world_size])
