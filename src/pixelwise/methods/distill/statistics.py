"""The teacher statistics of Eq. 4.4 and the feature subset of §4.3.4, both fixed before training starts.

- s_c = sqrt(Ê[y_c²]) per teacher channel (or one shared s), from one pass of the teachers over the distillation
  images without augmentation. Every spatial position of the dense feature map is a sample. Under torchrun each
  process reads its share of the images and the sums are all-reduced, so every rank holds the same s.
- The feature subset: a fixed, seeded random choice of the student's F features among the teachers' M F.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from pixelwise.engine.distributed import all_reduce_sum

# A channel whose RMS is below this fraction of the mean RMS (a dead feature) is normalised by that floor
# instead, so ẑ = z / s stays bounded and the loss finite.
SCALE_FLOOR = 1e-3


@dataclass(frozen=True)
class TeacherScale:
    """s of Eq. 4.4 for the K teacher channels (all equal when ``shared``), and how it was measured."""

    values: torch.Tensor  # [K] float32
    shared: bool
    images: int  # over all processes
    positions: int  # feature-map cells over all images: the samples of Ê

    def describe(self) -> dict[str, Any]:
        values = self.values.tolist()
        return {"channels": len(values), "shared": self.shared, "images": self.images,
                "positions": self.positions, "values": values}  # fmt: skip

    @classmethod
    def from_description(cls, described: dict[str, Any]) -> TeacherScale:
        values = torch.tensor(described["values"], dtype=torch.float32)
        return cls(values, bool(described["shared"]), int(described["images"]), int(described["positions"]))


def _process() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def statistics_indices(count: int, limit: int, seed: int = 0) -> list[int]:
    """The images of the statistics pass: all of them, or a fixed seeded ``limit`` of them (in index order)."""
    if limit <= 0 or limit >= count:
        return list(range(count))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return sorted(order[:limit].tolist())


def _batches(images: Iterator[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive images of one size stacked into batches of up to ``batch_size`` (sizes may differ)."""
    pending: list[torch.Tensor] = []
    for image in images:
        if pending and (len(pending) == batch_size or image.shape != pending[0].shape):
            yield torch.stack(pending)
            pending = []
        pending.append(image)
    if pending:
        yield torch.stack(pending)


@torch.no_grad()
def channel_energy(
    teacher: Callable[[torch.Tensor], torch.Tensor],
    datasets: Sequence[Any],
    device: torch.device,
    *,
    limit: int = 0,
    batch_size: int = 8,
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ y_c² per channel [K], [images, positions]) in float64 over this process's share of the images.

    The images of ``datasets`` (yielding (image [3, H, W], target), no augmentation) are taken in one fixed
    order (:func:`statistics_indices`) and process ``rank`` of ``world`` reads every W-th of them from the r-th,
    so the processes' sums add up to the one-process sums.
    """
    offsets = [0]
    for dataset in datasets:
        offsets.append(offsets[-1] + len(dataset))
    chosen = statistics_indices(offsets[-1], limit)[rank::world]

    def images() -> Iterator[torch.Tensor]:
        for index in chosen:
            part = bisect.bisect_right(offsets, index) - 1
            image, _ = datasets[part][index - offsets[part]]
            yield image.as_subclass(torch.Tensor)

    sums: torch.Tensor | None = None
    cells = torch.zeros(2, dtype=torch.float64, device=device)
    for batch in _batches(images(), batch_size):
        features = teacher(batch.to(device)).double()
        energy = (features * features).sum(dim=(0, 2, 3))
        sums = energy if sums is None else sums + energy
        cells += torch.tensor([features.shape[0], features[:, 0].numel()], dtype=torch.float64, device=device)
    if sums is None:  # a rank without images (more processes than images) still joins the all-reduce
        probe = next(iter(datasets[0]))[0].as_subclass(torch.Tensor)
        sums = torch.zeros(teacher(probe[None].to(device)).shape[1], dtype=torch.float64, device=device)
    return sums, cells


def scale_from_energy(sums: torch.Tensor, cells: torch.Tensor, shared: bool) -> TeacherScale:
    """s_c = sqrt(Σ y_c² / positions) (Eq. 4.4), or one s = sqrt(Σ_c Σ y_c² / (K positions)) when ``shared``."""
    positions = cells[1].clamp(min=1)
    if shared:
        values = (sums.sum() / (positions * sums.numel())).sqrt().expand_as(sums)
    else:
        values = (sums / positions).sqrt()
    floor = SCALE_FLOOR * values.mean().clamp(min=1e-12)
    values = values.clamp(min=float(floor)).float().cpu().contiguous()
    return TeacherScale(values, shared, int(cells[0]), int(cells[1]))


def teacher_scale(
    teacher: Callable[[torch.Tensor], torch.Tensor],
    datasets: Sequence[Any],
    device: torch.device,
    *,
    shared: bool = False,
    limit: int = 0,
    batch_size: int = 8,
) -> TeacherScale:
    """s of Eq. 4.4 for ``teacher``'s features [N, K, h, w] over ``datasets``' images, equal on every process.

    Each process measures its share (:func:`channel_energy`); the float64 sums are all-reduced before the root.
    """
    rank, world = _process()
    sums, cells = channel_energy(
        teacher, datasets, device, limit=limit, batch_size=batch_size, rank=rank, world=world
    )
    all_reduce_sum(sums)
    all_reduce_sum(cells)
    return scale_from_energy(sums, cells, shared)


def feature_subset(total: int, count: int, seed: int, anchored: int = 0) -> list[int]:
    """A fixed random choice of ``count`` of ``total`` teacher features (§4.3.4 "feature subset"), as the list of
    teacher channels that student channels 0..count-1 learn.

    The chosen *set* is uniform (a seeded permutation's first ``count``); only its *order* is fixed here: chosen
    channels below ``anchored`` (the first teacher's, when it is as wide as the student) keep their own index, so a
    student warm-started from the first teacher (§4.3.5) starts with those channels already matching; the others
    fill the remaining positions in increasing order. With ``count == total`` it is the identity.
    """
    if count > total:
        raise ValueError(
            f"--adapter subset: the teachers give {total} features, fewer than the student's {count}; use "
            "--adapter auxiliary, more teachers, or a narrower student --backbone"
        )
    if count == total:
        return list(range(total))
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    chosen = sorted(order[:count].tolist())
    anchored = anchored if anchored == count else 0
    kept = {c for c in chosen if c < anchored}
    rest = iter(c for c in chosen if c not in kept)
    return [c if c in kept else next(rest) for c in range(count)] if kept else chosen
