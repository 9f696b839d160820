"""Data of the supervised multi-task test bench (Larsson thesis §4.6.2, at CamVid scale; specs/multi-proxy.md
"Testing it here, offline", part A): 32 x 32 patch classification and the task splits of Table 4.5.

**Patches.** Each patch is centred on a labelled pixel and labelled by that centre pixel, the Mix-and-Match
sampler's convention (:func:`~pixelwise.methods.mixmatch.sampler.crop_patches` cuts them, top-left = centre -
side // 2, zero outside the frame). Centres are drawn **class-balanced**: a class uniformly among those present
in the frame, then a pixel of it uniformly (never an ignore pixel). There is no overlap rejection: 40 patches of
32 x 32 in a 180 x 240 frame overlap anyway, and the bank is a classification set, not a graph.

**The bank** is built once, seeded, as uint8 and cached as a ``.pt`` (:func:`load_bank`), so every arm of a
study sees the same patches: 80 % of the training frames (a seeded split by frame, so no frame gives patches to
two parts) feed the pretraining tasks, the other 20 % the linear probe (§4.6.2's 40,000 / 10,000 split of the
CIFAR-100 training set), and the validation frames give the test patches. ``synthetic:N:HxW`` data (six
procedural classes) stands in where CamVid is absent (unit tests).

**Splits** (Table 4.5; ∪̇ = disjoint): ``N25`` four tasks, each a disjoint 25 % of the pretraining patches with
all classes; ``C50`` two tasks with disjoint class sets (5 and 6 of CamVid's 11); ``C25`` four tasks (3/3/3/2
classes); ``Mixed`` is C25 with softmax cross-entropy / squared L2 on one-hot / sigmoid BCE / multi-label hinge;
``Scaled`` is C25 with cross-entropy, each task's loss times a fixed factor 10^U(-3, 3) (the "random factor"
experiment at the end of §4.6.2); ``Full`` is one task with everything (Table 4.5's "pretrained on full
dataset" row). 10 x C∪̇10 % is impossible with 11 classes. The partitions and factors are drawn from the run's
seed, so a seed is one draw of the split, shared by every optimiser.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from pixelwise.methods.mixmatch.sampler import crop_patches

PATCH = 32  # Table 4.1's nets take 32 x 32 inputs (CIFAR-100's size)
CAMVID_SIZE = (180, 240)  # the frames every CamVid benchmark caches
BANK_VERSION = 1  # bump when the bank's recipe changes, so stale caches are rebuilt, not reused
SPLITS = ("N25", "C50", "C25", "Mixed", "Scaled", "Full")
LOSSES = ("ce", "l2", "bce", "hinge")
MIXED_LOSSES = ("ce", "l2", "bce", "hinge")  # Table 4.5's order: softmax KL, squared L2, sigmoid KL, hinge
PARTS = {"pretrain": 0, "probe": 1, "test": 2}


# ----------------------------------------------------------------------------------------------- sampling
def balanced_centres(
    label: torch.Tensor, count: int, generator: torch.Generator, ignore_index: int = 255
) -> torch.Tensor:
    """``count`` flat pixel indices of ``label`` [H, W]: per patch a class uniformly among the classes present,
    then a pixel of that class uniformly; ignore pixels are never drawn. Empty when nothing is labelled."""
    flat = label.flatten().long()
    present = torch.unique(flat[flat != ignore_index])
    if len(present) == 0:
        return torch.zeros(0, dtype=torch.long)
    classes = present[torch.randint(len(present), (count,), generator=generator)]
    centres = torch.empty(count, dtype=torch.long)
    for value in present.tolist():  # sorted: the draw order is fixed, so the bank is reproducible
        slots = (classes == value).nonzero().flatten()
        if len(slots):
            pool = (flat == value).nonzero().flatten()
            centres[slots] = pool[torch.randint(len(pool), (len(slots),), generator=generator)]
    return centres


def frame_patches(
    image: torch.Tensor,
    label: torch.Tensor,
    count: int,
    generator: torch.Generator,
    size: int = PATCH,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 [n, 3, size, size], int64 [n]) class-balanced patches of one frame (``image`` uint8 [3, H, W]),
    each labelled by its centre pixel; n = ``count``, or 0 for a frame without labelled pixels."""
    centres = balanced_centres(label, count, generator, ignore_index)
    if len(centres) == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long)
    width = label.shape[-1]
    cy, cx = centres // width, centres % width
    side = torch.full_like(cy, size)
    boxes = torch.stack([cy - size // 2, cx - size // 2, side], dim=1)  # centre = top + side // 2
    # side == size: roi_align (aligned) returns the pixels themselves, so rounding back to uint8 is exact.
    crops = crop_patches(image[None].float(), torch.zeros(len(centres), dtype=torch.long), boxes, size)
    return crops.round().clamp(0, 255).to(torch.uint8), label.flatten()[centres].long()


# ----------------------------------------------------------------------------------------------- the bank
@dataclass
class PatchBank:
    """The fixed patches of a study: ``part`` says pretrain (0), probe (1) or test (2) for each patch."""

    patches: torch.Tensor  # uint8 [N, 3, 32, 32]
    labels: torch.Tensor  # int64 [N]
    frames: torch.Tensor  # int64 [N]: source frame (train-split index for parts 0-1, val-split index for 2)
    part: torch.Tensor  # int64 [N]
    class_names: tuple[str, ...]
    mean: tuple[float, float, float]  # per-channel mean / std of the pretraining patches in [0, 1]
    std: tuple[float, float, float]
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def select(self, part: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(patches, labels, frames) of one part: 'pretrain', 'probe' or 'test'."""
        keep = self.part == PARTS[part]
        return self.patches[keep], self.labels[keep], self.frames[keep]

    def to_dict(self) -> dict[str, Any]:
        return {
            "patches": self.patches,
            "labels": self.labels,
            "frames": self.frames,
            "part": self.part,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PatchBank:
        return cls(
            values["patches"],
            values["labels"],
            values["frames"],
            values["part"],
            tuple(values["class_names"]),
            tuple(values["mean"]),  # type: ignore[arg-type]
            tuple(values["std"]),  # type: ignore[arg-type]
            dict(values["meta"]),
        )


def _frames(data: str, split: str) -> Any:
    from pixelwise.data import build_dataset, eval_transforms

    size = CAMVID_SIZE if data.startswith("camvid:") else None  # synthetic: the spec's own HxW
    return build_dataset(data, split, size=size, transform=eval_transforms())


def build_bank(
    data: str, patches_per_frame: int = 40, probe_fraction: float = 0.2, seed: int = 0, progress: bool = True
) -> PatchBank:
    """Sample the bank from ``data`` ('camvid:PATH' at 180 x 240, or 'synthetic:N:HxW'): see the module doc."""
    if not 0 < probe_fraction < 1:
        raise ValueError(f"the probe fraction must be in (0, 1), got {probe_fraction}")
    generator = torch.Generator().manual_seed(seed)
    train, test = _frames(data, "train"), _frames(data, "val")
    count = len(train)
    probe_frames = max(1, round(probe_fraction * count))
    if count - probe_frames < 1:
        raise ValueError(f"{data}: {count} training frames cannot be split into pretraining and probe frames")
    order = torch.randperm(count, generator=generator)
    part_of_frame = torch.zeros(count, dtype=torch.long)
    part_of_frame[order[:probe_frames]] = PARTS["probe"]
    rows: list[tuple[torch.Tensor, torch.Tensor, int, int]] = []
    sources = [(train, i, int(part_of_frame[i])) for i in range(count)]
    sources += [(test, i, PARTS["test"]) for i in range(len(test))]
    ignore = int(train.info.ignore_index)
    for frames, index, part in tqdm(sources, desc="sampling patches", disable=not progress):
        image, target = frames[index]
        image_u8 = (image.as_subclass(torch.Tensor) * 255).round().to(torch.uint8)
        label = target["seg"].as_subclass(torch.Tensor)
        patches, labels = frame_patches(image_u8, label, patches_per_frame, generator, PATCH, ignore)
        rows.append((patches, labels, index, part))
    patches = torch.cat([r[0] for r in rows])
    labels = torch.cat([r[1] for r in rows])
    frame_ids = torch.cat([torch.full((len(r[1]),), r[2]) for r in rows])
    part_ids = torch.cat([torch.full((len(r[1]),), r[3]) for r in rows])
    pretrain = patches[part_ids == PARTS["pretrain"]].float() / 255
    mean = pretrain.mean(dim=(0, 2, 3))
    std = pretrain.std(dim=(0, 2, 3)).clamp_min(1e-3)
    meta = {"data": data, "patches_per_frame": patches_per_frame, "probe_fraction": probe_fraction,
            "seed": seed, "version": BANK_VERSION, "train_frames": count, "test_frames": len(test)}  # fmt: skip
    return PatchBank(
        patches, labels, frame_ids, part_ids, tuple(train.info.class_names),
        tuple(mean.tolist()), tuple(std.tolist()), meta,  # type: ignore[arg-type]
    )  # fmt: skip


def bank_path(cache: str | Path, data: str, patches_per_frame: int, probe_fraction: float, seed: int) -> Path:
    """The cache file of a bank recipe: the readable recipe plus a hash of the data spec (paths may be long)."""
    kind = data.split(":", 1)[0]
    digest = hashlib.sha1(f"{data}|{BANK_VERSION}".encode()).hexdigest()[:8]
    return Path(cache) / f"bank_{kind}_{patches_per_frame}pf_{probe_fraction:g}_seed{seed}_{digest}.pt"


def load_bank(
    data: str,
    cache: str | Path | None,
    patches_per_frame: int = 40,
    probe_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> PatchBank:
    """The bank of this recipe from ``cache`` (built and saved there the first time; ``cache`` None: no file)."""
    if cache is None:
        return build_bank(data, patches_per_frame, probe_fraction, seed, progress)
    path = bank_path(cache, data, patches_per_frame, probe_fraction, seed)
    if path.is_file():
        bank = PatchBank.from_dict(torch.load(path, weights_only=True))
        if bank.meta.get("data") == data and bank.meta.get("version") == BANK_VERSION:
            return bank
    bank = build_bank(data, patches_per_frame, probe_fraction, seed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent arms: each writes its own, one wins
    torch.save(bank.to_dict(), tmp)
    os.replace(tmp, path)
    return bank


# ----------------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class TaskSpec:
    """One task of a split: its share of the patches (N-splits) or its classes (C-splits), loss and factor."""

    name: str
    classes: tuple[int, ...]  # the bank's class ids this task sees, in the order of its outputs
    share: int | None = None  # N-splits: the patches whose share id equals this
    loss: str = "ce"
    factor: float = 1.0  # Scaled: the fixed loss multiplier

    @property
    def outputs(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "classes": list(self.classes), "share": self.share, "loss": self.loss,
                "factor": self.factor}  # fmt: skip


def make_split(split: str, num_classes: int, seed: int) -> list[TaskSpec]:
    """The tasks of ``split`` (see the module docstring) over ``num_classes`` classes, drawn from ``seed``.

    Class sets are a seeded permutation cut as evenly as possible, larger sets first (11 classes: 6 + 5 and
    3 + 3 + 3 + 2). C25, Mixed and Scaled share the partition at the same seed, so they differ only in losses
    and factors. A class task needs >= 2 classes (a one-class softmax has no gradient).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown test-bench split {split!r}; choose from {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, 4605])  # §4.6.2's draw, independent of the torch init stream
    everything = tuple(range(num_classes))
    if split == "Full":
        return [TaskSpec("t0_ce", everything)]
    if split == "N25":
        return [TaskSpec(f"t{m}_ce", everything, share=m) for m in range(4)]
    parts = 2 if split == "C50" else 4
    if num_classes < 2 * parts:
        raise ValueError(
            f"split {split} needs >= {2 * parts} classes (2 per task); the data has {num_classes}"
        )
    groups = np.array_split(rng.permutation(num_classes), parts)
    classes = [tuple(sorted(int(c) for c in g)) for g in groups]
    if split == "Mixed":
        return [
            TaskSpec(f"t{m}_{loss}", c, loss=loss) for m, (c, loss) in enumerate(zip(classes, MIXED_LOSSES))
        ]
    if split == "Scaled":
        factors = 10.0 ** rng.uniform(-3, 3, size=parts)
        return [TaskSpec(f"t{m}_ce", c, factor=float(f)) for m, (c, f) in enumerate(zip(classes, factors))]
    return [TaskSpec(f"t{m}_ce", c) for m, c in enumerate(classes)]


def share_ids(count: int, tasks: list[TaskSpec], seed: int) -> torch.Tensor:
    """int64 [count]: each pretraining patch's share (N-splits: a seeded, disjoint, equal partition; else 0)."""
    shares = [t.share for t in tasks if t.share is not None]
    if not shares:
        return torch.zeros(count, dtype=torch.long)
    order = torch.from_numpy(np.random.default_rng([seed, 4606]).permutation(count))
    ids = torch.empty(count, dtype=torch.long)
    ids[order] = torch.arange(count) % len(shares)
    return ids


def task_rows(task: TaskSpec, labels: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """bool [B]: the rows of a batch that ``task`` sees (its share, or its classes)."""
    if task.share is not None:
        return shares == task.share
    return torch.isin(labels, torch.tensor(task.classes, device=labels.device))


def remap_labels(task: TaskSpec, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The task's own targets 0..k-1 for labels of its classes (labels of other classes map to -1)."""
    table = torch.full((num_classes,), -1, dtype=torch.long)
    table[list(task.classes)] = torch.arange(task.outputs)
    return table.to(labels.device)[labels]


# ----------------------------------------------------------------------------------------------- datasets
class PatchDataset(Dataset):
    """In-memory patches for the training loop: (uint8 [3, 32, 32], {"label", "share"}); random horizontal
    flips (torch's global RNG, so a resumed run repeats them) when ``hflip``. The model normalises uint8 input."""

    def __init__(
        self,
        patches: torch.Tensor,
        labels: torch.Tensor,
        shares: torch.Tensor | None = None,
        hflip: bool = False,
    ) -> None:
        self.patches, self.labels = patches, labels
        self.shares = shares if shares is not None else torch.zeros(len(labels), dtype=torch.long)
        self.hflip = hflip

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        patch = self.patches[index]
        if self.hflip and bool(torch.rand(()) < 0.5):
            patch = patch.flip(-1)
        return patch, {"label": self.labels[index], "share": self.shares[index]}
